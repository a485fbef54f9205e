"""Named crash points for the SIGKILL tests: `BEANMILL_CRASH_AT=consumer.after_put:3`.

When the variable names a point, the process kills itself with SIGKILL the Nth time it gets
there, exactly as a power cut or the OOM killer would. Unset (always, in production) the
check is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("BEANMILL_CRASH_AT", "")
_POINT, _, _COUNT = _SPEC.partition(":")
_left = int(_COUNT or "1") if _POINT else 0


def crashpoint(name: str) -> None:
    global _left
    if name != _POINT:
        return
    _left -= 1
    if _left <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
