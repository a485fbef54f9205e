"""Job specs: the user's code, loaded by import path or file path, never from the queue."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from beanmill.errors import SpecError, UserCodeError
from beanmill.jsontypes import JSON, Item
from beanmill.usercode import user_frame

TUBE_NAME = re.compile(r"^[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,150}$")


@runtime_checkable
class Monoid(Protocol):
    """A monoid over JSON values: rereduce of any split equals reduce of the whole."""

    def reduce(self, values: Sequence[JSON]) -> JSON: ...

    def rereduce(self, partials: Sequence[JSON]) -> JSON: ...

    def describe(self, total: JSON) -> str: ...


@dataclass(frozen=True)
class Progress:
    """What the reducer knows about the run, passed to a spec's report() and done()."""

    items: int
    batches: int
    total_items: int | None
    total_batches: int | None
    errors: int
    elapsed: float
    items_per_s: float

    @property
    def fraction(self) -> float | None:
        if not self.total_items:
            return None
        return min(1.0, self.items / self.total_items)


class Job:
    """Subclass it: define items() and map(), then reduce()/rereduce() or set a reducer."""

    name: str = ""
    #: Change it when map() changes on purpose: partials of another version are refused.
    version: str | int | None = None
    reducer: Monoid | None = None

    def items(self) -> Iterable[Item]:
        raise NotImplementedError("a job spec must define items()")

    def map(self, item: Item) -> JSON:
        raise NotImplementedError("a job spec must define map(item)")

    def setup(self) -> None:
        """Called once per consumer process before the first map (open connections here)."""

    def thread_setup(self) -> None:
        """Called once in each map thread (with --threads N): keep per-thread connections in
        a threading.local() created here."""

    def reduce(self, values: Sequence[JSON]) -> JSON:
        if self.reducer is None:
            raise SpecError(f"job {self.name!r} needs reduce() or a reducer")
        return self.reducer.reduce(values)

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        if self.reducer is None:
            raise SpecError(f"job {self.name!r} needs rereduce() or a reducer")
        return self.reducer.rereduce(partials)

    def report(self, total: JSON, progress: Progress) -> str:
        if self.reducer is not None:
            return self.reducer.describe(total)
        return json.dumps(total)[:200]

    def done(self, total: JSON, progress: Progress) -> bool:
        return False


class Spec:
    """A loaded spec with every hook present, whatever the user's object left out."""

    def __init__(self, obj: Any, ref: str) -> None:
        self.obj = obj
        self.ref = ref
        name = getattr(obj, "name", "") or type(obj).__name__.lower()
        if not isinstance(name, str) or not TUBE_NAME.match(name):
            raise SpecError(
                f"job name {name!r} cannot name a tube: use letters, digits and .+/;$_()- only"
            )
        self.name = name
        version = getattr(obj, "version", None)
        self.version: str | None = None if version is None else str(version)
        for hook in ("items", "map"):
            if not _defines(obj, hook):
                raise SpecError(f"{ref}: a job spec must define {hook}()")
        self.reducer: Monoid | None = getattr(obj, "reducer", None)
        if self.reducer is None and not (_defines(obj, "reduce") and _defines(obj, "rereduce")):
            raise SpecError(f"{ref}: define reduce() and rereduce(), or set reducer = ...")

    def _hook(self, name: str) -> Callable[..., Any] | None:
        fn = getattr(self.obj, name, None)
        return fn if callable(fn) else None

    @property
    def tubes(self) -> tuple[str, str]:
        return f"{self.name}.items", f"{self.name}.results"

    @property
    def control_tube(self) -> str:
        """Holds one `finished` record once the reducer has stopped the job."""
        return f"{self.name}.control"

    def items(self) -> Iterable[Item]:
        try:
            items: Iterable[Item] = self.obj.items()
        except Exception as exc:
            raise UserCodeError(f"items() of {self.ref} raised: {user_frame(exc)}") from None
        return items

    def map(self, item: Item) -> JSON:
        value: JSON = self.obj.map(item)
        return value

    def setup(self) -> None:
        fn = self._hook("setup")
        if fn is not None:
            fn()

    @property
    def thread_setup(self) -> Callable[[], None] | None:
        """Runs once in each map thread: per-thread resources (a DB connection per thread)."""
        return self._hook("thread_setup")

    def reduce(self, values: Sequence[JSON]) -> JSON:
        fn = self._hook("reduce")
        if fn is None:
            assert self.reducer is not None
            return self.reducer.reduce(values)
        result: JSON = fn(values)
        return result

    def rereduce(self, partials: Sequence[JSON]) -> JSON:
        fn = self._hook("rereduce")
        if fn is None:
            assert self.reducer is not None
            return self.reducer.rereduce(partials)
        result: JSON = fn(partials)
        return result

    def report(self, total: JSON, progress: Progress) -> str:
        fn = self._hook("report")
        if fn is not None:
            return str(fn(total, progress))
        if self.reducer is not None:
            return self.reducer.describe(total)
        return json.dumps(total)[:200]

    def done(self, total: JSON, progress: Progress) -> bool:
        fn = self._hook("done")
        return bool(fn(total, progress)) if fn is not None else False


def _defines(obj: Any, hook: str) -> bool:
    """A callable hook that is the user's own, not Job's placeholder that raises."""
    fn = getattr(type(obj), hook, None) if isinstance(obj, Job) else getattr(obj, hook, None)
    return callable(fn) and fn is not getattr(Job, hook)


def _import_module(where: str) -> Any:
    if where.endswith(".py") or "/" in where or where.startswith("."):
        path = Path(where)
        if not path.is_file():
            raise SpecError(f"job spec file {where} not found (SPEC is path/to/file.py:NAME)")
        module_name = "beanmill_spec_" + re.sub(r"\W", "_", str(path.resolve()))
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise SpecError(f"cannot load {where} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise _import_failed(where, exc) from exc
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is not None and where.startswith(exc.name):
            raise SpecError(f"cannot import {where}: {exc} (SPEC is package.module:NAME)") from None
        raise _import_failed(where, exc) from exc
    except Exception as exc:
        raise _import_failed(where, exc) from exc


def _import_failed(where: str, exc: Exception) -> UserCodeError:
    """The spec's own code failed while importing: the error at the user's line."""
    return UserCodeError(f"job spec {where} failed to import: {user_frame(exc)}")


def load_spec(ref: str) -> Spec:
    """Load `path/to/file.py:NAME` or `package.module:NAME`; a class is instantiated bare."""
    where, sep, attr = ref.rpartition(":")
    if not sep or not where or not attr:
        raise SpecError(
            f"job spec {ref!r} must look like path/to/file.py:NAME or package.module:NAME"
        )
    module = _import_module(where)
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise SpecError(f"{where} has no {attr!r}") from None
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as exc:
            raise UserCodeError(f"{ref}() raised: {user_frame(exc)}") from exc
    return Spec(obj, ref)
