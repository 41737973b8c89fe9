"""Tables of reduced runs say what the runs were: a tick for an ingredient that the runs had switched off (no
pretrained weights at scale=smoke) shows (✓) with a note, and the footnote describes only what the cells hold."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_tables import (
    ABLATION,
    SCENE_A,
    SCENE_AB,
    SCENE_B,
    read_csv,
    row_of,
    table_lines,
    tables,
    write_run,
)

SPEC = {**ABLATION, "mark_keys": {"Transfer learning": "model.pretrained"}}


def with_config(results: Path, **config) -> None:
    payload = json.loads(results.read_text())
    payload["config"].update(config)
    results.write_text(json.dumps(payload))


def smoke_ablation(root: Path, weights: str | None) -> Path:
    """The four rows at scale smoke, two seeds each; the transfer-learning row starts from ``weights``."""
    for name in ("xception", "mobilenetv2", "mobilenetv2_se", "mst_deeplab"):
        for seed, scenes in ((0, [SCENE_A, SCENE_B]), (1, [SCENE_AB, SCENE_B])):
            pretrained = weights if name == "mst_deeplab" else None
            with_config(write_run(root / name / f"seed={seed}", scenes, seed=seed, row=row_of(name), table=SPEC),
                        model={"pretrained": pretrained}, pretrained_weights=weights)
    return root


def test_a_row_trained_without_its_pretrained_weights_is_marked_so(tmp_path):
    sweep = smoke_ablation(tmp_path / "smoke", weights=None)
    assert tables(sweep, "--bootstrap", "0", "--no-figures") == 0
    markdown = (sweep / "tables" / "mst_ablation-synthetic-smoke.md").read_text()
    rows = table_lines(markdown)
    assert [r[1:5] for r in rows] == [["✓", "", "", ""], ["", "✓", "", ""], ["", "✓", "✓", ""],
                                      ["", "✓", "✓", "(✓)"]]
    assert ("- (✓): switched off at scale smoke, so row mst_deeplab trained without it: Transfer learning "
            "(model.pretrained is null in its runs); its ticks are then those of row mobilenetv2_se") in markdown
    csv_rows = read_csv(sweep / "tables" / "mst_ablation-synthetic-smoke.csv")
    assert [r["mark:Transfer learning"] for r in csv_rows] == ["false", "false", "false", "off"]
    latex = (sweep / "tables" / "mst_ablation-synthetic-smoke.tex").read_text()
    assert "(\\checkmark)" in latex


def test_with_weights_the_tick_holds_and_nothing_is_noted(tmp_path):
    sweep = smoke_ablation(tmp_path / "smoke", weights="/weights/mobilenet_v2_imagenet.pth")
    assert tables(sweep, "--bootstrap", "0", "--no-figures") == 0
    markdown = (sweep / "tables" / "mst_ablation-synthetic-smoke.md").read_text()
    assert table_lines(markdown)[3][1:5] == ["", "✓", "✓", "✓"] and "(✓)" not in markdown


def test_the_footnote_promises_only_what_the_cells_show(tmp_path):
    # Two seeds, two scenes each: mean ± std and an interval in every metric cell, no single-seed § mark.
    sweep = smoke_ablation(tmp_path / "smoke", weights=None)
    assert tables(sweep, "--bootstrap", "200", "--no-figures", "--format", "md") == 0
    notes = [line for line in (sweep / "tables" / "mst_ablation-synthetic-smoke.md").read_text().splitlines()
             if line.startswith("- cells:")]
    assert notes == ["- cells: mean ± sample standard deviation over the row's seeds (n), metrics in %; [low, high]: "
                     "95 % percentile interval of a two-level bootstrap: the row's seeds with replacement, then the "
                     "evaluation scenes with replacement, the same draws for every row (200 resamples, seed 0)"]
    # One seed and one scene per run (a smoke run's one validation scene): no spread, no interval, nothing promised.
    write_run(tmp_path / "one" / "run", [SCENE_A])
    assert tables(tmp_path / "one", "--bootstrap", "200", "--no-figures", "--format", "md") == 0
    markdown = (tmp_path / "one" / "tables" / "comparison-synthetic-smoke.md").read_text()
    assert "- cells: the value of each row's one run (n = 1 seed), metrics in %\n" in markdown
    assert "[low, high]" not in markdown and "§" not in markdown and "±" not in markdown
    assert "- no intervals: one evaluation scene (resampling scenes needs two or more)" in markdown
