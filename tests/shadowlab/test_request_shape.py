from shadowlab.request_shape import prompt_chars, user_turn


def test_prompt_chars_count_the_system_prompt_and_every_text_block() -> None:
    body = {
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [{"type": "text", "text": "hi"}, {"type": "image"}]},
            {"role": "user", "content": [{"type": "tool_result", "content": "42"}]},
        ],
    }
    assert prompt_chars(body) == len("be brief") + len("hello") + len("hi") + len("42")
    assert user_turn(body) == 2


def test_a_body_without_messages_is_turn_one_with_no_text() -> None:
    assert (prompt_chars({}), user_turn({})) == (0, 1)
    assert (prompt_chars(None), user_turn("not a body")) == (0, 1)
