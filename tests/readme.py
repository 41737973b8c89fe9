"""Running what the README documents, as a user types it: its files, its commands, the ``rsseg`` program."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    """The README text from the heading ``title`` to the next heading of the same or a higher level (lines in
    code blocks, such as ``# my_models.py``, are not headings)."""
    lines = (REPO / "README.md").read_text().splitlines(keepends=True)
    in_code, start, level, out = False, None, 0, []
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"(#+) (.*)\n?$", line)
        if start is None:
            if heading and heading.group(2) == title:
                start, level = True, len(heading.group(1))
            continue
        if heading and len(heading.group(1)) <= level:
            break
        out.append(line)
    assert start, f"README has no section {title!r}"
    return "".join(out)


def code_blocks(text: str, language: str | None = None) -> list[str]:
    return [code for lang, code in FENCE.findall(text) if language is None or lang == language]


def documented_files(text: str) -> dict[str, str]:
    """The code blocks that start with a ``# <path>`` line: the files a section asks the user to write."""
    files = {}
    for code in code_blocks(text):
        first, _, rest = code.partition("\n")
        if re.fullmatch(r"# [\w./-]+\.(py|yaml)", first):
            files[first[2:]] = code
    return files


def documented_commands(text: str, program: str = "rsseg") -> list[list[str]]:
    """The ``rsseg ...`` lines of the section's shell blocks, split as a shell would (comments dropped)."""
    return [shlex.split(line, comments=True) for code in code_blocks(text, "sh")
            for line in code.splitlines() if line.startswith(f"{program} ")]


def rsseg_program() -> list[str]:
    """How a user runs rsseg: the console script beside the interpreter; without one, ``python -P -m rsseg.cli``
    (``-P``: the current folder is not put on the import path, as with the script)."""
    script = Path(sys.executable).with_name("rsseg")
    return [str(script)] if script.is_file() else [sys.executable, "-P", "-m", "rsseg.cli"]


def run_rsseg(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None,
              **kwargs) -> subprocess.CompletedProcess:
    assert args[0] == "rsseg", args
    return subprocess.run([*rsseg_program(), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kwargs)
