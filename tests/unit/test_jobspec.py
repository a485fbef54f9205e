"""Loading job specs: by file path or import path, complete or refused with a clear SpecError."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from beanmill import Job
from beanmill.errors import SpecError
from beanmill.jobspec import Spec, load_spec
from beanmill.reducers import Sum

SPEC_FILE = """
from beanmill import Job
from beanmill.reducers import Sum

class Squares(Job):
    name = "squares"

    def items(self):
        return range(10)

    def map(self, item):
        return int(item) ** 2

    def reduce(self, values):
        return sum(values)

    def rereduce(self, partials):
        return sum(partials)


class Plain:
    '''No base class at all: duck typing is enough.'''

    reducer = Sum()

    def items(self):
        return ["a", "b"]

    def map(self, item):
        return 1


instance = Squares()
not_a_spec = 42
"""


def write(path: Path, text: str = SPEC_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# -- loading -------------------------------------------------------------------------------


def test_load_spec_from_file_path_instantiates_a_class(tmp_path: Path) -> None:
    path = write(tmp_path / "jobs" / "squares_job.py")
    spec = load_spec(f"{path}:Squares")
    assert type(spec.obj).__name__ == "Squares"
    assert spec.name == "squares" and spec.ref == f"{path}:Squares"
    assert spec.tubes == ("squares.items", "squares.results")
    assert spec.control_tube == "squares.control"
    assert spec.rereduce([spec.reduce([spec.map(i) for i in spec.items()])]) == 285


def test_load_spec_from_file_path_takes_an_instance_as_it_is(tmp_path: Path) -> None:
    path = write(tmp_path / "squares_job.py")
    spec = load_spec(f"{path}:instance")
    assert spec.obj is load_spec(f"{path}:instance").obj  # the module is loaded once
    assert spec.name == "squares"


def test_load_spec_from_relative_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "rel_job.py")
    monkeypatch.chdir(tmp_path)
    assert load_spec("./rel_job.py:Squares").name == "squares"
    assert load_spec("rel_job.py:Squares").name == "squares"


def test_load_spec_from_package_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "beanmill_test_pkg_a1"
    write(package / "__init__.py", "")
    write(package / "jobs.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = load_spec("beanmill_test_pkg_a1.jobs:Squares")
    assert spec.name == "squares"
    assert spec.map(3) == 9


def test_load_spec_of_the_test_suites_own_specs() -> None:
    spec = load_spec("specs.sums:Squares")
    assert spec.name == "squares" and isinstance(spec.obj, Job)


def test_class_name_is_the_default_job_name(tmp_path: Path) -> None:
    spec = load_spec(f"{write(tmp_path / 'plain_job.py')}:Plain")
    assert spec.name == "plain"


# -- reducers ------------------------------------------------------------------------------


def test_reducer_object_is_used_for_reduce_and_rereduce(tmp_path: Path) -> None:
    spec = load_spec(f"{write(tmp_path / 'plain_job.py')}:Plain")
    assert isinstance(spec.reducer, Sum)
    assert spec.reduce([1, 2, 3]) == 6
    assert spec.rereduce([6, 4]) == 10
    assert spec.report(10, None) == Sum().describe(10)  # type: ignore[arg-type]


def test_job_subclass_with_a_reducer_uses_it() -> None:
    class Counted(Job):
        name = "counted"
        reducer = Sum()

        def items(self) -> range:
            return range(3)

        def map(self, item: str | int) -> int:
            return 1

    spec = Spec(Counted(), "test:Counted")
    assert spec.reduce([1, 1, 1]) == 3 and spec.rereduce([3, 2]) == 5


# -- refusing incomplete specs -------------------------------------------------------------


class _Full:
    name = "full"

    def items(self) -> list[int]:
        return [1]

    def map(self, item: int) -> int:
        return item

    def reduce(self, values: list[int]) -> int:
        return sum(values)

    def rereduce(self, partials: list[int]) -> int:
        return sum(partials)


def _without(*hooks: str) -> object:
    cls = type("Partial", (), {k: v for k, v in vars(_Full).items() if k not in hooks})
    return cls()


@pytest.mark.parametrize(
    ("missing", "says"),
    [
        (("items",), "items()"),
        (("map",), "map()"),
        (("reduce",), "reduce() and rereduce()"),
        (("rereduce",), "reduce() and rereduce()"),
        (("reduce", "rereduce"), "reducer = ..."),
    ],
)
def test_spec_missing_a_hook_is_refused(missing: tuple[str, ...], says: str) -> None:
    assert Spec(_without(), "ok:Full").name == "full"
    with pytest.raises(SpecError, match="job:Partial") as info:
        Spec(_without(*missing), "job:Partial")
    assert says in str(info.value)


def test_hook_that_is_not_callable_is_refused() -> None:
    obj = _without()
    obj.map = 42  # type: ignore[attr-defined]
    with pytest.raises(SpecError, match=r"map\(\)"):
        Spec(obj, "job:Partial")


class _JobItems(Job):
    name = "noitems"

    def map(self, item: str | int) -> int:
        return 1

    def reduce(self, values: object) -> int:
        return 0

    def rereduce(self, partials: object) -> int:
        return 0


class _JobMap(Job):
    name = "nomap"

    def items(self) -> range:
        return range(1)

    def reduce(self, values: object) -> int:
        return 0

    def rereduce(self, partials: object) -> int:
        return 0


class _JobReduce(Job):
    name = "noreduce"

    def items(self) -> range:
        return range(1)

    def map(self, item: str | int) -> int:
        return 1


@pytest.mark.parametrize("cls", [_JobItems, _JobMap, _JobReduce], ids=["items", "map", "reduce"])
def test_job_subclass_missing_a_hook_is_refused_at_load(cls: type[Job]) -> None:
    with pytest.raises(SpecError):
        Spec(cls(), "job:Incomplete")


@pytest.mark.parametrize(
    "name",
    ["has space", "-leading-dash", "x" * 152, "na\u00efve", "tab\there", "a:b", 42],
)
def test_job_name_that_cannot_name_a_tube_is_refused(name: object) -> None:
    obj = _without()
    obj.name = name  # type: ignore[attr-defined]
    with pytest.raises(SpecError, match="cannot name a tube"):
        Spec(obj, "job:Named")


@pytest.mark.parametrize("name", ["squares", "a.b_c-1", "(x)+y/z;$", "x" * 151, "A"])
def test_job_name_that_names_a_tube_is_accepted(name: str) -> None:
    obj = _without()
    obj.name = name  # type: ignore[attr-defined]
    assert Spec(obj, "job:Named").tubes == (f"{name}.items", f"{name}.results")


# -- clear errors for bad references -------------------------------------------------------


@pytest.mark.parametrize("ref", ["squares", "jobs.py", "jobs.py:", ":Squares", ""])
def test_malformed_ref_is_refused_with_the_expected_shape(ref: str) -> None:
    with pytest.raises(SpecError, match=r"path/to/file\.py:NAME or package\.module:NAME"):
        load_spec(ref)


def test_missing_spec_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "job.py"
    with pytest.raises(SpecError, match="not found") as info:
        load_spec(f"{missing}:Squares")
    assert str(missing) in str(info.value)


def test_missing_module_is_named() -> None:
    with pytest.raises(SpecError, match=r"cannot import no_such_pkg_zz\.jobs"):
        load_spec("no_such_pkg_zz.jobs:Squares")


def test_missing_attribute_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "attr_job.py")
    with pytest.raises(SpecError, match="has no 'Cubes'"):
        load_spec(f"{path}:Cubes")
    with pytest.raises(SpecError, match="has no 'Cubes'"):
        load_spec("specs.sums:Cubes")


def test_attribute_that_is_no_spec_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "int_job.py")
    with pytest.raises(SpecError):
        load_spec(f"{path}:not_a_spec")
