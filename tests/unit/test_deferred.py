"""structlog imported with asyncio deferred (deferred.py): nothing it offers is lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def python(code: str) -> str:
    """Run `code` in a fresh interpreter (the deferral happens at the first import)."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def test_structlog_async_logging_still_works_through_the_stand_in() -> None:
    out = python(
        """
        import sys
        import beanmill
        assert "asyncio" not in sys.modules
        import asyncio, structlog
        async def main():
            await structlog.get_logger().ainfo("async_event_logged")
            return "ok"
        print(asyncio.run(main()))
        """
    )
    assert out.splitlines()[-1] == "ok"
    assert "async_event_logged" in out


def test_a_later_import_gets_the_real_module_once() -> None:
    out = python(
        """
        import beanmill, structlog.stdlib
        import asyncio
        from beanmill.deferred import DeferredModule
        assert not isinstance(asyncio, DeferredModule)
        assert isinstance(structlog.stdlib.asyncio, DeferredModule)
        assert structlog.stdlib.asyncio.get_running_loop is asyncio.get_running_loop
        print("one module")
        """
    )
    assert out == "one module"


def test_an_asyncio_already_imported_is_left_as_it_is() -> None:
    out = python(
        """
        import asyncio
        import beanmill, structlog.stdlib
        print(structlog.stdlib.asyncio is asyncio)
        """
    )
    assert out == "True"


def test_a_submodule_imported_first_brings_the_real_package() -> None:
    out = python(
        """
        import beanmill
        import asyncio.events, sys
        from beanmill.deferred import DeferredModule
        print(isinstance(sys.modules["asyncio"], DeferredModule), asyncio.events.__name__)
        """
    )
    assert out == "False asyncio.events"
