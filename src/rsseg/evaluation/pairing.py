"""Pairing predictions or images with their label rasters by name (``area1_classes.tif`` with
``area1_noBoundary.tif``)."""

from __future__ import annotations

import re
from pathlib import Path

import rsseg.config  # noqa: F401 - registers the resolvers (${rsseg.stats:...}) data configs use
from rsseg.errors import DataError

NAME_SUFFIXES = {
    "classes", "class", "pred", "preds", "prediction", "predictions", "label", "labels", "gt", "mask",
    "noboundary", "rgb", "irrg", "rgbir",
}


def match_key(path: Path) -> str:
    """A file's name for pairing: lower case, without known trailing parts (``_classes``, ``_label``,
    ``_noBoundary``, ``_RGB`` ...), so ``area1_classes.tif`` pairs with ``area1_noBoundary.tif``."""
    parts = path.stem.lower().split("_")
    while len(parts) > 1 and parts[-1] in NAME_SUFFIXES:
        parts.pop()
    return re.sub(r"[^a-z0-9]+", "_", "_".join(parts))


def pair_files(first: list[Path], second: list[Path], what: tuple[str, str] = ("pred", "label")) -> list[tuple[Path, Path]]:
    """Pair two lists of files by :func:`match_key`; one file each pairs whatever the names."""
    if len(first) == 1 and len(second) == 1:
        return [(first[0], second[0])]
    by_key: dict[str, Path] = {}
    for path in second:
        key = match_key(path)
        if key in by_key:
            raise DataError(f"{path} and {by_key[key]}: two {what[1]} files for the name {key!r}")
        by_key[key] = path
    pairs, unmatched, used = [], [], {}
    for path in first:
        match = by_key.get(match_key(path))
        if match is None:
            unmatched.append(path)
        elif match in used:
            raise DataError(f"{path} and {used[match]}: both pair with the {what[1]} file {match}")
        else:
            used[match] = path
            pairs.append((path, match))
    if unmatched:
        raise DataError(
            f"{unmatched[0]}: no {what[1]} file with a matching name ({match_key(unmatched[0])!r})"
            f"{f' and {len(unmatched) - 1} more {what[0]} files unmatched' if len(unmatched) > 1 else ''}"
        )
    return pairs
