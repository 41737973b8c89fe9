"""rsseg's version, and the stamp every record it writes carries: the version and the git commit of the code."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("rsseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the rsseg checkout, with ``-dirty`` when it has uncommitted changes; None outside git."""
    where = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def version_stamp() -> dict[str, str | None]:
    """``{"rsseg_version", "git_commit"}``: what made a results.json, a table or an exported model."""
    return {"rsseg_version": __version__, "git_commit": git_commit()}
