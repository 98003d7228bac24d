"""Money, in integer nano-USD. Prices and limits live in settings.LLM_MODELS."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

NANO = Decimal(1_000_000_000)


def model_info(model: str) -> dict[str, int]:
    return settings.LLM_MODELS[model]


def cost_nanousd(
    *, model: str, prompt_tokens: int, cached_tokens: int, completion_tokens: int
) -> int:
    """The price of one call: cached prompt tokens at
    the cached price, the rest at the input price."""
    prices = model_info(model)
    cached = min(cached_tokens, prompt_tokens)
    return (
        (prompt_tokens - cached) * prices["input_nanousd"]
        + cached * prices["cached_input_nanousd"]
        + completion_tokens * prices["output_nanousd"]
    )


def worst_case_nanousd(*, model: str, prompt_tokens: int, max_tokens: int) -> int:
    """The most a call can cost: no cache hit and every allowed output token."""
    prices = model_info(model)
    return prompt_tokens * prices["input_nanousd"] + max_tokens * prices["output_nanousd"]


def to_usd(nanousd: int) -> Decimal:
    """Exact dollars, as a Decimal with nine places (the API prints it as a string)."""
    return (Decimal(nanousd) / NANO).quantize(Decimal("0.000000001"))


def usd_text(nanousd: int) -> str:
    """Exact dollars as a plain decimal string, e.g. "0.000123400" (never "1E-9")."""
    return format(to_usd(nanousd), "f")


def format_usd(nanousd: int) -> str:
    """Human dollars: enough digits that a one-call cost is not shown as $0.00."""
    usd = Decimal(nanousd) / NANO
    if nanousd == 0:
        return "$0"
    if abs(usd) >= 1:
        return f"${usd:,.2f}"
    if abs(usd) >= Decimal("0.01"):
        return f"${usd:.4f}"
    return f"${usd:.6f}"
