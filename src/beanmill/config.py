"""Configuration: one TOML file under the flags and environment.

Precedence is flag > environment (`BEANMILL_*`) > file > default. click already resolves a
parameter in exactly that order when the file is handed to it as the context's default_map,
so this module only finds and reads the file and shapes it per command.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import click

from beanmill.errors import BeanmillError

ENV_PREFIX = "BEANMILL_"


def search_path() -> list[Path]:
    """Where a config file is looked for when --config is not given: first found wins."""
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [
        Path("beanmill.toml"),
        xdg / "beanmill" / "config.toml",
        Path("/etc/beanmill/beanmill.toml"),
    ]


def find_config(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise BeanmillError(f"config file {explicit} not found: check --config")
        return explicit
    return next((p for p in search_path() if p.is_file()), None)


def load_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise BeanmillError(f"config file {path} is not valid TOML ({exc}): fix it") from None
    except OSError as exc:
        raise BeanmillError(f"cannot read config file {path} ({exc.strerror})") from None


def _key(name: str) -> str:
    return name.replace("-", "_")


def default_map(data: dict[str, Any], group: click.Group, path: Path) -> dict[str, Any]:
    """Top-level keys apply to every command that has the option; `[role]` tables to one.

    A key no command knows is an error, so a typo in the file is not silently ignored.
    """
    known: set[str] = set()
    result: dict[str, dict[str, Any]] = {}
    for name, cmd in group.commands.items():
        params = {p.name for p in cmd.params if p.name}
        known |= params
        values = {_key(k): v for k, v in data.items() if not isinstance(v, dict)}
        values = {k: v for k, v in values.items() if k in params}
        table = data.get(name, {})
        if isinstance(table, dict):
            for k, v in table.items():
                if _key(k) not in params:
                    raise BeanmillError(f"{path}: [{name}] has no setting {k!r}")
                values[_key(k)] = v
        result[name] = values
    for k, v in data.items():
        if not isinstance(v, dict) and _key(k) not in known:
            raise BeanmillError(f"{path}: unknown setting {k!r}")
        if isinstance(v, dict) and k not in group.commands:
            raise BeanmillError(f"{path}: unknown section [{k}]")
    return result


def add_env_vars(group: click.Group) -> None:
    """Every option reads `BEANMILL_<FLAG>` (`--max-attempts`: BEANMILL_MAX_ATTEMPTS) unless
    it names its own variable."""
    for cmd in group.commands.values():
        for param in cmd.params:
            if isinstance(param, click.Option) and param.envvar is None:
                flag = max(param.opts, key=len).lstrip("-")
                param.envvar = ENV_PREFIX + flag.replace("-", "_").upper()


def describe_sources(ctx: click.Context, cmd: click.Command, name: str) -> list[str]:
    """One line per option of `cmd`: the effective value and where it came from."""
    sub = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)
    lines = []
    for param in cmd.params:
        if not isinstance(param, click.Option) or not param.name or param.name == "help":
            continue
        source = sub.get_parameter_source(param.name)
        where = (
            {
                click.core.ParameterSource.ENVIRONMENT: f"env {param.envvar}",
                click.core.ParameterSource.DEFAULT_MAP: "file",
                click.core.ParameterSource.COMMANDLINE: "flag",
            }.get(source, "default")
            if source is not None
            else "default"
        )
        lines.append(f"{name}.{param.name} = {sub.params.get(param.name)!r}  ({where})")
    return lines
