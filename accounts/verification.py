"""Email confirmation: a new account proves it reads mail at its address before it can log in.

The link carries a signed, timestamped token (`django.core.signing`, so
`SECRET_KEY_FALLBACKS` keep links valid across a key rotation) naming the
account and its address; it expires after `EMAIL_VERIFICATION_HOURS`. Opening
it shows a button: the POST confirms, so a mail scanner that fetches links
confirms nothing. An invitation link and a password reset prove the address
too, and confirm it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.services import user_signup

log = logging.getLogger(__name__)

SALT = "accounts.verify-email"


class LinkUnusable(Exception):
    """A confirmation link that is malformed, tampered with, expired, or for a changed address."""


def verification_token(user: User) -> str:
    return signing.TimestampSigner(salt=SALT).sign_object({"id": user.pk, "email": user.email})


def verification_link(user: User) -> str:
    return f"{settings.SITE_URL}{reverse('email_verify', args=[verification_token(user)])}"


def user_for_token(token: str) -> User:
    """The account a confirmation token names, or LinkUnusable."""
    try:
        data = signing.TimestampSigner(salt=SALT).unsign_object(
            token, max_age=settings.EMAIL_VERIFICATION_HOURS * 3600
        )
    except signing.SignatureExpired:
        raise LinkUnusable("This link has expired.") from None
    except signing.BadSignature:
        raise LinkUnusable("This link is not valid. Check that it was copied whole.") from None
    user = User.objects.filter(id=data.get("id"), email=data.get("email")).first()
    if user is None:
        raise LinkUnusable("This link is not valid any more.")
    return user


@transaction.atomic
def email_verify(*, token: str) -> User:
    """Confirm the address a token names. Confirming twice is harmless."""
    user = user_for_token(token)
    email_mark_verified(user=user)
    return user


def email_mark_verified(*, user: User) -> None:
    """Record that the person proved they read mail at their address (a link we mailed them)."""
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        User.objects.filter(id=user.id, email_verified_at__isnull=True).update(
            email_verified_at=user.email_verified_at
        )


def _send(subject: str, template: str, to: str, context: Mapping[str, object]) -> None:
    try:
        send_mail(subject, render_to_string(template, context), None, [to])
    except Exception:  # SMTP has many ways to fail: the person can ask for another mail
        log.warning("The %s email could not be sent", template, exc_info=True)


def verification_send(user: User) -> None:
    """Mail `user` a new confirmation link, once the transaction commits."""
    link = verification_link(user)
    context = {"link": link, "hours": settings.EMAIL_VERIFICATION_HOURS}
    transaction.on_commit(
        lambda: _send(
            "Confirm your email address for Stepwise",
            "emails/verify_email.txt",
            user.email,
            context,
        )
    )


def _signup_attempt_warn(user: User) -> None:
    context = {
        "login_link": f"{settings.SITE_URL}{reverse('login')}",
        "reset_link": f"{settings.SITE_URL}{reverse('password_reset')}",
    }
    transaction.on_commit(
        lambda: _send(
            "Someone tried to sign up to Stepwise with your address",
            "emails/signup_attempt.txt",
            user.email,
            context,
        )
    )


@transaction.atomic
def signup_request(*, email: str, password: str, name: str = "") -> User | None:
    """Sign up, answering the same whether or not the address has an account.

    A new address gets an unconfirmed account with its own workspace and a
    confirmation link; an address that already has an account gets a mail
    saying someone tried (log in or reset the password), and nothing changes.
    Returns the new user, or None when the address was taken: the caller must
    not let the difference show.
    """
    email = email.strip().lower()
    existing = User.objects.filter(email__iexact=email).first()
    if existing is None:
        try:
            with transaction.atomic():
                user, _ = user_signup(email=email, password=password, name=name)
        except IntegrityError:  # the same address signed up a moment ago
            existing = User.objects.get(email__iexact=email)
        else:
            verification_send(user)
            return user
    make_password(
        password
    )  # as long as creating the account takes: the answer's timing tells nothing
    _signup_attempt_warn(existing)
    return None


@transaction.atomic
def verification_resend(*, email: str) -> None:
    """A new confirmation link for an unconfirmed
    account; nothing (and the same answer) otherwise."""
    user = User.objects.filter(
        email__iexact=email.strip(), email_verified_at__isnull=True, is_active=True
    ).first()
    if user is not None:
        verification_send(user)
