"""Every systemd unit in deploy/ passes `systemd-analyze verify` without a single warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parents[2] / "deploy"
UNITS = DEPLOY / "systemd"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (apt-get install systemd)",
)


def verify(unit_dir: Path, *units: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:"}
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        cwd=unit_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_beanmill_units_verify_cleanly(tmp_path: Path) -> None:
    beanmill = Path(sys.executable).parent / "beanmill"
    assert beanmill.exists(), "the test venv has the beanmill script"
    env_file = tmp_path / "beanmill.env"
    shutil.copy(DEPLOY / "beanmill.env.example", env_file)
    for unit in UNITS.glob("*.service"):
        text = unit.read_text().replace("/opt/beanmill/bin/beanmill", str(beanmill))
        text = text.replace("/etc/beanmill/beanmill.env", str(env_file))
        name = unit.name.replace("@.service", "@1.service")  # an instance of the template
        (tmp_path / name).write_text(text)
        if name != unit.name:
            (tmp_path / unit.name).write_text(text)
    units = sorted(p.name for p in tmp_path.glob("*.service") if not p.name.endswith("@.service"))
    assert units == [
        "beanmill-consumer@1.service",
        "beanmill-producer.service",
        "beanmill-reducer.service",
    ]
    result = verify(tmp_path, *units)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_binlog_drop_in_verifies_with_debians_beanstalkd_unit(tmp_path: Path) -> None:
    debian = Path("/lib/systemd/system/beanstalkd.service")
    if not debian.exists():
        pytest.skip("Debian's beanstalkd.service is not installed")
    shutil.copy(debian, tmp_path / "beanstalkd.service")
    shutil.copytree(UNITS / "beanstalkd.service.d", tmp_path / "beanstalkd.service.d")
    (tmp_path / "default-beanstalkd").write_text(
        "BEANSTALKD_LISTEN_ADDR=127.0.0.1\nBEANSTALKD_LISTEN_PORT=11300\n"
    )
    unit = (tmp_path / "beanstalkd.service").read_text()
    (tmp_path / "beanstalkd.service").write_text(
        unit.replace("/etc/default/beanstalkd", str(tmp_path / "default-beanstalkd"))
    )
    result = verify(tmp_path, "beanstalkd.service")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert "-b /var/lib/beanstalkd" in (tmp_path / "beanstalkd.service.d/binlog.conf").read_text()
