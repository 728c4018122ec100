"""The pages in a real browser: Debian's headless Chromium driven by playwright, against a
live embedded server (API process, then a worker process started mid-test). Sign in, upload
through the form, see the submission queued, start the worker, see it turn scored without
navigating (its script polls /s/ID/status; a mark set in the page survives, no frame
navigates), find the row with its interval on both leaderboards, sort, and check that
another team's private entry is absent. Screenshots (also at 390 px) go to the test's tmp
dir. Every process is stopped by its pid (``Live.close``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from tests.evalserver.server.live import Live

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
TASK = "vqa2"


def _browser_or_reason() -> str | None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


@pytest.fixture
def browser() -> Iterator[object]:
    reason = _browser_or_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the browser: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.slow
def test_sign_in_upload_scored_leaderboards_sort_private(
    browser: object, live: Live, tiny_h5: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    alpha = live.team_token("alpha")
    beta = live.team_token("beta")
    base = live.api()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    gt = load_groundtruth(tiny_h5, TASK)
    upload = tmp_path / "predictions.json"
    upload.write_bytes(chance_submission(gt, seed=21))

    # Another team's private entry, through the API.
    with httpx.Client(base_url=base, timeout=60) as api:
        response = api.post(
            "/api/v1/submissions",
            headers={"Authorization": f"Bearer {beta}"},
            files={"file": ("p.json", chance_submission(gt, seed=22))},
            data={"task": TASK, "method_name": "beta-secret", "public": "false"},
        )
        assert response.status_code == 201, response.text
        private_id = response.json()["id"]

    context = browser.new_context(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    try:
        page.goto(f"{base}/signin")
        page.screenshot(path=shots / "signin.png", full_page=True)
        page.fill("input[name=token]", alpha)
        page.click("form[action='/signin'] button")
        page.wait_for_url(f"{base}/")
        assert "signed in as" in page.content()
        page.screenshot(path=shots / "home.png", full_page=True)

        page.goto(f"{base}/upload")
        page.select_option("select[name=task]", TASK)
        page.set_input_files("input[name=file]", str(upload))
        page.fill("input[name=method_name]", "alpha-browser")
        page.screenshot(path=shots / "upload.png", full_page=True)
        page.click("form[action='/upload'] button")
        page.wait_for_url(f"{base}/s/*")
        sid = page.url.rsplit("/", 1)[1]
        assert page.inner_text("#status") == "queued"
        page.screenshot(path=shots / "submission-queued.png", full_page=True)

        # The page turns to scored by itself, without navigating: a mark left in this
        # document survives, and no frame navigates, until its interval is shown.
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        page.evaluate("window.__marker = 1")
        expect(page.locator("#live-note")).to_have_count(1)
        live.worker()
        expect(page.locator("#status")).to_have_text("scored", timeout=120_000)
        assert page.evaluate("window.__marker") == 1
        expect(page.locator("#metrics")).to_contain_text("±", timeout=120_000)
        expect(page.locator("#live-note")).to_have_count(0)  # settled: the polling stopped
        assert page.evaluate("window.__marker") == 1 and navigations == []
        assert page.locator("#scorer").inner_text() != "—"
        live.wait([sid, private_id], until=lambda r: "stats" in (r.result or {}), timeout=120)
        page.screenshot(path=shots / "submission-scored.png", full_page=True)

        page.goto(f"{base}/b/tiny/1/{TASK}")
        row = page.locator("#board tr", has_text="alpha-browser")
        assert row.count() == 1 and "±" in row.inner_text()
        assert page.locator("svg circle").count() >= 1
        assert "beta-secret" not in page.content()
        page.screenshot(path=shots / "task.png", full_page=True)

        page.goto(f"{base}/b/tiny/1")
        row = page.locator("#multi tr", has_text="alpha-browser")
        assert row.count() == 1 and "±" in row.inner_text()
        assert "beta-secret" not in page.content()
        page.click(f"#multi th a:text-is('{TASK}')")
        page.wait_for_url("**sort=" + TASK + "**")
        page.screenshot(path=shots / "benchmark-sorted.png", full_page=True)

        # A phone: the page fits 390 px (wide tables scroll inside their own box).
        page.set_viewport_size({"width": 390, "height": 844})
        phone_pages = {
            "home": "/", "upload": "/upload", "benchmark": "/b/tiny/1",
            "task": f"/b/tiny/1/{TASK}", "submission": f"/s/{sid}",
        }
        for name, path in phone_pages.items():
            page.goto(f"{base}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (name, width)
            page.screenshot(path=shots / f"{name}-390.png", full_page=True)

        # The private entry's own team sees it.
        other = browser.new_context().new_page()  # type: ignore[attr-defined]
        other.goto(f"{base}/signin")
        other.fill("input[name=token]", beta)
        other.click("form[action='/signin'] button")
        other.wait_for_url(f"{base}/")
        other.goto(f"{base}/b/tiny/1/{TASK}")
        assert "beta-secret" in other.content()
    except Exception:
        print(live.logs())
        raise
    finally:
        context.close()
    assert len(list(shots.glob("*.png"))) >= 9
