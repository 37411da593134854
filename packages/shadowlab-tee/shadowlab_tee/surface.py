"""The SDKs' call surface that produces a model answer: what the tee mirrors, and what it does not and why.

`MIRRORED` is what `wrap()` builds the wrapped client from (a resource path, the API its bodies speak, the
methods mirrored). Each mirrored method is mirrored under the SDK's `with_raw_response` and
`with_streaming_response` prefixes too (at every level: `client.with_raw_response.chat.completions.create`).
`NOT_CAPTURED` names every other method of the installed SDKs that returns a model answer, with the reason;
tests/shadowlab/test_tee_surface.py walks the installed SDKs and fails on a method in neither table.
"""

from __future__ import annotations

from typing import Final, Literal

Vendor = Literal["anthropic", "openai"]

_MESSAGES: Final = ("anthropic.messages", ("create", "parse", "stream"))
_CHAT: Final = ("openai.chat", ("create", "parse", "stream"))

# vendor -> resource path -> (capture `api`, mirrored methods); a path the installed SDK lacks is skipped.
MIRRORED: Final[dict[Vendor, dict[str, tuple[str, tuple[str, ...]]]]] = {
    "anthropic": {"messages": _MESSAGES, "beta.messages": _MESSAGES},
    "openai": {
        "chat.completions": _CHAT,
        "beta.chat.completions": _CHAT,
        "responses": ("openai.responses", ("create", "parse", "stream")),
        "beta.responses": ("openai.responses", ("create",)),
    },
}

_BATCH: Final = "asynchronous batch: its answers come later through another call, off the production path"
_ASSISTANTS: Final = "Assistants API (threads and runs kept on the server): no capture API shape"
_AGENTS: Final = "managed agent sessions: the model calls happen on the vendor's servers, no body to replay"
_COMPACT: Final = "compacts a stored conversation: its output is a state to resume from, not an answer"
_SOCKET: Final = "a WebSocket session, not one request and one answer"

# vendor -> method path -> why it is not captured.
NOT_CAPTURED: Final[dict[Vendor, dict[str, str]]] = {
    "anthropic": {
        "messages.batches.create": _BATCH,
        "messages.batches.results": _BATCH,
        "beta.messages.batches.create": _BATCH,
        "beta.messages.batches.results": _BATCH,
        "messages.count_tokens": "counts input tokens; no answer",
        "beta.messages.count_tokens": "counts input tokens; no answer",
        "beta.messages.tool_runner": "the runner calls the unwrapped client inside the SDK; call "
        "beta.messages.create in your own loop to capture each turn",
        "beta.messages.thread": "a multi-turn helper built on the unwrapped client inside the SDK; call "
        "beta.messages.create per turn to capture each",
        "beta.sessions.create": _AGENTS,
        "beta.sessions.events.send": _AGENTS,
        "beta.sessions.events.stream": _AGENTS,
        "beta.sessions.threads.events.stream": _AGENTS,
        "beta.deployments.run": _AGENTS,
        "beta.sessions.events.tool_runner": _AGENTS,
    },
    "openai": {
        "completions.create": "legacy text Completions API (a prompt string): no capture API shape",
        "batches.create": _BATCH,
        "responses.compact": _COMPACT,
        "beta.responses.compact": _COMPACT,
        "responses.connect": _SOCKET,
        "beta.responses.connect": _SOCKET,
        "realtime.connect": _SOCKET,
        "beta.realtime.connect": _SOCKET,
        "live.connect": _SOCKET,
        "live.forks.connect": _SOCKET,
        "live.sideband.connect": _SOCKET,
        "realtime.translations.connect": _SOCKET,
        "beta.threads.create_and_run": _ASSISTANTS,
        "beta.threads.create_and_run_poll": _ASSISTANTS,
        "beta.threads.create_and_run_stream": _ASSISTANTS,
        "beta.threads.messages.create": _ASSISTANTS,
        "beta.threads.runs.create": _ASSISTANTS,
        "beta.threads.runs.create_and_poll": _ASSISTANTS,
        "beta.threads.runs.create_and_stream": _ASSISTANTS,
        "beta.threads.runs.poll": _ASSISTANTS,
        "beta.threads.runs.stream": _ASSISTANTS,
        "beta.threads.runs.submit_tool_outputs": _ASSISTANTS,
        "beta.threads.runs.submit_tool_outputs_and_poll": _ASSISTANTS,
        "beta.threads.runs.submit_tool_outputs_stream": _ASSISTANTS,
        "beta.agents.sessions.create": _AGENTS,
        "beta.agents.sessions.stream": _AGENTS,
        "beta.agents.sessions.events.stream": _AGENTS,
        "audio.transcriptions.create": "speech to text: no capture API shape for audio",
        "audio.translations.create": "speech to text: no capture API shape for audio",
    },
}
