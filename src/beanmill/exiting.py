"""Leaving a beanmill process without the interpreter's teardown.

At exit CPython frees the objects of the ~400 modules a beanmill process imports one by one:
10 ms and more of every short `beanmill run` (measured: the last third of its wind-down).
Nothing of ours waits for that: our files are closed by their owners, and what must run at
exit is registered with atexit (coverage's data, tempfile's clean-ups). So once only the
main thread (and daemon threads) are left, a process runs its atexit handlers, flushes
stdout and stderr and ends with os._exit, as a forked role always did.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from typing import NoReturn


def exit_code(exc: SystemExit) -> int:
    """The status sys.exit(x) gives, printing x to stderr as Python does when it is text."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def leave(code: int) -> NoReturn:
    """atexit handlers, then stdout and stderr, then the end; the rest is not torn down."""
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def finish(code: int) -> NoReturn:
    """Leave at once unless a non-daemon thread is still running, which Python would wait
    for: then exit as usual, with the imported objects frozen so the last collection
    skips them."""
    main = threading.main_thread()
    if all(t is main or t.daemon for t in threading.enumerate()):
        leave(code)
    gc.freeze()
    sys.exit(code)
