"""Names a user can find: the folder of a sweep job, named by the overrides that made it.

Hydra names a plain sweep's job folders ``0``, ``1``, ... and its ``${hydra.job.override_dirname}`` turns a path
value into nested folders (``protocol.split_file=/data/split.json`` becomes ``protocol.split_file=/data/`` +
``split.json``). rsseg's hydra configs name every job folder with ``${rsseg.job_folder:...}`` instead: the job's
overrides as typed, ``key=value`` joined by commas and sorted (so a name is what ``override_dirname`` would give
where that is already a safe folder name), minus the keys that do not change what a run computes, made into one
safe folder name:

* a value holding a character a folder name should not (``/``, ``\\``, a space, a quote, ``*``, ``$`` ...) has them
  replaced by ``_`` and gets a short hash of the value as typed, so two values never share a folder:
  ``protocol.split_file=data_split.json-4c8d2b``;
* a value longer than :data:`MAX_VALUE` characters keeps its end (a path: the file name and the folders above it
  that fit) or its start (anything else) and gets the hash;
* a whole name longer than :data:`MAX_NAME` characters names each key by its last part (``num_scenes=3`` for
  ``data.scenes.num_scenes=3``), is cut if still too long, and gets a hash of the whole name.

The same command always gives the same names, which is what lets a re-launched sweep find its finished jobs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

JOB_FOLDER = "rsseg.job_folder"
MAX_VALUE = 40
# Under the 255 bytes most file systems allow in one name (every character kept is ASCII).
MAX_NAME = 200
UNSAFE = re.compile(r"[^A-Za-z0-9._,+=@%\[\]{}-]")
SEPARATORS = re.compile(r"[\\/]+")


def digest(text: str, length: int = 6) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def _clean(text: str) -> str:
    return re.sub("_+", "_", UNSAFE.sub("_", text)).strip("_")


def safe_value(value: str) -> str:
    """``value`` as one safe part of a folder name; unchanged when it already is one and short."""
    if not UNSAFE.search(value) and len(value) <= MAX_VALUE:
        return value
    room = MAX_VALUE - 7  # "-" and the hash
    parts = [_clean(part) for part in SEPARATORS.split(value)]
    parts = [part for part in parts if part]
    if len(parts) > 1:
        # A path: its last folders and file name that fit, whole.
        kept: list[str] = []
        while parts and len("_".join([parts[-1], *kept])) <= room:
            kept.insert(0, parts.pop())
        cleaned = "_".join(kept) or parts[-1][-room:]
    else:
        cleaned = (parts[0] if parts else "")[:room]
    return f"{cleaned or '_'}-{digest(value)}"


def split_override(line: str) -> tuple[str, str, str | None]:
    """``(prefix, key, value)`` of an override as typed: ``+data.root=/x`` -> ``("+", "data.root", "/x")``;
    the value is None for a deletion without one (``~key``)."""
    head, sep, value = line.partition("=")
    key = head.lstrip("~+")
    return head[: len(head) - len(key)], key, value if sep else None


def excluded(key: str, patterns: Iterable[str]) -> bool:
    """Whether an override's key (or group, without its ``@package``) is left out of the name: ``patterns`` are
    keys (``logger``, as Hydra's ``override_dirname.exclude_keys`` are) or shell patterns (``paths.*``)."""
    group = key.split("@", 1)[0]
    return any(fnmatchcase(group, str(pattern)) for pattern in patterns)


def job_folder(overrides: Iterable[str], exclude: Iterable[str] = (), empty: str | int = "") -> str:
    """The folder name of a sweep job run with ``overrides`` (``hydra.overrides.task``); ``empty`` when every
    override is excluded."""
    exclude = [str(p) for p in exclude or ()]
    items = []
    for line in sorted(str(o) for o in overrides):
        prefix, key, value = split_override(line)
        if not excluded(key, exclude):
            items.append((prefix, UNSAFE.sub("_", key), None if value is None else safe_value(value)))

    def joined(short_keys: bool) -> str:
        return ",".join(f"{prefix}{key.rsplit('.', 1)[-1] if short_keys else key}{'' if value is None else '=' + value}"
                        for prefix, key, value in items)

    name = joined(short_keys=False)
    if len(name) <= MAX_NAME:
        return name or str(empty)
    # Too long: each key by its last part (data.scenes.num_scenes -> num_scenes), then cut; the hash of the whole
    # name keeps names apart.
    tag = f"-{digest(name, 8)}"
    short = joined(short_keys=True)
    return (short if len(short) + len(tag) <= MAX_NAME else short[:MAX_NAME - len(tag)].rstrip(",")) + tag
