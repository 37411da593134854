"""A stable fingerprint of a request's prompt: the unit by which repeated prompts are clustered.

Two captures share a fingerprint when their normalised requests agree on everything that shapes the answer:
system, messages, tools, tool choice and sampling parameters. The model, the API shape (Anthropic or OpenAI),
stream flags, key order and what normalisation drops (`cache_control` markers, counted in `untranslated`) do
not count, so the same conversation sent to two models or through two APIs has one fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import orjson

from shadowlab.apis import normalize_request_body
from shadowlab.apis.anthropic_fast import prompt_of
from shadowlab.apis.internal import NormalizedRequest
from shadowlab.apis.wire import WireRequest

__all__ = ["FINGERPRINT_CHARS", "body_fingerprint", "prompt_fingerprint"]

FINGERPRINT_CHARS = 32  # hex characters of sha256 kept: 128 bits, no collision in any realistic traffic
_NOT_PROMPT = frozenset({"source_api", "model", "untranslated"})
_TRANSPORT = ("model", "stream", "stream_options")


def _digest(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:FINGERPRINT_CHARS]


def _fast_digest(prompt: dict[str, Any]) -> str:
    """`_digest` of a prompt from `prompt_of`, with orjson (a quarter of the cost): for JSON values whose
    floats are finite and written without an exponent (`prompt_of` answers for no other) it writes the same
    text as `json.dumps` here; what it refuses (integers beyond 64 bits, lone surrogates) takes `_digest`."""
    try:
        text = orjson.dumps(prompt, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _digest(prompt)
    return hashlib.sha256(text).hexdigest()[:FINGERPRINT_CHARS]


def prompt_fingerprint(request: NormalizedRequest) -> str:
    """sha256 (hex, 32 characters) of the normalised request without model, API and what was dropped."""
    return _digest(request.model_dump(mode="json", exclude=set(_NOT_PROMPT)))


def body_fingerprint(api: str, body: Any, *, validated: WireRequest | None = None) -> str:
    """The fingerprint of a stored request body; one that does not normalise (or an unknown API) is hashed
    as stored, without model and stream fields, under its API name (so it never equals a normalised one).

    `validated`: the same body already validated (ingest has it), which saves validating it again. A
    Messages body of a common shape is read straight from its JSON (`shadowlab.apis.anthropic_fast`: the
    same fingerprint, a tenth of the cost)."""
    prompt = prompt_of(body) if api == "anthropic.messages" else None
    if prompt is not None:
        return _fast_digest(prompt)
    try:
        return prompt_fingerprint(normalize_request_body(api, body if validated is None else validated))
    except ValueError:  # CaptureError, or a value the normalised model refuses
        raw = {k: v for k, v in body.items() if k not in _TRANSPORT} if isinstance(body, Mapping) else body
        return _digest({"unnormalised": api, "body": raw})
