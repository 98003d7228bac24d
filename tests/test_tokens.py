from __future__ import annotations

from workflows.llm.tokens import count_messages, count_text


def test_it_counts_with_o200k_base_offline() -> None:
    assert count_text("Hello, world! How are you today?") == 9
    # cl100k_base (the wrong encoding for gpt-4.1-mini) would give 13 here.
    assert count_text("नमस्ते दुनिया") == 5


def test_it_counts_each_messages_framing_role_and_content_as_openai_does() -> None:
    text = "Summarise this."
    one = count_messages([{"role": "user", "content": text}])
    two = count_messages([{"role": "system", "content": ""}, {"role": "user", "content": text}])
    assert one == count_text(text) + count_text("user") + 3 + 3
    assert two == one + count_text("system") + 3


def test_a_response_schema_counts_towards_the_prompt() -> None:
    messages = [{"role": "user", "content": "Classify"}]
    schema = {"type": "object", "properties": {"category": {"type": "string"}}}
    assert count_messages(messages, response_schema=schema) > count_messages(messages)
