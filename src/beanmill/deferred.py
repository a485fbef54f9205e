"""structlog without asyncio: a fifth of every beanmill process's start-up, for nothing.

structlog's `stdlib` module (imported by structlog's `__init__`) imports asyncio at its top
for its async logging methods, which beanmill never calls; asyncio brings ssl and some
thirty modules along, 15 to 25 ms of each start here. While structlog is imported,
`asyncio` is a stand-in that imports the real module the moment anything is read from it,
so those methods still work; the stand-in leaves `sys.modules` right after, and any other
`import asyncio` gets the real module as always.
"""

from __future__ import annotations

import importlib
import sys
import types


class DeferredModule(types.ModuleType):
    """Stands for a module not imported yet; the first attribute read imports it."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


def import_structlog() -> None:
    """Import structlog, with asyncio deferred unless something imported it already."""
    if "structlog" in sys.modules or "asyncio" in sys.modules:
        return
    stand_in = DeferredModule("asyncio")
    sys.modules["asyncio"] = stand_in
    try:
        import structlog  # noqa: F401
    finally:
        if sys.modules.get("asyncio") is stand_in:
            del sys.modules["asyncio"]
