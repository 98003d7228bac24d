"""Sign-up: a neutral answer, a confirmation link by email, and login only once confirmed."""

from __future__ import annotations

import re

import pytest
from django.core import mail, signing
from django.test import Client

from accounts.models import Membership, Role, User

pytestmark = pytest.mark.django_db

PASSPHRASE = "a long enough passphrase"
LINK = re.compile(r"http://[^\s]+(/accounts/verify/[^\s/]+/)")


@pytest.fixture
def mails(django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Run a request and send the mail it queued on commit, as the server does."""

    def run(request):  # type: ignore[no-untyped-def]
        with django_capture_on_commit_callbacks(execute=True):
            return request()

    return run


def sign_up(client: Client, mails, email: str = "dana@example.com", name: str = "Dana", **extra):  # type: ignore[no-untyped-def]
    return mails(
        lambda: client.post(
            "/accounts/signup/", {"name": name, "email": email, "password": PASSPHRASE}, **extra
        )
    )


def link_in(message) -> str:  # type: ignore[no-untyped-def]
    return LINK.search(message.body).group(1)  # type: ignore[union-attr]


def log_in(client: Client, email: str = "dana@example.com", password: str = PASSPHRASE):  # type: ignore[no-untyped-def]
    return client.post("/accounts/login/", {"username": email, "password": password})


def test_it_creates_an_unconfirmed_user_with_a_workspace_and_mails_a_link(
    client: Client, mails
) -> None:  # type: ignore[no-untyped-def]
    response = sign_up(client, mails, email="Dana@Example.com")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/sent/"
    user = User.objects.get(email="dana@example.com")
    assert user.email_verified_at is None
    membership = Membership.objects.select_related("workspace").get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.name == "Dana's workspace"
    assert [m.to for m in mail.outbox] == [["dana@example.com"]]
    assert mail.outbox[0].subject == "Confirm your email address for Stepwise"
    assert link_in(mail.outbox[0])
    page = client.get("/accounts/signup/sent/").content.decode()
    assert "dana@example.com" in page and "Check your inbox" in page
    # Not logged in yet.
    assert client.get(f"/w/{membership.workspace.slug}/").status_code == 302


def test_an_unconfirmed_account_cannot_log_in_and_is_told_why(client: Client, mails) -> None:  # type: ignore[no-untyped-def]
    sign_up(client, mails)
    response = log_in(Client())
    assert response.status_code == 200
    assert "Confirm your email address first" in response.content.decode()
    assert "_auth_user_id" not in Client().session


def test_the_link_confirms_the_address_and_logs_in_the_browser_that_signed_up(
    client: Client, mails
) -> None:  # type: ignore[no-untyped-def]
    sign_up(client, mails)
    link = link_in(mail.outbox[0])
    page = client.get(link)
    # Opening the link changes nothing (mail scanners open links): the button does.
    assert page.status_code == 200 and "Confirm" in page.content.decode()
    assert User.objects.get().email_verified_at is None
    response = client.post(link)
    slug = Membership.objects.get().workspace.slug
    assert response.status_code == 302 and response["Location"] == "/"
    assert User.objects.get().email_verified_at is not None
    assert client.get(f"/w/{slug}/").status_code == 200


def test_the_link_opened_in_another_browser_confirms_then_asks_to_log_in(
    client: Client, mails
) -> None:  # type: ignore[no-untyped-def]
    sign_up(client, mails)
    other = Client()
    response = other.post(link_in(mail.outbox[0]))
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert log_in(other).status_code == 302
    # A second click says it is done, without an error.
    again = other.post(link_in(mail.outbox[0]), follow=True)
    assert again.status_code == 200


def test_an_expired_or_tampered_link_is_refused_with_a_way_to_get_a_new_one(
    client: Client, mails, settings
) -> None:  # type: ignore[no-untyped-def]
    sign_up(client, mails)
    link = link_in(mail.outbox[0])
    tampered = client.get(link[:-3] + "xx/")
    assert tampered.status_code == 410
    assert 'action="/accounts/verify/resend/"' in tampered.content.decode()
    user = User.objects.get()
    old = signing.TimestampSigner(salt="accounts.verify-email").sign_object(
        {"id": user.id, "email": user.email}
    )
    settings.EMAIL_VERIFICATION_HOURS = 0
    assert client.post(f"/accounts/verify/{old}/").status_code == 410
    assert User.objects.get().email_verified_at is None


def test_a_taken_email_gets_the_same_answer_and_its_owner_a_warning(client: Client, mails) -> None:  # type: ignore[no-untyped-def]
    sign_up(client, mails, email="new@example.com")
    fresh_page = client.get("/accounts/signup/sent/").content.decode()
    owner = User.objects.create_user(
        email="taken@example.com", password="the owner's own passphrase"
    )
    mail.outbox.clear()
    other = Client()
    response = sign_up(other, mails, email="TAKEN@example.com")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/sent/"
    taken_page = other.get("/accounts/signup/sent/").content.decode()
    assert _same_but_tokens(taken_page, fresh_page)
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1
    owner.refresh_from_db()
    assert owner.check_password("the owner's own passphrase")
    [warning] = mail.outbox
    assert warning.to == ["taken@example.com"]
    assert warning.subject == "Someone tried to sign up to Stepwise with your address"
    assert "/accounts/login/" in warning.body and "/accounts/password_reset/" in warning.body


def _same_but_tokens(a: str, b: str) -> bool:
    token = re.compile(
        r'[A-Za-z0-9]{64}|nonce="[^"]+"'
    )  # CSRF tokens and CSP nonces differ per request
    return token.sub("", a).replace("taken@example.com", "X") == token.sub("", b).replace(
        "new@example.com", "X"
    )


def test_the_sent_page_says_when_mail_is_not_configured(client: Client, mails, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_CONFIGURED = False
    sign_up(client, mails)
    page = client.get("/accounts/signup/sent/").content.decode()
    assert "Mail is not configured on this server (EMAIL_URL)" in page
    assert "server&#x27;s log" in page or "server's log" in page
    assert "Mail is not configured" in client.get("/accounts/signup/").content.decode()
    settings.MAIL_CONFIGURED = True
    assert "Mail is not configured" not in client.get("/accounts/signup/sent/").content.decode()


def test_a_new_link_can_be_requested_with_the_same_answer_for_every_address(
    client: Client, mails
) -> None:  # type: ignore[no-untyped-def]
    sign_up(client, mails)
    User.objects.create_user(email="confirmed@example.com", password=PASSPHRASE)
    mail.outbox.clear()
    answers = [
        mails(lambda e=email: Client().post("/accounts/verify/resend/", {"email": e}))
        for email in ("dana@example.com", "confirmed@example.com", "nobody@example.com")
    ]
    assert {(a.status_code, a["Location"]) for a in answers} == {(302, "/accounts/signup/sent/")}
    [resent] = mail.outbox
    assert resent.to == ["dana@example.com"]
    assert Client().post(link_in(resent)).status_code == 302
    assert User.objects.get(email="dana@example.com").email_verified_at is not None


def test_sign_up_mails_to_one_address_are_rate_limited(client: Client, mails, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_LIMIT_PER_RECIPIENT = 2
    sign_up(client, mails)
    mails(lambda: client.post("/accounts/verify/resend/", {"email": "dana@example.com"}))
    refused = mails(lambda: client.post("/accounts/verify/resend/", {"email": "dana@example.com"}))
    assert refused.status_code == 429
    assert (
        "Too many emails were requested to this address in the last hour"
        in refused.content.decode()
    )
    assert int(refused["Retry-After"]) > 0
    assert len(mail.outbox) == 2


def test_sign_ups_from_one_address_are_rate_limited(client: Client, mails, settings) -> None:  # type: ignore[no-untyped-def]
    settings.MAIL_LIMIT_PER_IP = 3
    for n in range(3):
        assert sign_up(client, mails, email=f"bot{n}@example.com").status_code == 302
    refused = sign_up(client, mails, email="bot9@example.com")
    assert refused.status_code == 429
    assert "Too many emails were requested from your network" in refused.content.decode()
    assert not User.objects.filter(email="bot9@example.com").exists()
    # Another client address is not affected.
    assert (
        sign_up(Client(), mails, email="real@example.com", REMOTE_ADDR="198.51.100.20").status_code
        == 302
    )


def test_a_password_reset_confirms_the_address(client: Client, mails) -> None:  # type: ignore[no-untyped-def]
    sign_up(client, mails)
    mail.outbox.clear()
    mails(lambda: client.post("/accounts/password_reset/", {"email": "dana@example.com"}))
    reset_link = re.search(r"http://[^\s]+(/accounts/reset/[^\s]+/)", mail.outbox[0].body).group(1)  # type: ignore[union-attr]
    form_url = client.get(reset_link)["Location"]
    new = "another long passphrase"
    response = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert response.status_code == 302
    assert User.objects.get().email_verified_at is not None
    assert log_in(Client(), password=new).status_code == 302


def test_it_refuses_a_weak_password(client: Client) -> None:
    response = client.post("/accounts/signup/", {"email": "weak@example.com", "password": "123"})
    assert response.status_code == 200
    assert not User.objects.filter(email="weak@example.com").exists()
    assert "too short" in response.content.decode()


def test_two_users_with_the_same_name_get_distinct_workspace_slugs(client: Client, mails) -> None:  # type: ignore[no-untyped-def]
    sign_up(client, mails, email="sam1@example.com", name="Sam")
    sign_up(Client(), mails, email="sam2@example.com", name="Sam")
    slugs = set(Membership.objects.values_list("workspace__slug", flat=True))
    assert len(slugs) == 2


def test_the_sign_up_page_renders(client: Client) -> None:
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    assert 'name="email"' in response.content.decode()


def test_the_landing_page_renders_for_anonymous_visitors(client: Client) -> None:
    assert client.get("/").status_code == 200
