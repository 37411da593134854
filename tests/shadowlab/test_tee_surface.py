"""The call surface: every public method of the installed SDKs that returns a model answer is either mirrored
by the tee (at every prefix: plain, `with_raw_response`, `with_streaming_response`) or listed in
`shadowlab_tee.surface.NOT_CAPTURED` with a reason. A new SDK method that answers fails here until it is one
or the other. (Walking the openai client imports all its resource modules: about 2 s of CPU, once.)"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

import shadowlab_tee as tee
from shadowlab_tee.surface import MIRRORED, NOT_CAPTURED, Vendor

# A method answers when its return annotation names a model's answer (a message, a completion, a response, a
# run, a stream or a session of them), judged by the SDKs' type names.
ANSWER = re.compile(
    r"\b(Parsed)?(Beta)?(ChatCompletion|Completion|Response|Message|Run|CompactedResponse|Transcription|Translation)"
    r"\b|StreamManager|ToolRunner|MessageThread|ConnectionManager|AssistantStreamEvent|BatchIndividualResponse"
    r"|AgentSession|StreamSession"
)
# Methods that read, change or drop a stored object: they make no model call.
STORED = frozenset({"retrieve", "list", "update", "cancel", "delete"})
PREFIXES = ("with_raw_response", "with_streaming_response")
CLIENTS: dict[Vendor, tuple[type[Any], ...]] = {
    "anthropic": (anthropic.Anthropic, anthropic.AsyncAnthropic),
    "openai": (openai.OpenAI, openai.AsyncOpenAI),
}


def methods(part: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, function) of every public method under `part`, through its resources."""
    for name in dir(type(part)):
        if name.startswith("_") or name in PREFIXES:
            continue
        attr = inspect.getattr_static(type(part), name)
        if isinstance(attr, functools.cached_property):
            child = getattr(part, name)
            if hasattr(child, "_client"):  # a resource, not a setting
                yield from methods(child, f"{path}{name}.")
        elif inspect.isfunction(attr):
            yield f"{path}{name}", attr


def answering(client: Any) -> dict[str, str]:
    return {
        path: str(function.__annotations__.get("return", ""))
        for path, function in methods(client)
        if ANSWER.search(str(function.__annotations__.get("return", "")))
        and path.rsplit(".")[-1] not in STORED
    }


def resolve(root: Any, path: str) -> Any:
    """The object at `path` under `root`; None where the SDK has no such attribute (a view lacking a part)."""
    for name in path.split("."):
        root = getattr(root, name, None)
    return root


def mirrored(vendor: Vendor) -> set[str]:
    return {f"{path}.{method}" for path, (_, names) in MIRRORED[vendor].items() for method in names}


def is_the_tees(function: Any) -> bool:
    return bool(getattr(inspect.unwrap(function), "__module__", "").startswith("shadowlab_tee."))


@pytest.mark.parametrize("vendor", list(CLIENTS))
def test_every_method_that_answers_is_mirrored_or_listed_with_a_reason(vendor: Vendor) -> None:
    for client_type in CLIENTS[vendor]:
        found = answering(client_type(api_key="k", base_url="http://127.0.0.1:9"))
        unlisted = set(found) - mirrored(vendor) - set(NOT_CAPTURED[vendor])
        assert not unlisted, "neither mirrored nor in NOT_CAPTURED: " + ", ".join(
            f"{path} -> {found[path]}" for path in sorted(unlisted)
        )
        assert mirrored(vendor) <= set(found), "MIRRORED names a method that does not answer"


@pytest.mark.parametrize("vendor", list(CLIENTS))
def test_every_listed_method_exists_and_has_a_reason(vendor: Vendor) -> None:
    present = {
        path
        for client in CLIENTS[vendor]
        for path, _ in methods(client(api_key="k", base_url="http://127.0.0.1:9"))
    }
    stale = sorted(path for path in NOT_CAPTURED[vendor] if path not in present)
    assert not stale, f"NOT_CAPTURED names methods this SDK does not have: {stale}"
    assert all(len(reason) > 20 for reason in NOT_CAPTURED[vendor].values())


@pytest.mark.parametrize("client_type", [c for pair in CLIENTS.values() for c in pair])
def test_every_mirrored_method_is_the_tees_under_every_prefix(client_type: type[Any]) -> None:
    vendor: Vendor = "anthropic" if client_type in CLIENTS["anthropic"] else "openai"
    wrapped = tee.wrap(client_type(api_key="k", base_url="http://127.0.0.1:9"), tee.MemorySink(), "svc")
    creates = 0
    for path in sorted(mirrored(vendor)):
        resource, method = path.rsplit(".", 1)
        assert is_the_tees(resolve(wrapped, path)), path
        for prefix in PREFIXES:
            for view in (
                resolve(wrapped, f"{resource}.{prefix}"),
                resolve(getattr(wrapped, prefix), resource),
            ):
                if hasattr(
                    view, method
                ):  # the SDK's views have `create` (and some `parse`), no stream helper
                    assert is_the_tees(getattr(view, method)), f"{prefix} {path}"
                    creates += method == "create"
    assert creates >= 2 * len(PREFIXES)  # at least the plain resources' create under both prefixes, both ways
    wrapped.tee_sink.close(timeout=1)


def test_wrapping_touches_no_part_of_the_client_until_the_app_uses_it() -> None:
    real = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9")
    sink = tee.MemorySink()
    wrapped = tee.wrap(real, sink, "svc")  # openai's `beta` alone would import for seconds
    assert {"beta", "responses"}.isdisjoint(vars(real))
    assert is_the_tees(wrapped.beta.chat.completions.parse) and "beta" in vars(real)
    sink.close(timeout=1)
