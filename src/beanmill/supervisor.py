"""`beanmill run`: one machine, one command: private beanstalkd, producer, consumers, reducer.

Every role runs as its own process, exactly as it would on separate hosts, so what `run`
shows is what a deployment does; `run` only starts them, restarts crashed ones and stops all.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import structlog

from beanmill import datadir, exitcodes
from beanmill.beanstalk.connection import connect
from beanmill.beanstalk.server import Beanstalkd, start_private
from beanmill.checkpoint import Snapshot, read_snapshot
from beanmill.consumer import RESULTS_HIGH_WATER
from beanmill.cursor import check_population, load_cursor
from beanmill.ending import EndConditions
from beanmill.errors import BeanmillError
from beanmill.forkstart import RoleProcess, preload_roles, start_role
from beanmill.identity import population_of
from beanmill.jobspec import Spec
from beanmill.live import Line, NoLine
from beanmill.rebuild import accept_rollback, rebuild_due
from beanmill.signing import create_secret, load_secret
from beanmill.source import DEFAULT_BATCH_SIZE, population_size
from beanmill.web import HttpAddress

log = structlog.get_logger()

STOP_TIMEOUT_S = 30.0
#: How often the supervisor looks at its roles and at Ctrl-C; a role's exit wakes it at once.
POLL_S = 0.05
#: Like systemd's StartLimitBurst/IntervalSec: a role that exits with an error this often
#: this fast is broken (a bad spec, a missing file), not unlucky.
RESTART_BURST = 10
RESTART_WINDOW_S = 30.0
#: A role restarted while run restarts beanstalkd waits for it instead of failing.
CONNECT_RETRY_S = 60
MAX_RESULT_CHARS = 400
#: Role exits that a restart cannot fix: `run` ends with the same code.
FATAL_EXITS = (exitcodes.USAGE, exitcodes.USER_CODE)


@dataclass(frozen=True)
class RunOptions:
    data_dir: Path
    consumers: int = 2
    beanstalkd: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    order: str = "sequential"
    seed: int | None = None
    threads: int = 1
    ttr: int = 60
    high_water: int = 1000
    ending: EndConditions = field(default_factory=EndConditions)
    progress_file: Path | None = None
    log_level: str = "warning"
    progress_interval: float = 2.0
    max_attempts: int = 3
    retry_delay: int = 1
    map_timeout: float | None = None
    results_high_water: int = RESULTS_HIGH_WATER
    #: Every role signs and checks bodies with it; None: DATA_DIR/secret, made if missing.
    secret_file: Path | None = None
    accept_unsigned_ids: bool = False
    #: Served by the reducer, which holds what the dashboard shows.
    http: HttpAddress | None = None
    #: One updating line on a terminal (live_line.py); the roles' output goes to run.log.
    live: bool = False
    #: The checkpoint went back in time: accept it and put again what it lacks (rebuild.py).
    rebuild: bool = False

    @property
    def checkpoint(self) -> Path:
        return self.data_dir / datadir.CHECKPOINT

    @property
    def cursor(self) -> Path:
        return self.data_dir / datadir.CURSOR


@dataclass
class Role:
    """One child process and how to start it again."""

    name: str
    argv: list[str]
    proc: RoleProcess | None = None
    restarts: int = 0
    failures: list[float] = field(default_factory=list)
    finished: bool = False
    #: Its stdout and stderr; None: run's own.
    output: IO[str] | None = None

    def start(self) -> None:
        """A fork of `run` (already imported) in a process group of its own: see forkstart."""
        self.proc = start_role(self.argv, self.name, self.output)

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)


def _flags(pairs: list[tuple[str, object]]) -> list[str]:
    """`--flag value` for every value set; `True` is a bare flag; None and False are left out."""
    out: list[str] = []
    for flag, value in pairs:
        if value is None or value is False:
            continue
        out += [flag] if value is True else [flag, str(value)]
    return out


def _argv(role: str, spec: Spec, address: str, opts: RunOptions) -> list[str]:
    """The command line of one role: run's options that the role takes, passed on."""
    python = [sys.executable, "-P", "-m", "beanmill"]  # -P: never import from the cwd
    common = [
        ("--beanstalkd", address),
        ("--log-level", opts.log_level),
        ("--connect-retry", CONNECT_RETRY_S),
        ("--secret-file", opts.secret_file),
    ]
    return [*python, role, spec.ref, *_flags(common + ROLE_FLAGS[role](opts))]


def _producer_flags(opts: RunOptions) -> list[tuple[str, object]]:
    return [
        ("--batch-size", opts.batch_size),
        ("--state", opts.cursor),
        ("--ttr", opts.ttr),
        ("--high-water", opts.high_water),
        ("--order", opts.order),
        ("--seed", opts.seed),
        ("--rebuild", opts.rebuild or rebuild_due(opts.checkpoint)),
    ]


def _consumer_flags(opts: RunOptions) -> list[tuple[str, object]]:
    return [
        ("--threads", opts.threads),
        ("--max-attempts", opts.max_attempts),
        ("--retry-delay", opts.retry_delay),
        ("--map-timeout", opts.map_timeout or None),
        ("--results-high-water", opts.results_high_water),
        ("--accept-unsigned-ids", opts.accept_unsigned_ids),
    ]


def _reducer_flags(opts: RunOptions) -> list[tuple[str, object]]:
    ending = opts.ending
    return [
        ("--checkpoint", opts.checkpoint),
        ("--progress-interval", opts.progress_interval),
        ("--max-items", ending.max_items),
        ("--until-ci", ending.until_ci),
        ("--until-rel-ci", ending.until_rel_ci),
        ("--until-field", ending.until_field),
        ("--min-items-to-stop", ending.min_items_to_stop),
        ("--progress-file", opts.progress_file),
        ("--http", opts.http),
        ("--http-public", bool(opts.http)),  # run checked the address already
        ("--rebuild", opts.rebuild),
    ]


ROLE_FLAGS = {
    "producer": _producer_flags,
    "consumer": _consumer_flags,
    "reducer": _reducer_flags,
}


def _final(opts: RunOptions) -> int:
    """Print the total as JSON (or where to get it when it is too long for a terminal) and
    what failed; the run's exit code."""
    snap = read_snapshot(opts.checkpoint)
    text = json.dumps(snap.total)
    if len(text) > MAX_RESULT_CHARS:
        text = f"{len(text):,} characters: beanmill status --data-dir {opts.data_dir} --json"
    print(f"result: {text}", flush=True)
    if snap.estimate is not None:
        print(f"estimate: {json.dumps(snap.estimate)}", flush=True)
    return _failures(snap, opts)


def _failures(snap: Snapshot, opts: RunOptions) -> int:
    if not snap.failed_items:
        return exitcodes.OK
    print(
        f"finished with {snap.failed_items:,} failed items (not counted): see them with "
        f"`beanmill buried --data-dir {opts.data_dir}`; fix the cause, then "
        f"`beanmill requeue --data-dir {opts.data_dir}` and run this command again",
        file=sys.stderr,
        flush=True,
    )
    return exitcodes.FAILED_ITEMS


def _make_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = path / ".writable"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise BeanmillError(
            f"cannot use data dir {path} ({exc.strerror or exc}): pass a --data-dir you can write"
        ) from None


def _secret_file(opts: RunOptions) -> Path:
    """The run's secret: --secret-file, or one made in the data dir at the first run."""
    path = opts.secret_file
    if path is None:
        path = opts.data_dir / datadir.SECRET
        if create_secret(path):
            log.info("secret_created", path=str(path))
    load_secret(path)  # refused here, in one line, rather than in every role
    return path.absolute()


def run_job(spec: Spec, opts: RunOptions, stop: threading.Event) -> int:
    _make_data_dir(opts.data_dir)
    opts = replace(opts, secret_file=_secret_file(opts))
    saved = load_cursor(opts.cursor)
    if saved is not None:  # before "already finished": an edited items() is not finished
        check_population(saved, population_of(spec.items()), opts.cursor)
    if opts.rebuild:
        accept_rollback(opts.checkpoint)
    if opts.checkpoint.exists():
        snap = read_snapshot(opts.checkpoint)
        if snap.job != spec.name:
            raise BeanmillError(
                f"{opts.data_dir} holds job {snap.job!r}, not {spec.name!r}: "
                "pass another --data-dir"
            )
        if snap.complete:
            print(
                f"[{spec.name}] already finished: {snap.items:,} items "
                f"(data in {opts.data_dir}; delete it to run again)",
                flush=True,
            )
            return _final(opts)
        print(f"[{spec.name}] resuming: {snap.items:,} items already applied", flush=True)
    server: Beanstalkd | None = None
    address = opts.beanstalkd
    if address is None:
        server = start_private(opts.data_dir / datadir.BINLOG, meanwhile=preload_roles)
        address = server.address
        log.info("beanstalkd_started", address=address, binlog=str(server.binlog_dir))
        datadir.write_address(opts.data_dir, address)
    else:
        connect(address).close()  # fail now, with the clear message, not in every child
        preload_roles()
    if opts.http is not None:
        print(f"[{spec.name}] dashboard and /metrics: http://{opts.http}/", flush=True)
    # The reducer is the list's last; it is started first (see _supervise).
    roles = [Role("producer", _argv("producer", spec, address, opts))]
    roles += [
        Role(f"consumer-{i + 1}", _argv("consumer", spec, address, opts))
        for i in range(opts.consumers)
    ]
    roles.append(Role("reducer", _argv("reducer", spec, address, opts)))
    live = _live_line(spec, opts, roles)
    try:
        return _supervise(roles, stop, opts, server, live)
    finally:
        live.close()
        for role in roles:
            role.signal(signal.SIGTERM)
        _wait_all(roles)
        if server is not None:
            datadir.forget_address(opts.data_dir)
            server.stop()


def _live_line(spec: Spec, opts: RunOptions, roles: list[Role]) -> Line:
    if not opts.live:
        return NoLine()
    from beanmill.live_line import LiveLine  # tqdm: only on a terminal

    live = LiveLine(
        spec.name, opts.data_dir, opts.checkpoint, opts.ending, population_size(spec.items())
    )
    for role in roles:
        role.output = live.log
    return live


def _nap(roles: list[Role], timeout: float) -> None:
    """Sleep up to `timeout`, waking the moment any running role exits.

    A pidfd becomes readable when its process ends; Popen.wait() would poll with sleeps
    growing to 50 ms, and every run pays that at its end."""
    fds: list[int] = []
    try:
        for role in roles:
            if role.proc is not None and role.proc.returncode is None:
                # no pidfds on this system, or the process is already reaped
                with contextlib.suppress(AttributeError, OSError):
                    fds.append(os.pidfd_open(role.proc.pid))
        if fds:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(timeout)
    finally:
        for fd in fds:
            os.close(fd)


def _wait_all(roles: list[Role]) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    running = [r for r in roles if r.proc is not None and r.proc.poll() is None]
    while running and time.monotonic() < deadline:
        _nap(running, min(POLL_S * 10, max(0.0, deadline - time.monotonic())))
        running = [r for r in running if r.proc is not None and r.proc.poll() is None]
    for role in running:
        assert role.proc is not None
        log.warning("role_killed_after_timeout", role=role.name)
        role.proc.kill()
        role.proc.wait()


def _supervise(
    roles: list[Role],
    stop: threading.Event,
    opts: RunOptions,
    server: Beanstalkd | None,
    live: Line | None = None,
) -> int:
    reducer = roles[-1]
    # The reducer first: its lease and its checkpoint take longest to set up, and a short
    # run ends waiting on it, while the others' work waits on the queue for it anyway.
    for role in (reducer, *roles[:-1]):
        role.start()
    live = live or NoLine()
    while True:
        _nap(roles, POLL_S)
        live.tick()
        if stop.is_set():
            break
        if server is not None and not server.running():
            log.warning(
                "beanstalkd_restarted",
                address=server.address,
                hint="it died; its binlog brings every job back",
            )
            server.start()
        for role in roles:
            assert role.proc is not None
            rc = role.proc.poll()
            if rc is None or role.finished:
                continue
            if rc == 0 or (role is reducer and rc == exitcodes.FAILED_ITEMS):
                role.finished = True
                continue
            if rc in FATAL_EXITS:
                live.close()
                return rc  # the role printed a one-line error (bad spec, corrupt checkpoint)
            if rc > 0:  # it failed by itself; a death by signal (OOM, kill) is not its fault
                now = time.monotonic()
                role.failures = [t for t in role.failures if now - t < RESTART_WINDOW_S]
                role.failures.append(now)
                if len(role.failures) > RESTART_BURST:
                    raise BeanmillError(
                        f"{role.name} failed {len(role.failures)} times in "
                        f"{RESTART_WINDOW_S:.0f} s (last exit {rc}); see its log above"
                    )
            role.restarts += 1
            log.warning("role_restarted", role=role.name, exit=rc, restarts=role.restarts)
            role.start()
        if reducer.finished:
            live.close()
            return _final(opts)
    live.close()
    print("stopping: finishing the batches in hand; press Ctrl-C again to stop now", flush=True)
    for role in roles:
        role.signal(signal.SIGTERM)
    _wait_all(roles)
    print("stopped: run the same command again to resume", flush=True)
    return exitcodes.STOPPED
