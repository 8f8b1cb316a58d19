"""The portal as a researcher uses it: headless Chromium against `heliocloud sandbox`.

Also takes the screenshots of the user guide: `HELIOCLOUD_SCREENSHOTS=1 pytest -m browser` refreshes
docs/img/portal-*.png.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from sandbox_support import running_sandbox

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
# The user guide's screenshots: refreshed into docs/img/ when HELIOCLOUD_SCREENSHOTS=1 (so a plain
# test run leaves the working tree clean), otherwise taken into a scratch folder.
SHOTS = REPO / "docs" / "img" if os.environ.get("HELIOCLOUD_SCREENSHOTS") == "1" else Path(tempfile.mkdtemp(prefix="portal-shots-"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with running_sandbox(tmp_path_factory.mktemp("portal-sandbox"), timeout=120) as (_, endpoints):
        yield endpoints


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def sign_in(page, endpoints, user):
    page.goto(endpoints["portal"])
    page.fill("#signin-form input[name=email]", endpoints["users"][user]["email"])
    page.fill("#signin-form input[name=password]", endpoints["users"][user]["password"])
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#dashboard:not([hidden])")
    page.locator("#chart rect").nth(6).wait_for(state="attached")
    assert page.locator("#chart rect").count() == 7


def test_researcher_journey(sandbox, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(sandbox["portal"])
    page.wait_for_selector("#signin-view:not([hidden])")
    page.screenshot(path=SHOTS / "portal-signin.png")
    sign_in(page, sandbox, "alice")
    assert page.text_content("#who") == sandbox["users"]["alice"]["email"]

    # Spend cards: the sandbox seeds a week of demo history for alice.
    assert page.text_content("#spend-month").startswith("$")
    assert page.text_content("#spend-week").startswith("$")
    assert "billed through" in page.text_content("#spend-billed")
    assert "of $100.00" in page.text_content("#budget-figures")

    # A key pair: the private key is shown once, then gone.
    page.fill("#key-form input[name=name]", "laptop")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#new-key:not([hidden])")
    assert "PRIVATE KEY" in page.input_value("#new-key-text")
    with page.expect_download() as download:
        page.click("#new-key-download")
    assert download.value.suggested_filename == "laptop.pem"
    page.screenshot(path=SHOTS / "portal-new-key.png", full_page=True)
    page.click("#new-key-done")
    assert page.is_hidden("#new-key") and page.input_value("#new-key-text") == ""
    page.wait_for_selector("#keys li:has-text('laptop')")
    # Asking again gives an error in words, not the key.
    page.fill("#key-form input[name=name]", "laptop")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "already have a key pair named 'laptop'" in page.text_content("#error")
    page.fill("#key-form input[name=name]", "")
    listed = page.evaluate("""async () => (await fetch('/api/keys', {headers: {Authorization:
        'Bearer ' + sessionStorage.getItem('heliocloud.id_token')}})).text()""")
    assert "PRIVATE KEY" not in listed and "laptop" in listed

    # Launch a GPU VM with that key; it shows up running with its SSH command.
    page.fill("#launch-form input[name=name]", "sdo-analysis")
    page.select_option("#launch-form select[name=image]", "Ubuntu 24.04 LTS")
    page.select_option("#launch-form select[name=instance_type]", "g4dn.xlarge")
    page.select_option("#launch-form select[name=key_name]", "laptop")
    page.click("#launch-form button[type=submit]")
    row = page.locator("#running tr:has-text('sdo-analysis')")
    row.locator(".state.running").wait_for(timeout=15000)
    ssh = row.locator("code.ssh").text_content()
    assert ssh.startswith("ssh -i ~/.ssh/laptop.pem ubuntu@")
    page.fill("#launch-form input[name=name]", "notebook-cpu")
    page.select_option("#launch-form select[name=image]", "Amazon Linux 2023")
    page.select_option("#launch-form select[name=instance_type]", "m6i.large")
    page.click("#launch-form button[type=submit]")
    page.locator("#running tr:has-text('notebook-cpu') .state.running").wait_for(timeout=15000)
    page.wait_for_selector("#spend-rate:has-text('/h right now')", timeout=15000)
    page.screenshot(path=SHOTS / "portal-dashboard.png", full_page=True)

    # Stop it: it moves to Previously Stopped, with Start and Terminate.
    row.locator("button:has-text('Stop')").click()
    stopped = page.locator("#stopped tr:has-text('sdo-analysis')")
    stopped.locator(".state.stopped").wait_for(timeout=15000)
    assert stopped.locator("button:has-text('Start')").is_visible()
    assert stopped.locator("button:has-text('Terminate')").is_visible()
    assert "stopped by you" in stopped.text_content()
    page.screenshot(path=SHOTS / "portal-stopped.png", full_page=True)

    # Start it again, stop it, then terminate it (after confirming): it is gone from both lists.
    stopped.locator("button:has-text('Start')").click()
    row.locator(".state.running").wait_for(timeout=15000)
    row.locator("button:has-text('Stop')").click()
    stopped.locator(".state.stopped").wait_for(timeout=15000)
    page.once("dialog", lambda dialog: dialog.accept())
    stopped.locator("button:has-text('Terminate')").click()
    stopped.wait_for(state="detached", timeout=15000)
    assert page.locator("tr:has-text('sdo-analysis')").count() == 0

    # Admin view: alice is in the admins group.
    page.wait_for_selector("#admin:not([hidden]) #admin-table tbody tr")
    assert sandbox["users"]["bob"]["email"] in page.text_content("#admin-table")
    page.locator("#admin").screenshot(path=SHOTS / "portal-admin.png")
    assert errors == []
    context.close()


def test_bob_sees_nothing_of_alices_and_his_budget_in_words(sandbox, browser):
    import requests

    users = sandbox["users"]
    alice = requests.post(f"{sandbox['portal']}/auth/signin", timeout=10,
                          json={"email": users["alice"]["email"], "password": users["alice"]["password"]}).json()["id_token"]
    budget_url = f"{sandbox['portal']}/api/admin/budgets/{users['bob']['sub']}"
    # An admin (alice) sets bob's budget to zero: "no spending".
    assert requests.put(budget_url, json={"monthly_usd": 0}, headers={"Authorization": f"Bearer {alice}"}, timeout=10).ok
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, sandbox, "bob")
    page.wait_for_selector("#running-empty:not([hidden])")
    assert page.locator("#running tbody tr").count() == 0 and page.locator("#stopped tbody tr").count() == 0
    assert page.locator("#keys li").count() == 0
    assert page.is_hidden("#admin") and page.is_hidden("#admin-link")
    assert "budget is used up" in page.text_content("#budget-message")
    page.fill("#launch-form input[name=name]", "blocked")
    page.click("#launch-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "Your monthly budget of $0.00 is used up" in page.text_content("#error")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / "portal-budget-exceeded.png", clip={"x": 0, "y": 0, "width": 1280, "height": 560})
    assert requests.put(budget_url, json={"monthly_usd": None}, headers={"Authorization": f"Bearer {alice}"}, timeout=10).ok
    context.close()


def test_readable_on_a_phone(sandbox, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, sandbox, "alice")
    page.locator("#running tbody tr").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    page.screenshot(path=SHOTS / "portal-phone.png")
    page.locator("#running").screenshot(path=SHOTS / "portal-phone-instances.png")
    context.close()


def test_hosted_ui_sign_in_with_pkce(sandbox, browser):
    """The deployed sign-in path: authorization code + PKCE against the Cognito hosted UI (its
    two endpoints are played by Playwright routes; the token handed back is a real one from the
    sandbox's pool, so the dashboard then loads through the verified API)."""
    import base64
    import hashlib
    from urllib.parse import parse_qs, urlencode, urlsplit

    import requests

    bob = sandbox["users"]["bob"]
    id_token = requests.post(f"{sandbox['portal']}/auth/signin", json={"email": bob["email"], "password": bob["password"]},
                             timeout=10).json()["id_token"]
    domain = "https://helio-heliocloud.auth.us-east-1.amazoncognito.com"
    redirect = f"{sandbox['portal']}/"
    seen = {}
    context = browser.new_context()

    context.route("**/config.json", lambda route: route.fulfill(json={
        "mode": "cognito", "domain": domain, "client_id": "portal-client", "redirect_uri": redirect}))

    def authorize(route):
        query = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        seen["authorize"] = query
        route.fulfill(status=302, headers={"Location": f"{redirect}?{urlencode({'code': 'c0de', 'state': query['state']})}"})

    def token(route):
        form = {k: v[0] for k, v in parse_qs(route.request.post_data).items()}
        seen["token"] = form
        route.fulfill(json={"id_token": id_token, "token_type": "Bearer", "expires_in": 3600},
                      headers={"Access-Control-Allow-Origin": sandbox["portal"]})

    context.route(f"{domain}/oauth2/authorize**", authorize)
    context.route(f"{domain}/oauth2/token", token)
    page = context.new_page()
    page.goto(sandbox["portal"])
    page.click("#hosted-signin")
    page.wait_for_selector("#dashboard:not([hidden])")
    assert page.text_content("#who") == bob["email"]
    auth = seen["authorize"]
    assert auth["response_type"] == "code" and auth["client_id"] == "portal-client"
    assert auth["code_challenge_method"] == "S256" and auth["redirect_uri"] == redirect
    form = seen["token"]
    assert form["grant_type"] == "authorization_code" and form["code"] == "c0de"
    digest = base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"].encode()).digest()).rstrip(b"=").decode()
    assert digest == auth["code_challenge"]
    assert "code=" not in page.url  # the code is removed from the address bar
    context.close()


def test_researcher_signs_in_to_the_hub_picks_a_size_and_jupyterlab_opens(sandbox, browser):
    """The hub as the researcher guide shows it: sign in with HelioCloud, the size form, JupyterLab."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    alice = sandbox["users"]["alice"]
    page.goto(sandbox["hub"]["url"])
    page.wait_for_selector("a:has-text('Sign in with HelioCloud')")
    page.screenshot(path=SHOTS / "hub-signin.png")
    page.click("a:has-text('Sign in with HelioCloud')")
    page.fill("input[name=email]", alice["email"])
    page.fill("input[name=password]", alice["password"])
    page.click("button[type=submit]")
    page.wait_for_selector("#spawn_form #heliocloud-profiles")
    page.check("input[name=profile][value=medium]")
    page.screenshot(path=SHOTS / "hub-spawn.png")
    page.click("#spawn_form button[type=submit]")
    # JupyterLab's shell, then its launcher with the Python kernel of the HelioCloud environment.
    page.wait_for_selector(".jp-LabShell", timeout=180_000)
    page.wait_for_selector(".jp-Launcher", timeout=120_000)
    assert f"/user/{alice['email']}/lab" in page.url.replace("%40", "@")
    page.screenshot(path=SHOTS / "hub-jupyterlab.png")
    context.close()
