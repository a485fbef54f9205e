"""Named crash points for the SIGKILL tests: `BEANMILL_CRASH_AT=consumer.after_put:3`.

When the variable names a point, the process kills itself with SIGKILL the Nth time it gets
there, exactly as a power cut or the OOM killer would. With `BEANMILL_CRASH_ONCE=PATH` the
crash happens only if PATH does not exist yet (it is created just before dying), so a
supervisor that restarts the process with the same environment sees exactly one crash.
Unset (always, in production) the check is one string comparison.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_POINT, _, _COUNT = os.environ.get("BEANMILL_CRASH_AT", "").partition(":")
_ONCE = os.environ.get("BEANMILL_CRASH_ONCE")
_left = int(_COUNT or "1") if _POINT else 0


def crashpoint(name: str) -> None:
    global _left
    if name != _POINT:
        return
    _left -= 1
    if _left > 0:
        return
    if _ONCE is not None:
        flag = Path(_ONCE)
        if flag.exists():
            return
        flag.write_text(name)
    os.kill(os.getpid(), signal.SIGKILL)
