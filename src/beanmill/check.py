"""A dry run of a job spec with no queue: a map() that raises, a value that is not JSON or a
rereduce() that disagrees with reduce() shows up in seconds, not hours into a run."""

from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from beanmill import wire
from beanmill.check_agree import check_reduce, cut, round_trip
from beanmill.errors import BeanmillError, CheckFailed, UserCodeError
from beanmill.jobspec import Spec, load_spec
from beanmill.jsontypes import JSON, Item
from beanmill.progress import duration
from beanmill.source import population_size

#: Items `beanmill check` maps by default; `quick_check` maps fewer, before a run.
DEFAULT_SAMPLE = 200
QUICK_SAMPLE = 20
#: How many failing items a problem lists.
SHOWN_FAILURES = 3

T = TypeVar("T")
BEANMILL_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class MapFailure:
    """One sampled item whose map() raised, and where in the user's code."""

    item: Item
    error: str
    where: str

    def __str__(self) -> str:
        return f"item {self.item!r}: {self.error} at {self.where}"


@dataclass(frozen=True)
class CheckReport:
    """What a dry run found: human lines of what passed, and problems (none: ok)."""

    spec: str
    lines: tuple[str, ...]
    problems: tuple[str, ...]
    sampled: int = 0
    failed_items: int = 0
    map_failures: tuple[MapFailure, ...] = ()
    items_per_s: float | None = None
    population: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        """The final line: `check: ok` or `check: FAILED: <first problem>`."""
        return "check: ok" if self.ok else f"check: FAILED: {self.problems[0]}"

    def raise_if_failed(self) -> None:
        """For `beanmill run`: refuse to start a run that the check says would fail."""
        if self.problems:
            raise CheckFailed(f"{self.spec}: {self.problems[0]} (see `beanmill check`)")


@dataclass
class _Findings:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sampled: int = 0
    failed_items: int = 0
    map_failures: list[MapFailure] = field(default_factory=list)
    items_per_s: float | None = None
    population: int | None = None

    def report(self, spec: str) -> CheckReport:
        return CheckReport(
            spec=spec,
            lines=tuple(self.lines),
            problems=tuple(self.problems),
            sampled=self.sampled,
            failed_items=self.failed_items,
            map_failures=tuple(self.map_failures),
            items_per_s=self.items_per_s,
            population=self.population,
        )


def check_ref(ref: str, sample: int = DEFAULT_SAMPLE, seed: int = 0) -> CheckReport:
    """Load the spec at `ref` and check it; a spec that does not even load fails the check."""
    try:
        spec = load_spec(ref)
    except Exception as exc:  # the user's module ran at import: its failure is a finding
        return CheckReport(spec=ref, lines=(), problems=(_load_problem(ref, exc),))
    return run_check(spec, sample, seed)


def checked_spec(ref: str, until_field: str | None, quick: bool) -> Spec:
    """`beanmill run`'s spec, refused before anything starts: a bad --until-field, and with
    `quick` what the quick form of `check` finds (an error in the spec's code)."""
    from beanmill.ending import check_until_field

    loaded = load_spec(ref)
    check_until_field(loaded.reducer, until_field)
    if quick:
        quick_check(loaded).raise_if_failed()
    return loaded


def quick_check(spec: Spec, sample: int = QUICK_SAMPLE) -> CheckReport:
    """The short form `beanmill run` can afford before it starts: the same checks, fewer items."""
    return run_check(spec, sample)


def run_check(spec: Spec, sample: int = DEFAULT_SAMPLE, seed: int = 0) -> CheckReport:
    """Map the first `sample` items as a consumer would, then check the values and the reduce.

    Like the consumer at --threads 1, setup(), thread_setup() and map() run on one worker
    thread, so a resource that setup() opens (a sqlite3 connection) is usable in map().
    """
    found = _Findings()
    files = _spec_files(spec)
    try:
        items = _sample(spec, sample, files, found)
        if not items:
            found.lines.append("items(): none, so map() and reduce() were not tried")
            return found.report(spec.ref)
        values = _json_values(_map_on_worker(spec, items, files, found), found)
        if values:
            found.lines.append(
                check_reduce(
                    spec,
                    values,
                    seed,
                    functools.partial(_partial, spec, files=files),
                    functools.partial(_rereduce, spec, files=files),
                )
            )
    except CheckFailed as exc:
        found.problems.append(str(exc))
    return found.report(spec.ref)


def _call(hook: str, fn: Callable[..., T], files: frozenset[str], *args: object) -> T:
    """One call of user code; its exception becomes one line naming the hook and the line."""
    try:
        return fn(*args)
    except UserCodeError as exc:  # already told at the user's line (Spec.items())
        raise CheckFailed(str(exc)) from exc
    except Exception as exc:
        raise CheckFailed(f"{hook} raised {_describe(exc)} at {_where(exc, files)}") from exc


def _sample(spec: Spec, n: int, files: frozenset[str], found: _Findings) -> list[Item]:
    def take() -> tuple[int | None, list[Item]]:
        source = spec.items()
        return population_size(source), list(itertools.islice(source, n))

    found.population, items = _call("items()", take, files)
    found.sampled = len(items)
    return items


@dataclass
class _MapRun:
    mapped: list[tuple[Item, JSON]] = field(default_factory=list)
    seconds: float = 0.0


def _map_on_worker(
    spec: Spec, items: list[Item], files: frozenset[str], found: _Findings
) -> list[tuple[Item, JSON]]:
    """A daemon thread, so that a map() which hangs cannot keep Ctrl-C from ending the check."""
    outcome: list[_MapRun | BaseException] = []

    def work() -> None:
        try:
            outcome.append(_map_sample(spec, items, files, found))
        except BaseException as exc:  # handed to the calling thread, which re-raises it
            outcome.append(exc)

    worker = threading.Thread(target=work, name="beanmill-check-map", daemon=True)
    worker.start()
    worker.join()
    run = outcome[0]
    if isinstance(run, BaseException):
        raise run
    calls = len(items)
    found.items_per_s = calls / max(run.seconds, 1e-9)
    found.lines.append(
        f"map(): {len(run.mapped)} of {calls} sampled items mapped in {run.seconds:.3g} s, "
        f"{found.items_per_s:,.0f} items/s on one core"
    )
    found.lines.append(_estimate(found.population, found.items_per_s))
    _note_failures(calls, found)
    return run.mapped


def _map_sample(spec: Spec, items: list[Item], files: frozenset[str], found: _Findings) -> _MapRun:
    _call("setup()", spec.setup, files)
    thread_setup = spec.thread_setup
    if thread_setup is not None:
        _call("thread_setup()", thread_setup, files)
    run = _MapRun()
    for item in items:
        start = time.perf_counter()
        try:
            value = spec.map(item)
        except Exception as exc:  # one failing item is the user's, and a real run buries it
            found.failed_items += 1
            if len(found.map_failures) < SHOWN_FAILURES:
                found.map_failures.append(MapFailure(item, _describe(exc), _where(exc, files)))
            continue
        finally:
            run.seconds += time.perf_counter() - start
        run.mapped.append((item, value))
    return run


def _note_failures(calls: int, found: _Findings) -> None:
    failed = found.failed_items
    if failed == 0:
        return
    first = found.map_failures[0]
    if failed == calls:
        raise CheckFailed(f"map() raised on all {calls} sampled items; the first: {first}")
    found.lines.append(
        f"map(): raised on {failed} of {calls} sampled items (a run retries, then buries them):"
    )
    found.lines.extend(f"  {failure}" for failure in found.map_failures)


def _json_values(mapped: list[tuple[Item, JSON]], found: _Findings) -> list[JSON]:
    """The values that can cross the wire; the first that cannot is a problem."""
    good: list[JSON] = []
    bad: list[tuple[Item, JSON, str]] = []
    for item, value in mapped:
        try:
            wire.dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:
            bad.append((item, value, str(exc)))
            continue
        good.append(value)
    if not bad:
        if mapped:
            found.lines.append(f"map(): all {len(mapped)} values are strict JSON")
        return good
    item, value, why = bad[0]
    more = f" (and {len(bad) - 1} more items)" if len(bad) > 1 else ""
    found.problems.append(
        f"map() returned a value that is not strict JSON for item {item!r}: "
        f"{cut(why)}: {cut(repr(value))}{more}; return dict, list, str, int, finite float, "
        "bool or None"
    )
    return good


def _partial(spec: Spec, values: Sequence[JSON], *, files: frozenset[str]) -> JSON:
    """reduce() as the consumer runs it, then the JSON round trip of the results tube."""
    return round_trip("reduce()", _call("reduce()", spec.reduce, files, values))


def _rereduce(spec: Spec, partials: Sequence[JSON], *, files: frozenset[str]) -> JSON:
    return round_trip("rereduce()", _call("rereduce()", spec.rereduce, files, partials))


def _estimate(population: int | None, items_per_s: float) -> str:
    if population is None:
        return "estimate: items() has no len(), so the run time is not estimated"
    return (
        f"estimate: ~{duration(population / items_per_s)} for {population:,} items at "
        f"{items_per_s:,.0f} items/s on one core"
    )


def _spec_files(spec: Spec) -> frozenset[str]:
    """Source files of the spec's object and of its classes, beanmill's own left out."""
    modules: list[types.ModuleType | None] = (
        [spec.obj] if isinstance(spec.obj, types.ModuleType) else []
    )
    modules += [sys.modules.get(cls.__module__) for cls in type(spec.obj).__mro__]
    files: set[str] = set()
    for module in modules:
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and not Path(path).resolve().is_relative_to(BEANMILL_DIR):
            files.add(os.path.realpath(path))
    return frozenset(files)


def _where(exc: BaseException, files: frozenset[str]) -> str:
    """file:line of the last frame in the spec's own files, else of the last frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown line"
    inside = [f for f in frames if os.path.realpath(f.filename) in files]
    frame = (inside or frames)[-1]
    return f"{_shown_path(frame.filename)}:{frame.lineno}"


def _shown_path(filename: str) -> str:
    if filename.startswith("<"):
        return filename
    rel = os.path.relpath(filename)
    return filename if rel.startswith("..") else rel


def _load_problem(ref: str, exc: Exception) -> str:
    if isinstance(exc, BeanmillError):  # SpecError: already one line that says what to do
        return str(exc)
    where, _, _ = ref.rpartition(":")
    files = frozenset({os.path.realpath(where)}) if where.endswith(".py") else frozenset()
    return f"loading {ref} raised {_describe(exc)} at {_where(exc, files)}"


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return cut(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
