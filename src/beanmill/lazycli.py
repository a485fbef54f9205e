"""A click group whose operator commands are imported only when named.

A role (`beanmill consumer`, each child of `beanmill run`) never needs the admin commands,
`check`, `status`, `plot` or the dashboard; importing them cost every role start tens of
milliseconds. Listing, help and the config file still see every command: those load all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click

# command name -> module whose `register(group)` adds it (and its siblings) to a group
LAZY_COMMANDS: dict[str, str] = {
    "stats": "beanmill.admin.cli",
    "buried": "beanmill.admin.cli",
    "requeue": "beanmill.admin.cli",
    "delete": "beanmill.admin.cli",
    "top": "beanmill.admin.cli",
    "reset": "beanmill.admin.cli",
    "status": "beanmill.status_cli",
    "plot": "beanmill.status_cli",
    "check": "beanmill.check_cli",
    "dashboard": "beanmill.dashboard_cli",
}


class LazyGroup(click.Group):
    """`get_command` imports a lazy command's module on first use; `on_load` then adjusts
    the commands it added (environment variables), as it did for the eager ones."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_load: Callable[[click.Group], None] | None = None
        self._loaded: set[str] = set()

    def _load(self, module: str) -> None:
        importlib.import_module(module).register(self)
        if self.on_load is not None:
            self.on_load(self)

    def load_all(self) -> None:
        """Every lazy command, for what must see them all (a config file's keys)."""
        for module in dict.fromkeys(LAZY_COMMANDS.values()):
            if module not in self._loaded:
                self._loaded.add(module)
                self._load(module)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = LAZY_COMMANDS.get(cmd_name)
        if cmd_name not in self.commands and module is not None and module not in self._loaded:
            self._loaded.add(module)
            self._load(module)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(LAZY_COMMANDS))
