"""Check marks of ablation tables that hold only where a config key is set: ``table.mark_keys`` maps a mark to
the key of the row's runs that makes it (``Transfer learning: model.pretrained``). A row ticked for an ingredient
its runs had switched off (scale=smoke gives no pretrained weights unless ``pretrained_weights=<file>``) shows
(✓) instead of ✓, and a note below the table says so, rather than crediting the row with what it did not have."""

from __future__ import annotations

from typing import Any

from rsseg.tables.groups import Row
from rsseg.tables.records import dig

SWITCHED_OFF = "switched off"  # a mark cell: rendered (✓), "off" in CSV


def switched_off(row: Row, spec: dict) -> dict[str, str]:
    """The ticked marks of ``row`` whose ``table.mark_keys`` key is unset in any of its runs, with that key."""
    keys = spec.get("mark_keys") or {}
    return {str(mark): str(key) for mark, key in keys.items()
            if (row.marks or {}).get(mark) and any(not dig(run.payload, f"config.{key}") for run in row.runs)}


def mark_cell(row: Row, mark: str, spec: dict) -> Any:
    """The cell of ``mark`` in ``row``: True, False, None (no marks) or :data:`SWITCHED_OFF`."""
    if mark in switched_off(row, spec):
        return SWITCHED_OFF
    return row.marks.get(mark) if row.marks else None


def switched_off_notes(rows: list[Row], spec: dict, scale: str) -> list[str]:
    """One note per row with a switched-off mark, naming the key, and the row above whose ticks it then has."""
    notes, above = [], None
    for row in rows:
        if row.missing:
            continue
        off = switched_off(row, spec)
        if off:
            what = ", ".join(f"{mark} ({key} is null in its runs)" for mark, key in off.items())
            note = f"(✓): switched off at scale {scale}, so row {row.name} trained without it: {what}"
            ticks = {m: bool(v) and m not in off for m, v in (row.marks or {}).items()}
            if above is not None and ticks == {m: bool(v) for m, v in (above.marks or {}).items()}:
                note += f"; its ticks are then those of row {above.name}"
            notes.append(note)
        above = row
    return notes
