"""A beanmill process ends by os._exit once only daemon threads are left (exiting.py):
what Python would do at exit that matters is still done."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )


def test_atexit_handlers_run_and_buffered_output_is_flushed() -> None:
    proc = run(
        """
        import atexit, sys
        from beanmill.exiting import finish
        atexit.register(lambda: print("atexit ran"))
        print("buffered", end="")  # a pipe: block-buffered until flushed
        sys.stderr.write("to stderr")
        finish(4)
        """
    )
    assert proc.returncode == 4
    assert proc.stdout == "bufferedatexit ran\n"
    assert proc.stderr == "to stderr"


def test_a_running_non_daemon_thread_is_waited_for_as_python_would() -> None:
    proc = run(
        """
        import threading, time
        from beanmill.exiting import finish
        def work():
            time.sleep(0.2)
            print("thread finished", flush=True)
        threading.Thread(target=work).start()
        finish(3)
        """
    )
    assert proc.returncode == 3
    assert proc.stdout == "thread finished\n"


def test_a_daemon_thread_does_not_hold_the_exit() -> None:
    proc = run(
        """
        import threading, time
        from beanmill.exiting import finish
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        finish(0)
        """
    )
    assert proc.returncode == 0


def test_sys_exit_with_text_prints_it_and_gives_status_1() -> None:
    proc = run(
        """
        from beanmill.exiting import exit_code, finish
        try:
            raise SystemExit("beanmill: something to say")
        except SystemExit as exc:
            finish(exit_code(exc))
        """
    )
    assert proc.returncode == 1
    assert proc.stderr == "beanmill: something to say\n"
