"""How rsseg writes a file: complete or not at all, with the permissions any other file of the user gets."""

from __future__ import annotations

import os
import re
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
