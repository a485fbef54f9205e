"""Errors in the user's code, told short: their file, line and message, and their frames only."""

from __future__ import annotations

import traceback
from pathlib import Path

import beanmill

_OURS = str(Path(beanmill.__file__).parent)
_STDLIB = str(Path(traceback.__file__).parent)


def _theirs(filename: str) -> bool:
    return not filename.startswith((_OURS, _STDLIB)) and "site-packages" not in filename


def user_frame(exc: BaseException) -> str:
    """`path:line: Type: message` at the user's deepest frame (a SyntaxError's own place)."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}: "
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _theirs(f.filename)]
        if frames:
            where = f"{frames[-1].filename}:{frames[-1].lineno}: "
    message = str(exc.msg if isinstance(exc, SyntaxError) else exc)
    return f"{where}{type(exc).__name__}: {message}"


def user_frames(exc: BaseException, limit: int = 5) -> str:
    """The user's own frames of the traceback, last `limit`, for the lines under the error."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _theirs(f.filename)]
    return "".join(traceback.format_list(frames[-limit:])).rstrip()
