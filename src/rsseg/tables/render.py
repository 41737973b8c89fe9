"""Rendering a :class:`~rsseg.tables.build.Table`: markdown (what the command prints too), CSV (numbers as
numbers) and LaTeX (booktabs), each with its provenance; and how a number, an estimate and a difference read."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from rsseg.tables.bootstrap import Delta, Estimate
from rsseg.tables.build import Table
from rsseg.tables.marks import SWITCHED_OFF

FORMATS = {"md": ".md", "csv": ".csv", "tex": ".tex"}


def format_number(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "signed":
        return f"{value:+.2f}"
    return f"{value:,.0f}" if unit == "params" else f"{value:.2f}"


def format_estimate(estimate: Estimate | None, unit: str) -> str:
    """``68.62 ± 0.41 [66.10, 70.30]``: mean, ± std with two seeds or more, [95 % interval] when bootstrapped."""
    if estimate is None:
        return "—"
    text = format_number(estimate.mean, unit)
    if estimate.std is not None:
        text += f" ± {format_number(estimate.std, unit)}"
    if estimate.low is not None and estimate.high is not None:
        text += f" [{format_number(estimate.low, unit)}, {format_number(estimate.high, unit)}]"
        text += "§" if estimate.scenes_only else ""
    return text


def format_delta(delta: Delta | None, star: str = " *") -> str:
    """``+5.35 [+2.10, +8.40] *``: the difference, its paired interval, and a star when that excludes 0."""
    if delta is None:
        return ""
    text = f"{delta.diff:+.2f} [{delta.low:+.2f}, {delta.high:+.2f}]" + ("§" if delta.scenes_only else "")
    return text + (star if delta.significant else "")


def format_cell(value: Any, kind: str, unit: str) -> str:
    if kind == "mark":
        return "(✓)" if value == SWITCHED_OFF else "✓" if value else ""
    if kind == "estimate":
        return format_estimate(value, unit)
    if kind == "paper":
        return format_number(value, unit) if isinstance(value, (int, float)) else ""
    if kind == "delta":
        return format_delta(value)
    return "" if value is None else str(value)


def markdown_provenance(lines: Sequence[str]) -> list[str]:
    """Provenance as a block quote, one line each (two trailing spaces break the line in markdown)."""
    return [f"> {line}  " for line in lines]


def to_markdown(table: Table, provenance: bool = True) -> str:
    shown = [i for i, f in enumerate(table.fields) if not f.csv_only]
    lines = [f"### {table.title}", "", table.subtitle, ""]
    if provenance and table.provenance:
        lines += markdown_provenance(table.provenance) + [""]
    lines.append("| " + " | ".join(table.fields[i].header for i in shown) + " |")
    lines.append("|" + "|".join(":-:" if table.fields[i].kind == "mark" else "---" for i in shown) + "|")
    for cells in table.rows:
        texts = [format_cell(cells[i], table.fields[i].kind, table.fields[i].unit) for i in shown]
        lines.append("| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |")
    if table.notes:
        lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Numbers as numbers: a metric's mean, std and interval in their own columns (``miou``, ``miou:std``,
    ``miou:low``, ``miou:high``), sizes in one; provenance and notes as leading '#' lines."""
    out = io.StringIO()
    for line in table.provenance + [f"note: {n}" for n in table.notes]:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    header = []
    for f in table.fields:
        if f.kind == "estimate" and f.unit == "percent":
            header += [f.name, f"{f.name}:std", f"{f.name}:low", f"{f.name}:high"]
        elif f.kind == "delta":
            header += [f.name, f"{f.name}:low", f"{f.name}:high", f"{f.name}:significant"]
        else:
            header.append(f.name)
    writer.writerow(header)

    def number(value: float | None) -> str:
        return "" if value is None or not math.isfinite(value) else f"{value:.4f}".rstrip("0").rstrip(".")

    for cells in table.rows:
        row = []
        for f, value in zip(table.fields, cells):
            if f.kind == "estimate":
                e = value or Estimate(math.nan, None, 0)
                row += [number(e.mean), number(e.std), number(e.low), number(e.high)] if f.unit == "percent" \
                    else [number(e.mean)]
            elif f.kind == "delta":
                row += ["", "", "", ""] if value is None else \
                    [number(value.diff), number(value.low), number(value.high), str(value.significant).lower()]
            elif f.kind == "mark":
                row.append("" if value is None else "off" if value == SWITCHED_OFF else str(bool(value)).lower())
            elif f.kind == "paper":
                row.append(number(value) if isinstance(value, (int, float)) else "")
            else:
                row.append("" if value is None else str(value))
        writer.writerow(row)
    return out.getvalue()


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "†": r"$^\dagger$", "✓": r"\checkmark", "—": "--", "–": "--",
                 "≥": r"$\geq$", "§": r"\S{}", "‡": r"$^\ddagger$"}


def latex_text(text: str) -> str:
    escaped = "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)
    return "".join(LATEX_SYMBOLS.get(ch, ch) for ch in escaped)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs,amssymb}``); check marks are ``\\checkmark``."""
    shown = [i for i, f in enumerate(table.fields) if not f.csv_only]
    align = "".join("l" if table.fields[i].kind == "text" else "c" if table.fields[i].kind == "mark" else "r"
                    for i in shown)
    lines = [f"% {line}" for line in table.provenance]
    lines += ["% needs \\usepackage{booktabs} and \\usepackage{amssymb} (for \\checkmark)",
              "\\begin{table}[htbp]", "\\centering",
              f"\\caption{{{latex_text(table.title)}. {latex_text(table.subtitle)}.}}",
              f"\\label{{tab:{table.slug}}}", f"\\begin{{tabular}}{{{align}}}", "\\toprule",
              " & ".join(latex_text(table.fields[i].header) for i in shown) + " \\\\", "\\midrule"]
    for cells in table.rows:
        texts = [latex_text(format_delta(cells[i], star="")) + ("$^{*}$" if cells[i] and cells[i].significant else "")
                 if table.fields[i].kind == "delta" else
                 latex_text(format_cell(cells[i], table.fields[i].kind, table.fields[i].unit)) for i in shown]
        lines.append(" & ".join(texts) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if table.notes:
        lines.append("\\par\\footnotesize " + " \\\\\n".join(latex_text(n) for n in table.notes))
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


RENDERERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
