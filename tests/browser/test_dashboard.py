"""The dashboard in a real browser: it follows a running job, its numbers move, and it ends
in "finished", or in "finished with failures" with the failed items and their exceptions."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
)
from playwright.sync_api import Page, expect

from beanmill import exitcodes
from beanmill.beanstalk.server import free_port
from support import Procs, finish, spec_ref, wait_for

SLOW = {"SUMS_ITEMS": "3000", "SUMS_MAP_DELAY": "0.003"}


def api_status(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as resp:
            doc: dict[str, object] = json.load(resp)
            return doc
    except (urllib.error.URLError, ConnectionError):
        return None


def run_with_http(procs: Procs, tmp_path: Path, spec: str, env: dict[str, str]) -> int:
    port = free_port()
    procs.beanmill(
        "run", spec_ref(spec), "--data-dir", str(tmp_path / "data"), "--batch-size", "50",
        "--retry-delay", "0", "--http", f"127.0.0.1:{port}", env=env,
    )  # fmt: skip
    wait_for(lambda: api_status(port) is not None, 60, "the run's dashboard")
    return port


def items_shown(page: Page) -> int:
    return int(page.locator("#items").inner_text().split("/")[0].replace(",", "").strip())


def test_dashboard_follows_a_running_job_until_finished(
    procs: Procs, tmp_path: Path, page: Page
) -> None:
    port = run_with_http(procs, tmp_path, "sums:Squares", SLOW)
    page.goto(f"http://127.0.0.1:{port}/")
    expect(page.locator("#name")).to_have_text("squares")
    expect(page.locator("#state")).to_have_text("running", timeout=30_000)
    first = items_shown(page)
    wait_for(lambda: items_shown(page) > first, 30, "the item count to move")
    assert "3,000" in page.locator("#items").inner_text()
    expect(page.locator("#state")).to_have_text("finished", timeout=90_000)
    assert items_shown(page) == 3000
    expect(page.locator("#result")).to_have_text(str(sum(i * i for i in range(3000))))
    expect(page.locator("#failed-card")).to_be_hidden()
    assert page.locator("#bar").evaluate("el => el.style.width") == "100%"


def test_dashboard_ends_in_finished_with_failures_listing_them(
    procs: Procs, tmp_path: Path, page: Page
) -> None:
    env = {**SLOW, "FLAKY_ITEMS": "7,1507"}
    port = run_with_http(procs, tmp_path, "sums:Flaky", env)
    page.goto(f"http://127.0.0.1:{port}/")
    expect(page.locator("#name")).to_have_text("flaky")
    expect(page.locator("#state")).to_have_text("finished with failures", timeout=90_000)
    rows = page.locator("#failed tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("ValueError: item 7 is cursed")
    expect(page.locator("#failed-count")).to_have_text("2")
    rc, _, _ = finish(procs.started[-1], 60)
    assert rc == exitcodes.FAILED_ITEMS

    # The same page for the finished job, from `beanmill dashboard`.
    port = free_port()
    procs.beanmill("dashboard", "--data-dir", str(tmp_path / "data"), "--http", f"127.0.0.1:{port}")
    wait_for(lambda: api_status(port) is not None, 30, "beanmill dashboard")
    page.goto(f"http://127.0.0.1:{port}/")
    expect(page.locator("#state")).to_have_text("finished with failures")
    expect(page.locator("#failed tr")).to_have_count(2)
