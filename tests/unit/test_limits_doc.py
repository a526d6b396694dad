"""docs/limits.md lists every per-listener option with its default."""

from __future__ import annotations

import dataclasses
import re

from geworker.settings import Options

from conftest import ROOT


def _shown(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        return f"{value // 1048576} MiB" if value % 1048576 == 0 else f"{value // 1024} KiB"
    if isinstance(value, float):
        return f"{value:g} s"
    return str(value)


def test_every_option_is_in_the_limits_table_with_its_default():
    rows = {}
    for line in (ROOT / "docs" / "limits.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 2:
            names = re.findall(r"`(\w+)`", cells[0])
            defaults = [d.strip() for d in cells[1].split("/")]
            for name, default in zip(names, defaults, strict=False):
                rows[name] = default
    for field in dataclasses.fields(Options):
        if field.name == "ssl_context":
            continue  # not a limit (see the guide's TLS section)
        assert field.name in rows, f"docs/limits.md does not list {field.name}"
        assert rows[field.name].startswith(_shown(field.default)), (
            f"docs/limits.md gives {field.name} = {rows[field.name]!r}, "
            f"the code {_shown(field.default)!r}")
