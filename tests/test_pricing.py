from __future__ import annotations

from decimal import Decimal

from workflows.llm.pricing import cost_nanousd, format_usd, to_usd, usd_text, worst_case_nanousd


def test_it_bills_uncached_prompt_cached_prompt_and_output_tokens_at_their_prices() -> None:
    # 1,000 prompt tokens of which 256 cached, and 500 output tokens.
    assert cost_nanousd(
        model="gpt-4.1-mini", prompt_tokens=1000, cached_tokens=256, completion_tokens=500
    ) == (744 * 400 + 256 * 100 + 500 * 1600)


def test_a_million_tokens_cost_what_openai_publishes() -> None:
    million = 1_000_000
    assert to_usd(
        cost_nanousd(
            model="gpt-4.1-mini", prompt_tokens=million, cached_tokens=0, completion_tokens=0
        )
    ) == Decimal("0.4")
    assert to_usd(
        cost_nanousd(
            model="gpt-4.1-mini", prompt_tokens=million, cached_tokens=million, completion_tokens=0
        )
    ) == Decimal("0.1")
    assert to_usd(
        cost_nanousd(
            model="gpt-4.1-mini", prompt_tokens=0, cached_tokens=0, completion_tokens=million
        )
    ) == Decimal("1.6")


def test_cached_tokens_never_exceed_the_prompt() -> None:
    assert (
        cost_nanousd(model="gpt-4.1-mini", prompt_tokens=10, cached_tokens=50, completion_tokens=0)
        == 10 * 100
    )


def test_the_worst_case_assumes_no_cache_and_every_output_token() -> None:
    assert (
        worst_case_nanousd(model="gpt-4.1-mini", prompt_tokens=100, max_tokens=200)
        == 100 * 400 + 200 * 1600
    )


def test_dollars_are_exact_to_the_nano_dollar() -> None:
    assert usd_text(1) == "0.000000001"
    assert usd_text(123_456_789_012) == "123.456789012"
    assert usd_text(0) == "0.000000000"


def test_small_costs_are_not_shown_as_zero() -> None:
    assert format_usd(0) == "$0"
    assert format_usd(12_345) == "$0.000012"
    assert format_usd(2_500_000_000) == "$2.50"
