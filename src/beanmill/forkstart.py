"""`beanmill run` starts its roles by forking itself: the modules are imported once.

Five fresh interpreters each importing click, structlog and the roles cost most of a short
run on two cores. The `run` process has imported all of that already, so each role is a
fork of it that calls the same click command a `python -m beanmill <role> ...` would.
Each role is still its own process (its own crash, restart, process group and
PR_SET_PDEATHSIG); setproctitle names it for `ps` and the journal, since its command line
would otherwise read `beanmill run`.

A fork is only safe with no other thread holding a lock: `run` has just the stop-signal
relay, idle until a signal comes. With any other thread alive, or once a stop was asked,
the role starts as a fresh interpreter instead (`fresh_start`).
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import subprocess
import sys
import threading
import traceback
from typing import IO, Protocol

from beanmill import signals
from beanmill.beanstalk.server import die_with_parent, with_parent_death_signal
from beanmill.exiting import exit_code, leave

RELAY_THREAD = "stop-signals"


class RoleProcess(Protocol):
    """What the supervisor needs of a role's process: subprocess.Popen has it."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self) -> int: ...
    def send_signal(self, signum: int) -> None: ...
    def kill(self) -> None: ...


class ForkedProcess:
    """A forked child seen as Popen sees an exec'd one: returncode is -N for signal N."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self) -> int:
        code = self._reap(0)
        assert code is not None
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def preload_roles() -> None:
    """Import what every role imports, once, before the forks share it (ctypes and
    setproctitle too: each fork would otherwise import them for its PDEATHSIG and title)."""
    import ctypes
    import importlib.util

    import beanmill.cli
    import beanmill.consumer
    import beanmill.producer
    import beanmill.reducer  # noqa: F401

    del ctypes
    if importlib.util.find_spec("setproctitle") is not None:
        import setproctitle  # noqa: F401


def can_fork() -> bool:
    """No thread but the main one and the idle stop-signal relay, and no stop asked."""
    if os.environ.get("BEANMILL_FORK_ROLES", "1") == "0" or not hasattr(os, "fork"):
        return False
    if signals._signals is not None and signals._signals.event.is_set():
        return False  # the relay may be logging the stop: holding stderr's lock
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    return all(t.name == RELAY_THREAD for t in others) and len(others) <= 1


def start_role(argv: list[str], name: str, output: IO[str] | None = None) -> RoleProcess:
    """Fork when that is safe, else run `argv` (`python -P -m beanmill <role> ...`).
    `output` takes the role's stdout and stderr (None: run's own)."""
    args = _beanmill_args(argv)
    if args is None or not can_fork():
        return fresh_start(argv, output)
    sys.stdout.flush()
    sys.stderr.flush()
    # The imported modules' objects go to the collector's permanent generation: the roles'
    # collections no longer walk them (nor write to their pages, which stay shared).
    gc.freeze()
    pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    _child(args, name, output)  # never returns
    raise AssertionError("unreachable")


def _beanmill_args(argv: list[str]) -> list[str] | None:
    """The arguments after `python ... -m beanmill`, or None for another command."""
    for i in range(len(argv) - 1):
        if argv[i] == "-m" and argv[i + 1] == "beanmill":
            return argv[i + 2 :]
    return None


def fresh_start(argv: list[str], output: IO[str] | None = None) -> RoleProcess:
    """In a process group of its own, so a terminal's Ctrl-C reaches only `run`, which
    asks each role to stop once; a role dies with `run` (PR_SET_PDEATHSIG), set as for the
    private beanstalkd."""
    cmd, preexec = with_parent_death_signal(argv)
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        process_group=0,
        preexec_fn=preexec,
    )


def _child(args: list[str], name: str, output: IO[str] | None) -> None:
    """The role's whole life in the forked process; exits through os._exit only, so
    nothing of `run` (its atexit handlers, its beanstalkd's Popen) runs here."""
    code = 1
    try:
        atexit._clear()  # `run`'s handlers are not the role's
        os.setpgid(0, 0)
        die_with_parent()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if output is not None:  # as Popen's stdout= and stderr=
            os.dup2(output.fileno(), 1)
            os.dup2(output.fileno(), 2)
        if not sys.flags.safe_path and sys.path:
            del sys.path[0]  # as `python -P`: never import from the cwd
        _title(f"beanmill {' '.join(args)} [{name} of run {os.getppid()}]")
        sys.argv = ["beanmill", *args]
        from beanmill.cli import main

        main()
        code = 0
    except SystemExit as exc:
        code = exit_code(exc)
    except BaseException:
        traceback.print_exc()
    finally:
        leave(code)


def _title(title: str) -> None:
    try:
        from setproctitle import setproctitle
    except ImportError:  # a build without the C extension: ps shows `beanmill run`
        return
    setproctitle(title)
