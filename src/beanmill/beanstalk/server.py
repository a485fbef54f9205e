"""A private beanstalkd process: what `beanmill run` and the test fixtures start."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from beanmill.errors import QueueUnavailable
from beanmill.files import open_private_append

START_TIMEOUT_S = 10.0
#: beanstalkd's own warnings (binlog errors, a full disk) go here, next to its binlog dir.
LOG_NAME = "beanstalkd.log"
#: How much of what it wrote since its start an "exited at start" error quotes.
LOG_QUOTE_CHARS = 600
#: The size of each binlog file (`-s`). beanstalkd writes a new file's whole size in zeros,
#: then syncs it, before the first job lands in it, and serves no one meanwhile: at its
#: default of 10 MiB that stalled every short run by 12 to 60 ms. The zeros per byte of
#: binlog are the same at any size; smaller files only spread them out.
BINLOG_FILE_BYTES = 1 << 20


def die_with_parent() -> None:
    """In a child before exec: SIGTERM (a clean stop) when its parent dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def with_parent_death_signal(cmd: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """`cmd` made to get SIGTERM when its parent dies: through util-linux's `setpriv` (in
    every Debian), else a preexec_fn. A preexec_fn makes Popen fork the whole parent and run
    Python in the child before the exec: 7 to 12 ms of `beanmill run`'s start, against under
    one for the vfork Popen uses without one."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return cmd, die_with_parent
    return [setpriv, "--pdeathsig", "TERM", "--", *cmd], None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def beanstalkd_path() -> str:
    path = shutil.which("beanstalkd")
    if path is None:
        raise QueueUnavailable(
            "beanstalkd is not installed: run `apt-get install beanstalkd` "
            "or pass --beanstalkd HOST:PORT of a running one"
        )
    return path


@dataclass
class Beanstalkd:
    """A beanstalkd we started, on loopback, with its binlog in `binlog_dir`."""

    binlog_dir: Path
    port: int
    host: str = "127.0.0.1"
    extra_args: tuple[str, ...] = ()
    #: A private server ends with the process that started it, even one killed by SIGKILL.
    die_with_parent: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Its stderr, appended, 0600: a pipe that nobody reads would block it one day."""
        return self.binlog_dir.parent / LOG_NAME

    def start(self, meanwhile: Callable[[], object] | None = None) -> Beanstalkd:
        """`meanwhile` runs while it comes up (`run` imports its roles then)."""
        self.binlog_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            beanstalkd_path(),
            "-l",
            self.host,
            "-p",
            str(self.port),
            "-b",
            str(self.binlog_dir),
            "-s",
            str(BINLOG_FILE_BYTES),
            *self.extra_args,  # after ours: a later -s wins
        ]
        preexec = None
        if self.die_with_parent:
            cmd, preexec = with_parent_death_signal(cmd)
        with open_private_append(self.log_path) as log:
            started_at = log.tell()
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
                preexec_fn=preexec,
            )
        if meanwhile is not None:
            meanwhile()
        deadline = time.monotonic() + START_TIMEOUT_S
        delay = 0.001  # it listens within milliseconds: a first nap of 20 ms was most of its start
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise QueueUnavailable(f"beanstalkd exited at start: {self._why(started_at)}")
            if self._answers():
                return self
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        self.kill()
        raise QueueUnavailable(f"beanstalkd did not listen on {self.address} within 10 s")

    def _why(self, started_at: int) -> str:
        """What beanstalkd wrote since `started_at`, or what its disk says."""
        with open(self.log_path, "rb") as log:
            log.seek(started_at)
            said = log.read().decode(errors="replace").strip()
        if said:
            return " ".join(said[:LOG_QUOTE_CHARS].split())
        if disk_full(self.binlog_dir):
            return f"no message, and the disk of {self.binlog_dir} is full: free space there"
        return f"no message (see {self.log_path})"

    def _answers(self) -> bool:
        """It listens before it locks its binlog dir, so a connect alone is not enough: one
        that then fails the lock (another beanstalkd has the dir) closes without a reply."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"list-tubes\r\n")
                return sock.recv(3) == b"OK "
        except OSError:
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it lingers; the binlog keeps every acknowledged job."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def disk_full(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.statvfs(path).f_bavail == 0
    return False


def start_private(
    binlog_dir: Path,
    host: str = "127.0.0.1",
    extra_args: tuple[str, ...] = (),
    meanwhile: Callable[[], object] | None = None,
) -> Beanstalkd:
    """Start on a free loopback port, retrying if another process takes the port first."""
    last: QueueUnavailable | None = None
    for _ in range(5):
        server = Beanstalkd(
            binlog_dir=binlog_dir,
            port=free_port(host),
            host=host,
            extra_args=extra_args,
            die_with_parent=True,
        )
        try:
            return server.start(meanwhile)
        except QueueUnavailable as exc:
            if "lock" in str(exc).lower():
                raise QueueUnavailable(
                    f"{binlog_dir} is in use by another beanstalkd: is another "
                    "`beanmill run` working in this data dir?"
                ) from None
            last = exc
    assert last is not None
    raise last
