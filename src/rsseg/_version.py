"""rsseg's version, and the stamp every record it writes carries: the version and the git commit of the code.

The commit is that of the git checkout rsseg runs from (a clone, an editable install); for an installed wheel,
the commit it was built from, which the build writes into the wheel (``rsseg/_commit.txt``, see setup.py); for
``pip install git+<url>``, the commit pip recorded (``direct_url.json``). An installed rsseg inside a git
repository of the user's never reports the user's commit: only a checkout whose git tracks rsseg's own files
counts.
"""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

COMMIT_FILE = "_commit.txt"

try:
    __version__ = version("rsseg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def _git(where: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=5, check=True).stdout


def git_commit(source: str | Path | None = None) -> str | None:
    """The commit of the git checkout that tracks ``source`` (default: this file), with ``-dirty`` when it has
    uncommitted changes; None when no git tracks it."""
    source = Path(source) if source else Path(__file__).resolve()
    try:
        _git(source.parent, "ls-files", "--error-unmatch", "--", source.name)
        commit = _git(source.parent, "rev-parse", "HEAD").strip()
        dirty = _git(source.parent, "status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def built_commit() -> str | None:
    """The commit an installed rsseg was built from: the build's record, else pip's record of a git install."""
    recorded = Path(__file__).with_name(COMMIT_FILE)
    if recorded.is_file():
        return recorded.read_text().strip() or None
    try:
        direct_url = distribution("rsseg").read_text("direct_url.json")
        return json.loads(direct_url or "{}").get("vcs_info", {}).get("commit_id")
    except (PackageNotFoundError, ValueError, AttributeError):
        return None


def commit() -> str | None:
    """The commit of the code that runs: its git checkout's, else the one it was built from; None if unknown."""
    return git_commit() or built_commit()


def version_stamp() -> dict[str, str | None]:
    """``{"rsseg_version", "git_commit"}``: what made a results.json, a table or an exported model."""
    return {"rsseg_version": __version__, "git_commit": commit()}
