"""``rsseg models [--json] [--size 512] [--num-classes 6] [--config-dir DIR] [name ...]``: size and compute of
every named model (``python -m rsseg.models`` is the same program).

Models are composed from ``conf/model`` and the ``model/`` folders of the user's config folders (``--config-dir``,
``$RSSEG_CONFIG_PATH``) with ``num_classes`` 6, ``in_channels`` 3, ``pretrained`` null, and built on the meta
device, so nothing is downloaded or computed. Params, MiB (params x 4 / 2^20) and GFLOPs
(2 x multiply-accumulates / 1e9, FlopCounterMode) at ``--size`` x ``--size``; see :mod:`rsseg.models.profile`.
"""

from __future__ import annotations

import argparse
import json

import torch

from rsseg.config import config_groups, user_config_dirs
from rsseg.models.hub import NAMED_MODELS, build_model
from rsseg.models.profile import count_gflops, model_size
from rsseg.runtime.console import progress


def user_models(config_dirs=()) -> list[str]:
    """The model options of the user's config folders that rsseg does not name itself."""
    folders = [d for d in user_config_dirs(config_dirs) if d.is_dir()]
    names = config_groups(folders).get("model", []) if folders else []
    return [name for name in names if name not in NAMED_MODELS]


def profile_named_models(size: int = 512, num_classes: int = 6, names=NAMED_MODELS, config_dirs=()) -> list[dict]:
    """``[{"name", "params", "mib", "gflops"}]`` for the named models, built on the meta device."""
    rows = []
    for name in progress(names, "models", "model"):
        with torch.device("meta"):
            model = build_model(name, num_classes=num_classes, in_channels=3, pretrained=None,
                                config_dirs=config_dirs)
        params, mib = model_size(model)
        rows.append(
            {
                "name": name,
                "params": params,
                "mib": round(mib, 2),
                "gflops": round(count_gflops(model, size), 2),
            }
        )
    return rows


def format_table(rows: list[dict], size: int) -> str:
    lines = [f"{'model':<26} {'params':>13} {'MiB':>9} {f'GFLOPs@{size}':>12}"]
    lines += [f"{r['name']:<26} {r['params']:>13,} {r['mib']:>9.2f} {r['gflops']:>12.2f}" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rsseg models", description="Params, size in MiB (params x 4 / 2^20) and GFLOPs of the named models.")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--size", type=int, default=512, help="input height and width for GFLOPs")
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                        help="a folder of your own configs whose model/ options are listed too (repeatable)")
    parser.add_argument("models", nargs="*", help="model config names (default: rsseg's and your own)")
    args = parser.parse_args(argv)
    names = args.models or [*NAMED_MODELS, *user_models(args.config_dir)]
    rows = profile_named_models(args.size, args.num_classes, names, args.config_dir)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
