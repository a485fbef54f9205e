"""The size limits we keep in src/: a module up to 400 lines, a class up to 150, a function up
to 60. What is still over is listed in ALLOWED at its current size, so it can only shrink;
once it is under the limit, its entry must go."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "beanmill"

MODULE_LINES = 400
CLASS_LINES = 150
FUNCTION_LINES = 60

#: Still over the limit: qualified name (module path with dots, then the class and function
#: names) to its size today, a cap it must not grow past.
ALLOWED: dict[str, int] = {}


@dataclass(frozen=True)
class Unit:
    """A module, class or function, its size in lines and the limit for its kind."""

    name: str
    size: int
    limit: int


def measure(root: Path) -> list[Unit]:
    """Every module under `root`, and every class and function in them (nested ones too)."""
    units: list[Unit] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        units.append(Unit(module, len(text.splitlines()), MODULE_LINES))
        units.extend(_defs(ast.parse(text), module))
    return units


def _defs(node: ast.AST, prefix: str) -> list[Unit]:
    found: list[Unit] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}.{child.name}"
            size = (child.end_lineno or child.lineno) - child.lineno + 1
            limit = CLASS_LINES if isinstance(child, ast.ClassDef) else FUNCTION_LINES
            found.append(Unit(name, size, limit))
            found.extend(_defs(child, name))
    return found


def test_no_module_class_or_function_in_src_is_over_its_limit_unless_allowed() -> None:
    over = {u.name: u.size for u in measure(SRC) if u.size > u.limit and u.name not in ALLOWED}
    assert not over, (
        f"over the size limits (module {MODULE_LINES}, class {CLASS_LINES}, function "
        f"{FUNCTION_LINES} lines): {over}; split by concern rather than add to ALLOWED"
    )


def test_an_allowed_unit_does_not_grow_past_its_cap() -> None:
    sizes = {u.name: u.size for u in measure(SRC)}
    grown = {name: sizes[name] for name, cap in ALLOWED.items() if sizes.get(name, 0) > cap}
    assert not grown, f"grown past their caps in ALLOWED {ALLOWED}: {grown}; shrink them instead"


def test_an_allowed_unit_under_its_limit_leaves_the_list() -> None:
    units = {u.name: u for u in measure(SRC)}
    done = [n for n in ALLOWED if n not in units or units[n].size <= units[n].limit]
    assert not done, f"within the limits now (or gone): delete {done} from ALLOWED"


def test_measure_names_and_sizes_modules_classes_and_nested_functions(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    body = "".join(f"        x{i} = {i}\n" for i in range(FUNCTION_LINES))
    source = f"class Big:\n    def run(self) -> None:\n{body}\n\ndef small() -> None:\n    pass\n"
    (package / "mod.py").write_text(source)
    sizes = {u.name: (u.size, u.limit) for u in measure(tmp_path)}
    assert sizes == {
        "pkg.mod": (FUNCTION_LINES + 6, MODULE_LINES),
        "pkg.mod.Big": (FUNCTION_LINES + 2, CLASS_LINES),
        "pkg.mod.Big.run": (FUNCTION_LINES + 1, FUNCTION_LINES),
        "pkg.mod.small": (2, FUNCTION_LINES),
    }
