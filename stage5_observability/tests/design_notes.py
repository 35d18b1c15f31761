"""Read what the stage's design notes promise (design/*.md tables), so tests check the documented contract."""
from __future__ import annotations

import re
from pathlib import Path

DESIGN = Path(__file__).resolve().parents[1] / "design"


def table_rows(note: str, heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first table under `heading` in design/<note>."""
    text = (DESIGN / note).read_text(encoding="utf-8")
    lines = text[text.index(f"\n{heading}\n") + len(heading) + 2:].splitlines()
    rows: list[list[str]] = []
    for line in lines:
        if line.startswith("#") or (rows and not line.startswith("|")):
            break  # the next section, or the end of the table
        if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    if len(rows) < 2:
        raise LookupError(f"no table under {heading!r} in design/{note}")
    return rows[1:]  # without the header row


def names_in_table(note: str, heading: str) -> list[str]:
    """The back-quoted names in the first column of that table."""
    return [re.fullmatch(r"`([^`]+)`", row[0]).group(1) for row in table_rows(note, heading)]


def settings_inventory() -> list[str]:
    """Every variable of the settings inventory."""
    return names_in_table("settings.md", "## The inventory")


def documented_defaults() -> dict[str, str]:
    """Variable -> default, for the inventory rows whose default is one plain value (`900`, `false`)."""
    defaults = {}
    for row in table_rows("settings.md", "## The inventory"):
        plain = re.fullmatch(r"`([^`]+)`", row[3])
        if plain:
            defaults[row[0].strip("`")] = plain.group(1)
    return defaults


def record_fields() -> list[str]:
    """The fields every JSON record carries."""
    return names_in_table("logging.md", "## The JSON line")


def access_fields() -> list[str]:
    """The fields of the access line, beyond those of every record."""
    return names_in_table("logging.md", "### Access line fields")
