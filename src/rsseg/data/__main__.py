"""``rsseg datasets [--json] [--config-dir DIR] [name ...]``: the named datasets, their classes, bands and the
folder layout each expects (``python -m rsseg.data`` is the same program).

The list is read from the ``data/`` folders of the config search path (rsseg's, ``--config-dir``,
``$RSSEG_CONFIG_PATH``); the layout is the header comment of each config, which is where every data config
describes the files it reads.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

from omegaconf import OmegaConf

from rsseg.config import compose_config, config_folders, config_groups
from rsseg.errors import ConfigError


def config_header(path: Path) -> str:
    """The comment block at the top of a YAML file, without the ``#`` marks."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(lines).strip()


def describe_dataset(name: str, config_dirs=()) -> dict:
    """What ``data=<name>`` reads: classes, bands, label format, root and the expected layout."""
    folders = config_folders(config_dirs)
    path = next((f / "data" / f"{name}.yaml" for f in folders if (f / "data" / f"{name}.yaml").is_file()), None)
    if path is None:
        options = config_groups(folders).get("data", [])
        raise ConfigError(f"data={name!r}: no such dataset config; expected one of {', '.join(options)}")
    cfg = compose_config(None, [f"+data={name}", "+paths=default"], config_dirs)
    data = OmegaConf.to_container(cfg.data, resolve=False)
    key = "data.root" if "root" in data else "data.scenes.root"
    try:  # ${oc.env:RSSEG_DATA,data}/vaihingen, ${paths.cache_dir}/synthetic: where it looks by default
        root = OmegaConf.select(cfg, key)
    except Exception:  # noqa: BLE001 - an interpolation that needs a running app: show it as written
        root = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    layout = config_header(path)
    return {
        "name": name,
        "summary": layout.splitlines()[0] if layout else "",
        "num_classes": data.get("num_classes"),
        "class_names": data.get("class_names"),
        "in_channels": data.get("in_channels"),
        "bands": data.get("bands"),
        "label_format": data.get("label_format"),
        "reduce_zero_label": bool(data.get("reduce_zero_label", False)),
        "root": root,
        "config": str(path),
        "layout": layout,
    }


def format_table(rows: list[dict]) -> str:
    lines = [f"{'data':<16} {'classes':>7} {'bands':>5}  what it is"]
    for row in rows:
        summary = textwrap.shorten(row["summary"], 86, placeholder=" ...")
        lines.append(f"{row['name']:<16} {row['num_classes']!s:>7} {row['in_channels']!s:>5}  {summary}")
    lines.append("rsseg datasets <name> shows a dataset's classes and the folder layout it expects.")
    return "\n".join(lines)


def format_details(row: dict) -> str:
    bands = "all" if not row["bands"] else ", ".join(map(str, row["bands"]))
    return "\n".join([
        f"data={row['name']}  ({row['config']})",
        f"classes ({row['num_classes']}): {', '.join(map(str, row['class_names'] or []))}",
        f"input bands: {row['in_channels']} (bands read: {bands}); labels: {row['label_format']}"
        f"{' with reduce_zero_label (0 ignored, v -> class v - 1)' if row['reduce_zero_label'] else ''}",
        f"data.root: {row['root']}",
        "",
        row["layout"],
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rsseg datasets", description="The named datasets: classes, bands and the layout each expects.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                        help="a folder of your own configs whose data/ options are listed too (repeatable)")
    parser.add_argument("names", nargs="*", help="dataset config names: show these in full")
    args = parser.parse_args(argv)
    names = args.names or config_groups(config_folders(args.config_dir)).get("data", [])
    rows = [describe_dataset(name, args.config_dir) for name in names]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.names:
        print("\n\n".join(format_details(row) for row in rows))
    else:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
