"""Sign-in: the key goes in a form (never a URL), becomes an HttpOnly SameSite=Strict session
cookie, sees only its tenant, and sign-out ends it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.ui.conftest import Server, shot
from tests.ui.world import QUICK_SPEC, api, sign_in, submit, upload_digits, wait_final


def test_sign_in_lists_the_tenants_runs_and_sign_out_ends_it(
    server: Server, page: Page, page_urls: list[str], console_errors: list[str]
) -> None:
    run_id = submit(server, upload_digits(server), QUICK_SPEC, name="listed-over-the-api")

    page.goto(f"{server.base}/")
    assert page.url.endswith("/ui/login")  # / -> /ui/runs -> sign-in
    page.get_by_test_id("api-key").fill("dsk_000000000000_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("invalid API key")
    shot(page, "sign-in-refused")

    sign_in(page, server)
    row = page.locator(f'[data-testid="run-row"][data-run-id="{run_id}"]')
    expect(row).to_contain_text("listed-over-the-api")
    cookie = next(c for c in page.context.cookies() if c["name"] == "descent_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert server.key not in cookie["value"]
    # The page's script cannot read the session.
    assert "descent_session" not in page.evaluate("document.cookie")
    wait_final(server, run_id)
    page.reload()
    expect(row.get_by_test_id("run-status")).to_have_text("succeeded")
    shot(page, "runs-page")

    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("login")).to_be_visible()
    page.goto(f"{server.base}/ui/runs")
    expect(page.get_by_test_id("login")).to_be_visible()  # the session is gone, not just hidden
    assert not any(server.key in url for url in page_urls), page_urls
    # Nor in the server's log, beyond the start-up line that hands it out.
    assert server.log.read_text().count(server.key) == 1
    # The one error is the refused sign-in's own 401.
    assert [e for e in console_errors if "401 (Unauthorized)" not in e] == []
    assert len(console_errors) == 1


def test_another_tenants_run_and_model_are_not_found(
    server: Server, other_key: str, page: Page, console_errors: list[str]
) -> None:
    run_id = submit(server, upload_digits(server), QUICK_SPEC)
    model_id = wait_final(server, run_id)["model_id"]
    sign_in(page, server, other_key)
    expect(page.locator(f'[data-run-id="{run_id}"]')).to_have_count(0)
    for path in (f"/ui/runs/{run_id}", f"/ui/models/{model_id}", f"/ui/compare?run={run_id}"):
        response = page.goto(f"{server.base}{path}")
        assert response is not None and response.status == 404, path
        expect(page.get_by_test_id("error-page")).to_contain_text("not found")
    shot(page, "not-found")
    # The same answer as the API gives that tenant.
    with api(server, other_key) as http:
        assert http.get(f"/v1/runs/{run_id}").status_code == 404
    assert not [e for e in console_errors if "404" not in e]


def test_a_cross_site_post_is_refused(server: Server, page: Page) -> None:
    """A state-changing call with the cookie but without the page's CSRF token is 403."""
    dataset_id = upload_digits(server)
    sign_in(page, server)
    status = page.evaluate(
        """async (dataset) => (await fetch('/v1/runs', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({dataset_id: dataset, spec: {epochs: 1}})})).status""",
        dataset_id,
    )
    assert status == 403
    with_token = page.evaluate(
        """async (dataset) => (await Descent.api('/v1/runs', {method: 'POST',
            json: {dataset_id: dataset, spec: {epochs: 1}}})).status""",
        dataset_id,
    )
    assert with_token == "queued"


def test_names_are_shown_as_text_never_run(
    server: Server, page: Page, console_errors: list[str]
) -> None:
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    run_id = submit(server, upload_digits(server, name="<b>bold</b>"), QUICK_SPEC, name=hostile)
    wait_final(server, run_id)
    sign_in(page, server)
    for path in ("/ui/runs", f"/ui/runs/{run_id}", f"/ui/compare?run={run_id}", "/ui/datasets"):
        page.goto(f"{server.base}{path}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.pwned") is None, path
    page.goto(f"{server.base}/ui/runs/{run_id}")
    expect(page.locator("h1")).to_have_text(hostile)
    assert console_errors == []
