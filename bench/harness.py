"""What every benchmark row shares: its output lines, the processes it starts (and
always stops), /proc readers for CPU and memory, the roles' JSON log events, and the
context a row works in."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import greenstalk

from beanmill.beanstalk.server import Beanstalkd, start_private

BENCH = Path(__file__).resolve().parent
SPECS = BENCH / "workloads.py"
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Row:
    """One RESULT line and one line of the RESULTS.md tables."""

    name: str
    workload: str
    measure: str
    items_per_s: float | None
    baseline: str
    baseline_items_per_s: float | None
    ratio: float | None
    target: str = "report"
    met: bool | None = None
    shown: str = ""  # the beanmill figure as people read it, when not items/s
    baseline_shown: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    headline: bool = True

    def line(self) -> str:
        ips = "-" if self.items_per_s is None else f"{self.items_per_s:.1f}"
        ratio = "-" if self.ratio is None else f"{self.ratio:.3f}"
        parts = [f"RESULT {self.name} items_per_s={ips} baseline={self.baseline} ratio={ratio}"]
        parts += [f"{k}={_fmt(v)}" for k, v in self.extra.items()]
        return " ".join(parts)


def limit_row(
    name: str,
    workload: str,
    measure: str,
    value: float,
    limit: float,
    unit: str,
    shown: str,
    items_per_s: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Row:
    """A row whose figure must stay under a limit: ratio = figure ÷ limit, met below 1."""
    return Row(
        name=name,
        workload=workload,
        measure=measure,
        items_per_s=items_per_s,
        baseline=f"limit_{limit:g}{unit}",
        baseline_items_per_s=None,
        ratio=value / limit,
        target=f"< 1 (< {limit:g} {unit})",
        met=value < limit,
        shown=shown,
        baseline_shown=f"{limit:g} {unit}",
        extra=extra or {},
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ",".join(_fmt(v) for v in value)
    return str(value).replace(" ", "_")


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    skips: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(row.line(), flush=True)

    def skip(self, name: str, reason: str) -> None:
        self.skips.append((name, reason))
        print(f"SKIP {name} reason={reason.replace(' ', '_')}", flush=True)

    def fail(self, name: str, reason: str) -> None:
        self.failures.append((name, reason))
        print(f"FAIL {name} reason={reason.replace(' ', '_')[:300]}", flush=True)


class Procs:
    """Every process the bench starts, so any failure or Ctrl-C stops them all."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen[bytes]] = []
        self.servers: list[Beanstalkd] = []
        self.files: list[IO[bytes]] = []

    def spawn(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        out: Path | None = None,
        err: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        stdout = self._open(out)
        stderr = self._open(err)
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, cwd=cwd
        )
        self.live.append(proc)
        return proc

    def _open(self, path: Path | None) -> IO[bytes] | int:
        if path is None:
            return subprocess.DEVNULL
        fh = path.open("wb")
        self.files.append(fh)
        return fh

    def server(self, binlog: Path) -> Beanstalkd:
        server = start_private(binlog)
        self.servers.append(server)
        return server

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int | None:
        """SIGTERM (and SIGCONT, in case we paused it), then SIGKILL if it lingers."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"pid {proc.pid} ignored SIGTERM for {timeout:.0f} s: killing it")
                proc.kill()
                proc.wait()
        if proc in self.live:
            self.live.remove(proc)
        return proc.returncode

    def stop_all(self) -> None:
        for proc in list(self.live):
            self.stop(proc, timeout=15.0)
        for server in self.servers:
            server.stop()
        self.servers.clear()
        for fh in self.files:
            fh.close()
        self.files.clear()


def wait_exit(proc: subprocess.Popen[bytes], timeout: float, what: str) -> int:
    """Its exit code, seen the moment it exits: Popen.wait(timeout) polls with sleeps that
    grow to 50 ms, which rounded every wall time measured with it up to the next poll
    (a 1,000-item run's 0.12 to 0.16 s all read 0.164 s). A pidfd is readable at the exit."""
    fd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        raise RuntimeError(f"{what} did not finish within {timeout:.0f} s")
    return proc.wait()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class CpuWatch:
    """CPU seconds per role, from /proc, counted from `mark()` (the last sample before a
    process exits is what it used: sample often)."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def mark(self) -> None:
        self.sample()
        self.base = dict(self.last)

    def add(self, role: str, pid: int) -> None:
        self.pids.setdefault(role, []).append(pid)

    def sample(self) -> None:
        for ids in self.pids.values():
            for pid in ids:
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    self.last[pid] = seconds

    def used(self) -> dict[str, float]:
        return {
            role: sum(self.last.get(p, 0.0) - self.base.get(p, 0.0) for p in ids)
            for role, ids in self.pids.items()
        }


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of one role (`--log-format json`)."""
    found = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
    return found


def event_time(path: Path, name: str, last: bool = False) -> float:
    matches = [e for e in events(path) if e.get("event") == name]
    if not matches:
        raise RuntimeError(f"no {name!r} event in {path.name}")
    stamp = str(matches[-1 if last else 0]["timestamp"]).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(stamp).timestamp()


def wait_event(path: Path, name: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.get("event") == name for e in events(path)):
            return
        if proc.poll() is not None:
            tail = path.read_text(errors="replace")[-600:] if path.exists() else ""
            raise RuntimeError(f"{path.stem} exited {proc.returncode} before {name!r}: {tail}")
        time.sleep(0.02)
    raise RuntimeError(f"no {name!r} from {path.stem} within {timeout:.0f} s")


def check(got: int, expected: int, what: str) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: wrong total {got}, expected {expected}")


def server_commands(server: Beanstalkd) -> dict[str, int]:
    """beanstalkd's own count of every command it served (`stats`), by name."""
    client = greenstalk.Client(("127.0.0.1", server.port), encoding=None)
    try:
        stats = client.stats()
    finally:
        client.close()
    counts = {k[4:]: int(str(v)) for k, v in stats.items() if k.startswith("cmd-")}
    return {k: v for k, v in counts.items() if v}


def commands_per_batch(cmds: dict[str, int], batches: int) -> dict[str, float]:
    """Round trips are what a queue costs: commands per item batch, all and the biggest."""
    per = {"bs_cmds_per_batch": sum(cmds.values()) / batches}
    for name in ("reserve-with-timeout", "reserve", "put", "delete", "stats-tube", "stats-job"):
        if name in cmds:
            per[f"bs_{name.replace('-', '_')}_per_batch"] = cmds[name] / batches
    return per


@dataclass(frozen=True)
class Sizes:
    cpu: int
    trivial: int
    io: int
    bare: int
    producer_s: float
    reps: int
    resume_reps: int


#: Full sizes are the issue's; quick ones 1/5 of them; smoke ones only check the harness.
SIZES = {
    "full": Sizes(200_000, 2_000_000, 64_000, 50_000, 15.0, 5, 3),
    "quick": Sizes(40_000, 400_000, 12_800, 10_000, 5.0, 1, 2),
    "smoke": Sizes(2_000, 20_000, 640, 500, 2.0, 1, 1),
}


def sizes(mode: str, reps: int | None) -> Sizes:
    size = SIZES[mode]
    return size if reps is None else dataclasses.replace(size, reps=reps)


class Context:
    """What a row needs: where to work, how big, and how to start beanmill's roles with a
    clean environment (no BEANMILL_* variable and no config file of the user's applies)."""

    def __init__(self, tmp: Path, size: Sizes, rounds: int, procs: Procs, out: Outcome) -> None:
        self.tmp, self.size, self.rounds, self.procs, self.out = tmp, size, rounds, procs, out
        self.config = tmp / "empty.toml"
        self.config.write_text("")
        self.seq = 0
        # Medians later rows compare with, as "<work>.<side>": "cpu.run", "trivial.pool2", ...
        self.rates: dict[str, float] = {}

    def env(self, n: int, **extra: str) -> dict[str, str]:
        # PYTHONDONTWRITEBYTECODE would have every start compile beanmill from source (an
        # editable install has no .pyc otherwise): an installed package has its bytecode.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BEANMILL_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env.update(
            BENCH_ITEMS=str(n),
            BENCH_CPU_ROUNDS=str(self.rounds),
            BEANMILL_CONFIG=str(self.config),  # no ./beanmill.toml or ~/.config file applies
            **extra,
        )
        return env

    def workdir(self, label: str) -> Path:
        self.seq += 1
        path = self.tmp / f"{self.seq:02d}-{label}"
        path.mkdir()
        return path

    def spec(self, cls: str) -> str:
        return f"{SPECS}:{cls}"

    def role(self, role: str, cls: str, address: str, *extra: str) -> list[str]:
        return [
            PY,
            "-m",
            "beanmill",
            role,
            self.spec(cls),
            "--beanstalkd",
            address,
            "--log-format",
            "json",
            "--log-level",
            "info",
            *extra,
        ]
