"""A person's decision on a waiting step (an approval): what the step keeps
in its state, who may make it, and the signed links emailed to approvers.

Shared by the kind that asks for decisions, the service that records one
(`services.run_decide`) and the pages that show them, so that none of them
names the kind. The step's state (StepRun.state) holds:

- `message`: what was asked, rendered from the run's variables;
- `approvers`: [{"id", "email"}] the members named who may decide (each an
  editor or above when asked); empty when none was named: every member with
  the editor role or above may;
- `asked_at`, `timeout_at` (ISO 8601), `on_timeout` ("approve" | "reject");
- `decision`, once made: {"approved", "by", "by_id", "comment", "at", "via"}.
- `emails_held`: the approvers not emailed because the mail limits held it
  (written after the park, steps/approval/mail.py); absent when all were.

A link is `django.core.signing` over (run, step, user, expiry): it is stored
nowhere, is good for that one member only, until the timeout, and once a
decision is recorded it has nothing left to decide (single use).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core import signing

# Comments longer than this are refused, not cut.
MAX_COMMENT = 2000

_SALT = "stepwise.decision-link"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def asked(state: object) -> bool:
    """Whether a step's state is that of a step asking for a decision."""
    return isinstance(state, Mapping) and "asked_at" in state and "timeout_at" in state


def decision_of(state: object) -> dict[str, object] | None:
    """The decision recorded in a step's state, if one was made."""
    if not isinstance(state, Mapping):
        return None
    decision = state.get("decision")
    return dict(decision) if isinstance(decision, Mapping) else None


def output_of(decision: Mapping[str, object]) -> dict[str, object]:
    """The step's output for a recorded decision: {"approved", "by", "comment", "at"}."""
    return {
        "approved": bool(decision.get("approved")),
        "by": decision.get("by") if isinstance(decision.get("by"), str) else None,
        "comment": str(decision.get("comment") or ""),
        "at": str(decision.get("at") or ""),
    }


def named_approver_ids(state: object) -> list[int]:
    """The ids of the members named as approvers; empty: any editor or above may decide."""
    approvers = state.get("approvers") if isinstance(state, Mapping) else None
    return [
        int(approver["id"])
        for approver in approvers or []
        if isinstance(approver, Mapping) and isinstance(approver.get("id"), int)
    ]


def may_decide(state: object, *, user_id: int, is_editor: bool) -> bool:
    """Whether a member may decide: the editor role or above, and one of the
    named approvers when some were named. A viewer never may."""
    if not is_editor:
        return False
    named = named_approver_ids(state)
    return not named or user_id in named


@dataclass(frozen=True)
class DecisionLink:
    run_id: int
    step_key: str
    user_id: int
    expires_at: datetime


class LinkInvalid(Exception):
    """Not a link we signed (mistyped, cut short, tampered with)."""


class LinkExpired(Exception):
    """A link we signed, past the step's timeout."""


def _signer() -> signing.Signer:
    # "." rather than ":" between the parts: it stays as it is in a URL-encoded
    # `?next=`, where the log scrubbing (config/lib/log_scrub.py) finds it whole.
    return signing.Signer(salt=_SALT, sep=".")


def link_token(*, run_id: int, step_key: str, user_id: int, expires_at: datetime) -> str:
    """The token of a member's decision link (signed with SECRET_KEY, stored nowhere)."""
    payload = {"r": run_id, "s": step_key, "u": user_id, "e": int(expires_at.timestamp())}
    return _signer().sign_object(payload)


def link_read(token: str, *, now: datetime) -> DecisionLink:
    """What a link's token says; LinkInvalid if we did not sign it, LinkExpired past its time."""
    try:
        payload = _signer().unsign_object(token)
    except signing.BadSignature:
        raise LinkInvalid from None
    try:
        link = DecisionLink(
            run_id=int(payload["r"]),
            step_key=str(payload["s"]),
            user_id=int(payload["u"]),
            expires_at=datetime.fromtimestamp(int(payload["e"]), tz=UTC),
        )
    except (KeyError, TypeError, ValueError):
        raise LinkInvalid from None
    if now >= link.expires_at:
        raise LinkExpired
    return link
