"""deploy/prometheus: promtool accepts the scrape config and the rules, the rules' own tests
pass, and every series the rules use is one beanmill exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from beanmill import metrics

DEPLOY = Path(__file__).parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("no promtool: apt-get install prometheus (.ci/run does)")
    done = subprocess.run(
        [tool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_scrape_config_and_rules() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    assert "4 rules found" in promtool("check", "rules", "beanmill-alerts.yml")


def test_alert_rules_fire_as_their_tests_say() -> None:
    assert "SUCCESS" in promtool("test", "rules", "beanmill-alerts.test.yml")


def test_rules_use_only_series_beanmill_exports() -> None:
    exprs = re.findall(
        r"^\s+expr: (.+)$", (DEPLOY / "beanmill-alerts.yml").read_text(), re.MULTILINE
    )
    assert len(exprs) == 4
    used = {name for expr in exprs for name in re.findall(r"\bbeanmill_\w+", expr)}
    source = Path(metrics.__file__).read_text()
    for name in used:
        assert f'"{name.removesuffix("_total")}"' in source, name
