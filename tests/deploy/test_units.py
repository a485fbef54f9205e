"""Every systemd unit in deploy/ passes `systemd-analyze verify` without a single warning,
keeps the settings the roles rely on, and the beanstalkd drop-in really turns the binlog on."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import greenstalk
import pytest

from beanmill import exitcodes
from beanmill.beanstalk.server import free_port
from support import wait_for

DEPLOY = Path(__file__).parents[2] / "deploy"
UNITS = DEPLOY / "systemd"
BEANMILL_UNITS = [
    "beanmill-consumer@1.service",
    "beanmill-producer.service",
    "beanmill-reducer.service",
]
DEBIAN_BEANSTALKD = Path("/lib/systemd/system/beanstalkd.service")
DEFAULT_TTR = 60

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (apt-get install systemd)",
)

#: stderr lines of `systemd-analyze verify` that are not about the units under test, each
#: with the reason it may be ignored. verify also loads the units ours point to (After=,
#: Wants=: network-online.target, beanstalkd.service) from the host's unit path, and in a
#: container without systemd as PID 1 it may say so; neither is about our files. Any line
#: naming one of our files, or not matched here, fails the test.
IGNORABLE = [
    (
        re.compile(r"^(/(lib|usr/lib|etc|run)/systemd/\S+?):\d+: "),
        "a warning inside a unit of the host, not one the test wrote",
    ),
    (
        re.compile(r"^(?:Failed to|Cannot) .*(bus|system manager|/run/systemd).*", re.IGNORECASE),
        "no running systemd in this container; verify works offline regardless",
    ),
]


def significant(stderr: str, ours: Path) -> list[str]:
    """The stderr lines that count, printing each ignored one with its reason."""
    kept = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        reason = next((why for pattern, why in IGNORABLE if pattern.search(line)), None)
        if reason is None or str(ours) in line or "beanmill" in line:
            kept.append(line)
        else:
            print(f"ignored ({reason}): {line}")
    return kept


def verify(unit_dir: Path, *units: str) -> subprocess.CompletedProcess[str]:
    # A trailing ":" appends the built-in unit path, so targets we name still resolve.
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:"}
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        cwd=unit_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (all sections; enough for the keys checked here)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(value: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert match and match[2] in units, f"cannot read {value!r} as a duration"
    return float(match[1]) * units[match[2]]


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """Our units as an operator installs them, pointed at this venv's beanmill and a copy
    of the example env file (verify checks that ExecStart's program exists)."""
    beanmill = Path(sys.executable).parent / "beanmill"
    assert beanmill.exists(), f"no beanmill script next to {sys.executable}"
    env_file = tmp_path / "beanmill.env"
    shutil.copy(DEPLOY / "beanmill.env.example", env_file)
    for unit in UNITS.glob("*.service"):
        text = unit.read_text()
        assert "/opt/beanmill/bin/beanmill " in text and "/etc/beanmill/beanmill.env" in text
        text = text.replace("/opt/beanmill/bin/beanmill", str(beanmill))
        text = text.replace("/etc/beanmill/beanmill.env", str(env_file))
        (tmp_path / unit.name).write_text(text)
    return tmp_path


def test_beanmill_units_verify_without_a_warning(installed: Path) -> None:
    written = sorted(p.name for p in installed.glob("*.service"))
    assert written == ["beanmill-consumer@.service", *BEANMILL_UNITS[1:]]
    result = verify(installed, *BEANMILL_UNITS)  # the template through an instance of it
    assert result.returncode == 0, result.stderr
    assert significant(result.stderr, installed) == [], result.stderr


@pytest.mark.parametrize("unit", BEANMILL_UNITS)
def test_a_unit_keeps_the_settings_the_role_relies_on(unit: str) -> None:
    found = settings((UNITS / unit.replace("@1", "@")).read_text())
    role = unit.split("-")[1].split("@", maxsplit=1)[0].split(".", maxsplit=1)[0]
    assert found["Type"] == ["exec" if role == "producer" else "notify"]
    assert found["NotifyAccess"] == ["main"]
    assert found["WatchdogSec"] == ["30"]
    assert found["Restart"] == ["on-failure"]
    assert found["KillSignal"] == ["SIGTERM"]
    # SIGTERM finishes the batch in hand, which may take up to a TTR.
    assert seconds(found["TimeoutStopSec"][0]) > DEFAULT_TTR
    assert found["EnvironmentFile"] == ["/etc/beanmill/beanmill.env"]
    (exec_start,) = found["ExecStart"]
    assert exec_start.startswith(f"/opt/beanmill/bin/beanmill {role} ${{BEANMILL_SPEC}}")
    assert found["User"] == ["beanmill"]
    assert found["StateDirectory"] == ["beanmill"]
    for key in ("ProtectSystem", "NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert found[key] == ["strict" if key == "ProtectSystem" else "yes"], key
    # No restart for what a restart cannot fix; a reducer that finished with failed items
    # also stays down (and shows failed) rather than finishing again in a loop.
    final = [exitcodes.USAGE, exitcodes.USER_CODE]
    if role == "reducer":
        final.append(exitcodes.FAILED_ITEMS)
    assert sorted(int(c) for c in found["RestartPreventExitStatus"][0].split()) == sorted(final)


def test_the_example_env_file_sets_what_the_units_expand() -> None:
    env = settings((DEPLOY / "beanmill.env.example").read_text())
    used = set()
    for unit in UNITS.glob("*.service"):
        used |= set(re.findall(r"\$\{(\w+)\}", unit.read_text()))
    assert used <= set(env), f"the units expand {sorted(used - set(env))}, the env file lacks them"
    assert env["BEANMILL_LOG_FORMAT"] == ["json"]
    assert "BEANMILL_BEANSTALKD" in env


def test_beanmill_units_are_hardened(installed: Path) -> None:
    """`systemd-analyze security` scores exposure 0 (locked down) to 10; it was 6.5 with
    only the basic settings and is 1.5 now: keep it under 2."""
    for unit in BEANMILL_UNITS:
        result = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", "--no-pager", unit],
            cwd=installed,
            env={**os.environ, "SYSTEMD_UNIT_PATH": f"{installed}:"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "--offline" in result.stderr and result.returncode != 0:
            pytest.skip("this systemd-analyze has no --offline security review (needs 250+)")
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match, result.stdout + result.stderr
        assert float(match[1]) < 2.0, f"{unit}: {match[0]}"


@pytest.fixture
def debian_beanstalkd(tmp_path: Path) -> Path:
    """Debian's beanstalkd.service with our drop-in, reading a tmp /etc/default/beanstalkd
    that also sets BEANSTALKD_EXTRA (which must not push the binlog out)."""
    if not DEBIAN_BEANSTALKD.exists():
        pytest.skip(f"{DEBIAN_BEANSTALKD} is not here (apt-get install beanstalkd)")
    default = tmp_path / "default-beanstalkd"
    default.write_text(
        "BEANSTALKD_LISTEN_ADDR=127.0.0.1\n"
        f"BEANSTALKD_LISTEN_PORT={free_port()}\n"
        'BEANSTALKD_EXTRA="-z 100000"\n'
    )
    unit = DEBIAN_BEANSTALKD.read_text().replace("/etc/default/beanstalkd", str(default))
    (tmp_path / "beanstalkd.service").write_text(unit)
    shutil.copytree(UNITS / "beanstalkd.service.d", tmp_path / "beanstalkd.service.d")
    return tmp_path


def test_the_binlog_drop_in_verifies_with_debians_beanstalkd_unit(
    debian_beanstalkd: Path,
) -> None:
    result = verify(debian_beanstalkd, "beanstalkd.service")
    assert result.returncode == 0, result.stderr
    assert significant(result.stderr, debian_beanstalkd) == [], result.stderr


def expand(exec_start: str, env: dict[str, str]) -> list[str]:
    """systemd's expansion of an ExecStart line: `${VAR}` is one word, a bare `$VAR` word
    is split on whitespace (and vanishes when empty)."""
    argv: list[str] = []
    for word in shlex.split(exec_start):
        if re.fullmatch(r"\$\w+", word):
            argv += env.get(word[1:], "").split()
        else:
            argv.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], ""), word))
    return argv


def test_the_drop_in_starts_beanstalkd_with_its_binlog_even_with_extra_flags(
    debian_beanstalkd: Path, tmp_path: Path
) -> None:
    """Run the command the drop-in makes (binlog dir moved to tmp) and see a put logged."""
    env: dict[str, str] = {}
    for line in (debian_beanstalkd / "default-beanstalkd").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value.strip('"')
    drop_in = settings((UNITS / "beanstalkd.service.d" / "binlog.conf").read_text())
    assert drop_in["ExecStart"][0] == "", "the drop-in must reset Debian's ExecStart first"
    for assignment in drop_in["Environment"]:
        key, _, value = assignment.strip('"').partition("=")
        env.setdefault(key, value)  # EnvironmentFile= wins over Environment=
    argv = expand(drop_in["ExecStart"][1], env)
    assert argv[argv.index("-b") + 1] == "/var/lib/beanstalkd"
    assert "-z" in argv and "-f" in argv
    binlog = tmp_path / "binlog"
    binlog.mkdir()
    argv[argv.index("-b") + 1] = str(binlog)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = int(env["BEANSTALKD_LISTEN_PORT"])

        def put_one() -> bool:
            try:
                with greenstalk.Client(("127.0.0.1", port)) as client:
                    client.put("kept across restarts")
            except ConnectionError:
                assert proc.poll() is None, proc.communicate()[1]
                return False
            return True

        wait_for(put_one, timeout=10, what="the drop-in's beanstalkd to take a put")
        assert any(p.name.startswith("binlog.") for p in binlog.iterdir())
    finally:
        proc.kill()
        proc.wait()
