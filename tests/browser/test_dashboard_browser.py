"""The dashboard in a real Chromium against a real server on a seeded SQLite file.

Each test opens a fresh context (no cookies), signs in through the form and checks that the
browser logged no error. The tests share one server and database, so each looks for its own
effect (a new cycle, its approval answered, its execution undone) rather than for counts.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.dashboard_security import CONTENT_SECURITY_POLICY, SESSION_COOKIE
from environment.kpis import TARGETED
from tests.browser.conftest import ROOT, TREND_CYCLES, Console, Server, open_page, sign_in

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect
WAIT_MS = 60_000
"""How long a control may take in the browser (a cycle on a busy 2-core machine: seconds)."""

README_SCREENSHOT = ROOT / "docs" / "dashboard.png"
SECTIONS = (
    "#sec-scores",
    "#sec-issues",
    "#sec-approvals",
    "#sec-activity",
    "#sec-audit",
    "#sec-learning",
)


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth"))


def test_sign_in_sets_a_strict_httponly_cookie_and_never_puts_the_key_in_the_url(
    browser: Any, server: Server, console: Console
) -> None:
    page = open_page(browser, server, console)
    page.fill("#api-key", "not-a-key")
    page.click("button[type=submit]")
    assert "unknown or revoked API key" in page.inner_text(".error")
    assert not page.context.cookies()
    # the refused form answers 400, which the browser logs; nothing else may be logged
    assert [e for e in console.errors if "400" not in e] == []
    console.errors.clear()

    sign_in(page, server, "operator")
    (cookie,) = page.context.cookies()
    assert cookie["name"] == SESSION_COOKIE
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert server.keys["operator"] not in cookie["value"]
    assert server.keys["operator"] not in page.url
    stored = page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert server.keys["operator"] not in stored
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts
    assert "olga (operator)" in page.inner_text("footer")
    assert console.errors == []


def test_every_section_is_filled_and_readable_at_1280_and_390_px(
    browser: Any, server: Server, console: Console, artifacts: Path
) -> None:
    for width in (1280, 390):
        page = open_page(browser, server, console, width=width)
        sign_in(page, server, "admin")  # every control shows
        response = page.request.get(server.url + "/")
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.inner_text("#kill-state") == "kill switch off"
        assert "rules" in page.inner_text("#policy")
        assert page.inner_text("#last-cycle").startswith("#")
        assert page.inner_text("#next-cycle").endswith("(scheduled tick)")
        assert float(page.inner_text("#health-score")) > 0
        assert float(page.inner_text("#alignment-score")) > 0
        assert page.locator("#sec-scores table.kpis tbody tr").count() == len(TARGETED)
        for chart in ("#chart-scores", "#chart-kpis"):
            assert page.locator(f"{chart} canvas").count() == 1, f"{chart} has no chart"
        assert page.locator("#sec-issues .finding").count() > 0
        assert page.locator("#sec-issues .proposal code").count() > 0
        assert page.locator("#approvals tbody tr").count() > 0
        assert page.locator("#cycles tbody tr").count() >= TREND_CYCLES
        assert page.locator("#decisions tbody tr").count() > 0
        assert page.locator("#audit tbody tr").count() == 20
        expect(page.locator("#adoption")).to_contain_text("adoption", timeout=WAIT_MS)
        assert page.locator("#thresholds tbody tr").count() > 0
        assert "Not available yet" in page.inner_text("#ope")
        for selector in SECTIONS:
            assert page.locator(selector).inner_text().strip(), f"{selector} is empty"
        assert no_horizontal_scroll(page), f"the page scrolls sideways at {width} px"
        shot = artifacts / f"dashboard-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        if width == 1280:
            README_SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, README_SCREENSHOT)
        page.context.close()
    assert console.errors == []


def test_dry_run_cycle_from_the_button_shows_its_result_in_place(
    browser: Any, server: Server, console: Console
) -> None:
    page = open_page(browser, server, console)
    sign_in(page, server, "admin")  # the seed's endpoints need admin by default
    before = page.locator("#cycles tbody tr").count()
    assert not page.is_checked("#cycle-live")  # dry run unless the operator says otherwise
    page.click("#run-cycle")
    expect(page.locator("#control-result")).to_contain_text("dry_run", timeout=WAIT_MS)
    result = page.inner_text("#control-result")
    assert "(full, dry_run)" in result
    assert "health" in result
    assert "policy rules" in result
    expect(page.locator("#cycles tbody tr")).to_have_count(before + 1, timeout=WAIT_MS)
    assert "dry_run" in page.locator("#cycles tbody tr").first.inner_text()
    assert console.errors == []


def test_approve_a_held_decision_then_undo_its_execution_from_the_row(
    browser: Any, server: Server, console: Console
) -> None:
    page = open_page(browser, server, console)
    sign_in(page, server, "operator")
    row = page.locator("#approvals tbody tr", has_text="orphan_cleanup").first
    approval_id = row.get_attribute("data-approval")
    row.locator("button[data-answer=approve]").click()
    expect(page.locator("#control-result")).to_contain_text("approved", timeout=WAIT_MS)
    result = page.inner_text("#control-result")
    assert f"approval {approval_id} approved by olga" in result
    execution_id = result.rsplit("execution ", 1)[1].strip()
    expect(page.locator(f"#approvals tr[data-approval='{approval_id}']")).to_have_count(0)

    undo = page.locator(f"button[data-undo='{execution_id}']")
    undo.wait_for()
    undo.click()
    expect(page.locator("#control-result")).to_contain_text("undone", timeout=WAIT_MS)
    assert f"execution {execution_id} (orphan_cleanup) undone" in page.inner_text("#control-result")
    expect(page.locator(f"button[data-undo='{execution_id}']")).to_have_count(0)
    expect(page.locator("#audit tbody tr").first).to_contain_text("undo")
    assert console.errors == []


def test_an_operator_gets_the_controls_its_role_allows_and_csrf_is_enforced(
    browser: Any, server: Server, console: Console
) -> None:
    page = open_page(browser, server, console)
    sign_in(page, server, "operator")
    assert page.locator("#kill-toggle").count() == 1
    assert page.locator("button[data-answer=approve]").count() > 0
    assert page.locator("#run-cycle").count() == 0  # the seed's run-cycle is admin-only here
    without_token = page.evaluate(
        """async () => (await fetch('/api/v1/kill-switch', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({on: true, reason: 'forged'})})).json()"""
    )
    assert without_token["status"] == 403
    assert "CSRF" in without_token["detail"]
    page.reload()
    assert page.inner_text("#kill-state") == "kill switch off"
    assert [e for e in console.errors if "403" not in e] == []  # only the refused post


def test_kill_switch_needs_a_reason_and_a_confirmation_and_toggles_back(
    browser: Any, server: Server, console: Console
) -> None:
    page = open_page(browser, server, console)
    sign_in(page, server, "operator")
    page.click("#kill-toggle")
    assert "give a reason" in page.inner_text("#control-result")
    assert page.inner_text("#kill-state") == "kill switch off"

    page.fill("#kill-reason", "browser test pause")
    page.click("#kill-toggle")
    expect(page.locator("#kill-state")).to_contain_text("ON", timeout=WAIT_MS)
    assert "browser test pause" in page.inner_text("#kill-state")
    page.click("#kill-toggle")  # now "Resume executions"
    expect(page.locator("#kill-state")).to_have_text("kill switch off", timeout=WAIT_MS)
    assert console.errors == []


def test_audit_pages_and_verifies(browser: Any, server: Server, console: Console) -> None:
    page = open_page(browser, server, console)
    sign_in(page, server, "viewer")
    first = page.locator("#audit tbody tr").first.inner_text()
    page.click("#audit-older")
    expect(page.locator("#audit tbody tr").first).not_to_have_text(first, timeout=WAIT_MS)
    assert page.locator("#audit tbody tr").count() > 0
    page.click("#audit-verify")
    expect(page.locator("#audit-verification")).to_contain_text("intact:", timeout=WAIT_MS)
    assert console.errors == []


def test_a_viewer_sees_no_controls_and_cannot_post_them(
    browser: Any, server: Server, console: Console
) -> None:
    page = open_page(browser, server, console)
    sign_in(page, server, "viewer")
    for control in ("#controls", "#kill-toggle", "button[data-answer]", "button[data-undo]"):
        assert page.locator(control).count() == 0, f"a viewer sees {control}"
    token = page.get_attribute("meta[name=csrf-token]", "content")
    status = page.evaluate(
        """async (token) => (await fetch('/api/v1/kill-switch', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token},
            body: JSON.stringify({on: true, reason: 'x'})})).status""",
        token,
    )
    assert status == 403
    assert [e for e in console.errors if "403" not in e] == []  # only the refused post


def test_a_client_key_cannot_sign_in_and_cross_site_posts_are_refused(
    browser: Any, server: Server, console: Console
) -> None:
    page = open_page(browser, server, console)
    page.fill("#api-key", server.keys["client"])
    page.click("button[type=submit]")
    assert "a client key cannot use the dashboard" in page.inner_text(".error")
    assert all("400" in e for e in console.errors)
    refused = httpx.post(
        f"{server.url}/dashboard/sign-in",
        data={"api_key": server.keys["operator"]},
        headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert refused.status_code == 403
    assert SESSION_COOKIE not in refused.cookies
