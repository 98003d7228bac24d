"""Starting points for a new workflow: blank, and templates that teach by example.

Each starter is a complete, valid definition (tests check them against the
validator), small enough to read at a glance, and shows one idea: a single
prompt, a parameterised prompt, JSON output with a condition, extraction to
a schema, and a chain where one step feeds the next.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass


@dataclass(frozen=True)
class Starter:
    slug: str
    name: str
    summary: str
    steps_label: str
    definition: dict

    def fresh_definition(self) -> dict:
        return copy.deepcopy(self.definition)


BLANK = Starter(
    slug="blank",
    name="Untitled workflow",
    summary="One input and one prompt. Add steps, variables and branches yourself.",
    steps_label="1 step",
    definition={
        "name": "Untitled workflow",
        "description": "",
        "inputs": [{"name": "text", "type": "text", "required": True}],
        "steps": [
            {"key": "answer", "type": "llm", "title": "Answer", "prompt": "{{ text }}"},
        ],
        "output": None,
    },
)

_TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
        "urgency": {"type": "string", "enum": ["low", "normal", "high"]},
    },
    "required": ["category", "urgency"],
    "additionalProperties": False,
}

_CONTACT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]},
        "company": {"type": ["string", "null"]},
        "topics": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "email", "company", "topics"],
    "additionalProperties": False,
}

STARTERS: tuple[Starter, ...] = (
    Starter(
        slug="summarize",
        name="Summarize text",
        summary="Turn a long text into a few clear bullet points.",
        steps_label="1 step",
        definition={
            "name": "Summarize text",
            "description": "Summarize a text in a few bullet points",
            "inputs": [
                {
                    "name": "text",
                    "type": "text",
                    "required": True,
                    "description": "The text to summarize",
                },
                {
                    "name": "bullets",
                    "type": "number",
                    "required": False,
                    "default": 3,
                    "description": "How many bullet points",
                },
            ],
            "steps": [
                {
                    "key": "summary",
                    "type": "llm",
                    "title": "Summarize",
                    "system": (
                        "You write short, faithful summaries. Never add facts that are not in "
                        "the text."
                    ),
                    "prompt": (
                        "Summarize the text below in {{ bullets }} bullet points.\n\n{{ text }}"
                    ),
                    "temperature": 0.3,
                    "max_tokens": 400,
                },
            ],
            "output": None,
        },
    ),
    Starter(
        slug="translate",
        name="Translate",
        summary="Translate text into any language, keeping tone and formatting.",
        steps_label="1 step",
        definition={
            "name": "Translate",
            "description": "Translate a text, keeping its tone and formatting",
            "inputs": [
                {"name": "text", "type": "text", "required": True},
                {"name": "language", "type": "text", "required": False, "default": "French"},
            ],
            "steps": [
                {
                    "key": "translation",
                    "type": "llm",
                    "title": "Translate",
                    "system": (
                        "You are a professional translator. Answer with the translation only."
                    ),
                    "prompt": (
                        "Translate into {{ language }}. Keep the tone, names and "
                        "formatting.\n\n{{ text }}"
                    ),
                    "temperature": 0.2,
                    "max_tokens": 2000,
                },
            ],
            "output": None,
        },
    ),
    Starter(
        slug="classify-route",
        name="Classify and route",
        summary="Sort a support ticket into a category, then write the right kind of reply.",
        steps_label="4 steps · JSON + condition",
        definition={
            "name": "Classify and route",
            "description": "Classify a support ticket and draft the matching reply",
            "inputs": [
                {"name": "ticket", "type": "text", "required": True},
                {"name": "tone", "type": "text", "required": False, "default": "friendly"},
            ],
            "steps": [
                {
                    "key": "triage",
                    "type": "llm",
                    "title": "Classify the ticket",
                    "system": "You triage customer support tickets.",
                    "prompt": "Classify this ticket.\n\n{{ ticket }}",
                    "temperature": 0,
                    "max_tokens": 200,
                    "response_format": {
                        "type": "json_schema",
                        "name": "triage",
                        "schema": _TRIAGE_SCHEMA,
                    },
                },
                {
                    "key": "route",
                    "type": "condition",
                    "title": "Route by category",
                    "cases": [
                        {
                            "left": "{{ triage.category }}",
                            "op": "equals",
                            "right": "billing",
                            "goto": "billing_reply",
                        }
                    ],
                    "else": "reply",
                },
                {
                    "key": "billing_reply",
                    "type": "llm",
                    "title": "Billing reply",
                    "prompt": "Write a {{ tone }} reply to this billing question. "
                    "Urgency: {{ triage.urgency }}.\n\n{{ ticket }}",
                    "next": "end",
                },
                {
                    "key": "reply",
                    "type": "llm",
                    "title": "General reply",
                    "prompt": (
                        "Write a {{ tone }} reply to this ticket. Urgency: {{ triage.urgency "
                        "}}.\n\n{{ ticket }}"
                    ),
                },
            ],
            "output": "{{ billing_reply }}{{ reply }}",
        },
    ),
    Starter(
        slug="extract-json",
        name="Extract JSON",
        summary="Pull names, emails and topics out of free text as structured JSON.",
        steps_label="1 step · JSON schema",
        definition={
            "name": "Extract JSON",
            "description": "Extract contact details from an email as JSON",
            "inputs": [
                {
                    "name": "email_text",
                    "type": "text",
                    "required": True,
                    "description": "An email or message to read",
                }
            ],
            "steps": [
                {
                    "key": "contact",
                    "type": "llm",
                    "title": "Extract the contact",
                    "system": (
                        "You extract facts from text. Use null when a value is not in the text."
                    ),
                    "prompt": (
                        "Extract the sender's contact details and the topics they raise.\n\n{{ "
                        "email_text }}"
                    ),
                    "temperature": 0,
                    "max_tokens": 500,
                    "response_format": {
                        "type": "json_schema",
                        "name": "contact",
                        "schema": _CONTACT_SCHEMA,
                    },
                },
            ],
            "output": None,
        },
    ),
    Starter(
        slug="outline-draft",
        name="Outline, then draft",
        summary="Plan an article as an outline first, then write it from the outline.",
        steps_label="2 steps",
        definition={
            "name": "Outline, then draft",
            "description": "Plan a piece of writing, then write it",
            "inputs": [
                {"name": "topic", "type": "text", "required": True},
                {
                    "name": "audience",
                    "type": "text",
                    "required": False,
                    "default": "curious beginners",
                },
            ],
            "steps": [
                {
                    "key": "outline",
                    "type": "llm",
                    "title": "Outline",
                    "prompt": "Write a short outline (4 to 6 headings, one line each) "
                    "for an article about {{ topic }} for {{ audience }}.",
                    "temperature": 0.7,
                    "max_tokens": 400,
                },
                {
                    "key": "draft",
                    "type": "llm",
                    "title": "Draft",
                    "system": "You are a clear, warm writer.",
                    "prompt": "Write the article about {{ topic }} for {{ audience }}, "
                    "following this outline:\n\n{{ outline }}",
                    "temperature": 0.7,
                    "max_tokens": 2000,
                },
            ],
            "output": None,
        },
    ),
)

BY_SLUG: dict[str, Starter] = {starter.slug: starter for starter in (BLANK, *STARTERS)}


def starter_for(slug: str) -> Starter | None:
    return BY_SLUG.get(slug)
