"""The JSON value type shared by map results, partials and totals."""

from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None
Item: TypeAlias = str | int
