"""How rsseg writes a file or a folder: complete or not at all, with the permissions any other file of the user
gets; and the order in which it lists files."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def current_umask() -> int:
    """The process's umask; read from /proc where it exists, since setting it to read it races with threads."""
    try:
        match = re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(), re.MULTILINE)
        if match:
            return int(match.group(1), 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file (0666 less the umask): what GDAL gives a raster, too."""
    return 0o666 & ~current_umask()


def default_folder_mode() -> int:
    """The mode ``mkdir`` gives a new folder (0777 less the umask); ``mkdtemp`` gives 0700."""
    return 0o777 & ~current_umask()


@contextmanager
def replaced_when_complete(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; it replaces ``path`` when the block completes and is
    removed when the block raises, so a reader never sees a half-written file.

    ``mkstemp`` creates its file readable by the owner only (0600); the temporary gets the default mode
    instead, so results, statistics and split files are as readable as the rasters beside them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, default_file_mode())
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def same_file_as(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Make ``path`` a second name of the complete file ``source``, atomically: a hard link where the file system
    allows one (no second copy on disk), else a copy, made under a temporary name beside ``path`` and renamed over
    it, so a reader of ``path`` sees the previous file or the new one, never part of one."""
    with replaced_when_complete(path) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (another device, some network and FAT file systems)
            shutil.copyfile(source, tmp)
    return Path(path)


@contextmanager
def folder_replaced_when_complete(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder`` to fill; it replaces ``folder`` (an earlier one is removed) when
    the block completes and is removed when the block raises, so a reader never sees a half-filled folder.

    Its name carries this process's id: processes filling the same folder at once do not meet, and a folder left
    by a process that was killed is removed by the next one.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for leftover in folder.parent.glob(f".{folder.name}.*.partial"):
        if not _process_alive(leftover.name.split(".")[-2]):
            shutil.rmtree(leftover, ignore_errors=True)
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()  # the mode any new folder gets (mkdtemp would give 0700)
    try:
        yield staging
        if folder.exists():
            old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def natural_key(name: str | os.PathLike) -> list:
    """Sort key under which ``job/10`` follows ``job/9`` and ``Tile_10`` follows ``Tile_9``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(name))]
