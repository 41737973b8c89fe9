"""The bad-input corpus's cases and what each must show (see conftest.py for the inputs and the runner)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RSSEG = Path(sys.executable).with_name("rsseg")


@dataclass(frozen=True)
class Case:
    """A command line (``{world}``: the inputs folder, ``{read_only}``: a folder nobody can write into) and what
    its one error line (with the lines it lists) must contain."""

    id: str
    argv: tuple[str, ...]
    expect: str
    forbid: str = ""  # text that must not reach the user (a library's misleading advice)

    def command(self, world: Path) -> list[str]:
        head, *rest = self.argv
        read_only = (world / "read_only_path").read_text()
        args = [a.replace("{world}", str(world)).replace("{read_only}", read_only) for a in rest]
        if head == "rsseg":
            return [str(RSSEG), *args] if RSSEG.exists() else [sys.executable, "-m", "rsseg.cli", *args]
        return [sys.executable, str(REPO / head), *args]  # python train.py / predict.py / eval.py


def cases(*items: Case):
    return pytest.mark.parametrize("case", items, ids=[c.id for c in items])


class Payload:
    """What a tampered checkpoint would run if it were unpickled: creating a file beside it."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def read_only_folder(base: Path) -> Path:
    """A folder nobody can write into: permission bits for a normal user, /sys for root (who ignores them)."""
    folder = base / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        probe = folder / ".probe"
        probe.touch()
        probe.unlink()
    except OSError:
        return folder
    return Path("/sys/kernel/rsseg_outputs")


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def check_refusal(case: Case, outcomes: dict, world: Path) -> None:
    """Exit status 2, one ``error:`` line containing ``case.expect``, no traceback, no file written."""
    done, cwd = outcomes[case]
    report = f"\n$ {' '.join(case.argv)}\nstdout: {done.stdout[-1500:]}\nstderr: {done.stderr[-3000:]}"
    assert done.returncode == 2, report
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, report
    read_only = (world / "read_only_path").read_text()
    expect = case.expect.replace("{world}", str(world)).replace("{read_only}", read_only)
    assert expect in done.stderr[done.stderr.index(errors[0]):], report
    assert "Traceback" not in done.stderr + done.stdout, report
    if case.forbid:
        assert case.forbid not in done.stderr + done.stdout, report
    assert snapshot(cwd) == {}, f"files left behind: {snapshot(cwd)}{report}"
