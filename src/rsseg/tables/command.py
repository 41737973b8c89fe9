"""Paper tables from training runs: ``rsseg tables PATH...`` (also ``python -m rsseg.tables``).

    rsseg tables multirun/mst_ablation/smoke                  # Table 8 of MST-DeepLabv3+: the four-row ablation
    rsseg tables multirun/2025-06-01/12-00-00 --format md,csv  # any sweep: one row per configuration
    rsseg tables runs/ --bootstrap 0 --no-figures               # no intervals, no figures

Reads the ``results.json`` every training job writes (folders are searched recursively; the ``error.json`` of a
failed job is listed under its table), groups the runs by (experiment, dataset, scale) and writes each group's
tables as the experiment's ``table:`` spec lays them out, rows in the paper's order:

* ``comparison``: one row per model, the spec's columns (``per_class.<m>`` expands to one column per class,
  ``<m>@positive`` is per-class metric ``m`` of the dataset's positive class);
* ``ablation``: the same with one check-mark column per design choice (``row.marks``);
* ``params``: parameter count, size in MiB (params x 4 / 2^20) and GFLOPs per model (a ``fit: false`` run);
* one per-class table for each metric of ``table.per_class``: rows x classes and the mean over the classes in it.

Runs outside an experiment (``python train.py -m model=a,b seed=0,1``) get a generic comparison: one row per
distinct configuration, seeds pooled. Rows of a spec without runs, and failed jobs, are shown, never dropped.

Each cell is the mean ± sample standard deviation over the row's seeds (metrics in %); the paper's numbers for
the dataset of the runs sit in a "(paper)" column beside ours (none, and a note saying so, for a dataset the paper
did not use). Cells of metrics that come from the confusion matrix also carry a 95 % interval of a two-level
bootstrap over the row's seeds and the evaluation scenes, and each row a paired difference to the row above (see
:class:`rsseg.tables.bootstrap.SeedSceneBootstrap`; ``--interval bca`` for BCa intervals), which neither the papers
nor mmsegmentation, GeoSeg or torchgeo report. Rows whose checkpoint was chosen on the test split
(``protocol.select_on=test``) are marked ‡.

Every file starts with its provenance: this command as far as it decides the numbers (not ``--out``, ``--format``
or the figure options), the training command(s), the git commits of the runs, and the scale (a reduced budget says
so), so that the same runs give the same table files byte for byte.
Figures (:mod:`rsseg.tables.figures`) go to ``<out>/figures``, each with a caption file and the same provenance.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rsseg.errors import ConfigError, RssegError
from rsseg.runtime.console import progress
from rsseg.runtime.files import replaced_when_complete
from rsseg.tables.bootstrap import SeedSceneBootstrap
from rsseg.tables.build import GroupTables, TableOptions, build_tables
from rsseg.tables.groups import group_runs
from rsseg.tables.records import RunRecord
from rsseg.tables.render import FORMATS, RENDERERS, markdown_provenance, to_markdown

SPLITS = ("val", "test")


def markdown_for_results(path: str | Path) -> str:
    """The markdown tables of one run's ``results.json`` without provenance or intervals: what a training run
    prints (``python train.py experiment=mst_params`` prints the sizes table this way)."""
    group = group_runs([RunRecord.read(Path(path))], [])[0]
    return "\n".join(to_markdown(t, provenance=False) for t in GroupTables(group, TableOptions(bootstrap=0), []).tables())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, as every rsseg command reports bad input
        raise ConfigError(f"rsseg tables: {message}; see rsseg tables --help")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(prog="rsseg tables", description="Paper tables (markdown, CSV, LaTeX) and figures from the "
                                                      "results.json of training runs and sweeps.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="run folders, sweep folders or results.json files (folders are searched recursively)")
    parser.add_argument("--out", help="output folder (default: <first PATH>/tables)")
    parser.add_argument("--format", default="md,csv,tex", help="comma-separated: md, csv, tex (default: all)")
    parser.add_argument("--split", choices=SPLITS, help="the split to report (default: the table spec's, "
                                                        "falling back to val for runs without it)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap resamples over seeds and evaluation scenes for 95 %% intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    parser.add_argument("--interval", choices=SeedSceneBootstrap.METHODS, default="percentile",
                        help="bootstrap interval: percentile (default) or bca (bias-corrected and accelerated)")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")
    parser.add_argument("--figure-tiles", type=int, default=4, metavar="N",
                        help="validation tiles in the prediction grid (default 4; 0: no grid)")
    args = parser.parse_args(list(argv))
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ConfigError(f"--format {args.format}: unknown format {unknown[0] if unknown else '(none)'!r}; "
                          f"expected a comma-separated list of {', '.join(FORMATS)}")
    if args.bootstrap < 0 or args.figure_tiles < 0:
        raise ConfigError("--bootstrap and --figure-tiles: negative count; expected 0 or more")
    args.formats = formats
    return args


def numbers_arguments(argv: Sequence[str]) -> list[str]:
    """The command line as far as it decides the numbers (the paths, --split, --bootstrap, --seed, --interval):
    where the files went, which formats and whether figures were drawn do not change a table's content."""
    presentation = {"--out": True, "--format": True, "--figure-tiles": True, "--no-figures": False}
    kept, skip = [], False
    for item in argv:
        name = item.split("=", 1)[0]
        if skip:
            skip = False
        elif name in presentation:
            skip = presentation[name] and "=" not in item
        else:
            kept.append(item)
    return kept


def default_out(first: str) -> Path:
    path = Path(first).expanduser()
    return (path.parent if path.is_file() else path) / "tables"


def main(argv: list[str] | None = None) -> int:
    """``rsseg tables PATH... [--out DIR] [--format md,csv,tex] [--split val|test] [--bootstrap N]
    [--interval percentile|bca] ...``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(".")
    try:
        args = parse_args(argv)
        out = Path(args.out).expanduser() if args.out else default_out(args.paths[0])
        options = TableOptions(args.split, args.bootstrap, args.seed, args.interval)
        built = build_tables(args.paths, options, numbers_arguments(argv))
        rendered = [(builder, builder.tables()) for builder in progress(built, "building tables", "group")]
        files = {out / f"{table.slug}{FORMATS[fmt]}": RENDERERS[fmt](table)
                 for _, tables in rendered for table in tables for fmt in args.formats}
        for path, text in files.items():
            with replaced_when_complete(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
    except RssegError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.filename or out}: cannot write ({error.strerror}); expected a writable --out folder",
              file=sys.stderr)
        return 2
    for _, tables in rendered:
        print("\n".join(markdown_provenance(tables[0].provenance)) + "\n")
        for table in tables:
            print(to_markdown(table, provenance=False))
    figures: list[Path] = []
    if not args.no_figures:
        from rsseg.tables.figures import write_group_figures

        for builder, _ in rendered:
            written, notes = write_group_figures(builder, out / "figures", args.figure_tiles)
            figures += written
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
    print(f"wrote {len(files)} table files and {len(figures)} figure files under {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
