"""A secret shown once is not shown again by Back, Forward or a reload."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.factories import published_workflow


def test_a_new_api_token_is_gone_after_navigating_away_and_back(
    page: Page, live_app, personas, log_in
) -> None:  # type: ignore[no-untyped-def]
    log_in("alice@example.com")
    tokens = f"{live_app.url}/w/{personas.workspace.slug}/settings/api-tokens/"
    page.goto(tokens)
    page.get_by_label("Name").fill("Deploy script")
    page.get_by_role("button", name="Create token").click()
    value = page.locator("#new-token-value").inner_text()
    assert value.startswith("sw_") and len(value) > 30
    assert page.url == tokens  # the POST answered with a redirect to the page

    page.get_by_role("link", name="Settings").first.click()
    page.wait_for_url(lambda url: url != tokens)
    page.go_back()
    page.wait_for_url(tokens)
    expect(page.get_by_role("heading", name="API tokens", level=1)).to_be_visible()
    expect(page.locator("#new-token-value")).to_have_count(0)
    assert value not in page.content()

    page.go_forward()
    page.go_back()
    page.reload()
    expect(page.get_by_role("heading", name="API tokens", level=1)).to_be_visible()
    assert value not in page.content()


def test_a_new_webhook_secret_is_gone_after_navigating_away_and_back(
    page: Page, live_app, personas, log_in
) -> None:  # type: ignore[no-untyped-def]
    workflow = published_workflow(personas.workspace)
    log_in("alice@example.com")
    triggers = f"{live_app.url}/w/{personas.workspace.slug}/workflows/{workflow.id}/triggers/"
    page.goto(triggers)
    page.get_by_role("button", name="Add webhook").click()
    secret = page.locator("#new-secret-value").inner_text()
    assert secret.startswith("whsec_")
    assert page.url == triggers + "#new-secret"  # the POST answered with a redirect to the page

    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/")
    page.go_back()
    page.wait_for_url(lambda url: url.startswith(triggers))
    expect(page.locator("#new-secret-value")).to_have_count(0)
    assert secret not in page.content()
    page.reload()
    assert secret not in page.content()


def test_revoking_a_token_asks_first_and_does_nothing_when_declined(
    page: Page, live_app, personas, log_in
) -> None:  # type: ignore[no-untyped-def]
    """hx-confirm on the boosted form: the browser's dialog, and no request when it is declined."""
    log_in("alice@example.com")
    page.goto(f"{live_app.url}/w/{personas.workspace.slug}/settings/api-tokens/")
    page.get_by_label("Name").fill("Deploy script")
    page.get_by_role("button", name="Create token").click()
    questions: list[str] = []

    def answer(dialog, accept: bool) -> None:  # type: ignore[no-untyped-def]
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    page.get_by_role("button", name="Revoke").click()
    page.wait_for_timeout(500)
    assert questions == ["Revoke “Deploy script”? Programs using it stop working at once."]
    expect(page.locator(".badge-danger", has_text="Revoked")).to_have_count(0)

    page.once("dialog", lambda dialog: answer(dialog, True))
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator(".badge-danger", has_text="Revoked")).to_have_count(1)
    assert len(questions) == 2
