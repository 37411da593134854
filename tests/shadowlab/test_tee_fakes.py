"""The fake upstreams of tests/support/fake_upstreams.py satisfy the official SDKs, unwrapped."""

from __future__ import annotations

from tests.support.fake_upstreams import (
    ANTHROPIC_REQUEST,
    OPENAI_REQUEST,
    TOOL_INPUT,
    TOOLS_MODEL,
    anthropic_client,
    openai_client,
)


def test_anthropic_sdk_reads_the_fake_stream_and_message() -> None:
    client = anthropic_client()
    message = client.messages.create(**ANTHROPIC_REQUEST | {"model": TOOLS_MODEL})
    assert message.content[1].input == TOOL_INPUT
    with client.messages.stream(**ANTHROPIC_REQUEST) as stream:
        assert "".join(stream.text_stream) == "Hello, world!"
        final = stream.get_final_message()
    assert final.usage.output_tokens == 12 and final.usage.cache_read_input_tokens == 7


def test_openai_sdk_reads_the_fake_chunks_and_completion() -> None:
    client = openai_client()
    completion = client.chat.completions.create(**OPENAI_REQUEST | {"model": TOOLS_MODEL})
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"
    chunks = list(client.chat.completions.create(**OPENAI_REQUEST, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello, world!"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 42
