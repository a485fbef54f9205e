"""The supervisor of `beanmill run` wakes when a role exits, not at its next poll."""

from __future__ import annotations

import sys
import time

from beanmill.supervisor import Role, _nap, _wait_all


def _role(seconds: float) -> Role:
    role = Role("sleeper", [sys.executable, "-c", f"import time; time.sleep({seconds})"])
    role.start()
    return role


def test_a_nap_ends_when_a_role_exits_not_at_its_timeout() -> None:
    quick, slow = _role(0.2), _role(60)
    try:
        start = time.monotonic()
        _nap([slow, quick], timeout=60)
        assert time.monotonic() - start < 30  # woken by the exit: 0.2 s, not 60
        assert quick.proc is not None and quick.proc.poll() == 0
        assert slow.proc is not None and slow.proc.poll() is None
    finally:
        for role in (quick, slow):
            assert role.proc is not None
            role.proc.kill()
            role.proc.wait()


def test_a_nap_with_nothing_running_still_sleeps() -> None:
    start = time.monotonic()
    _nap([], timeout=0.05)
    assert time.monotonic() - start >= 0.05


def test_wait_all_reaps_every_role() -> None:
    roles = [_role(0.1), _role(0.3)]
    _wait_all(roles)
    assert [r.proc.returncode for r in roles if r.proc is not None] == [0, 0]
