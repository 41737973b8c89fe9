"""rsseg tables: paper tables from hand-written results.json fixtures (numbers, order, marks, intervals, errors)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from rsseg.metrics import metrics_from_confusion
from rsseg.runtime.results import write_results
from rsseg.tables.command import main, markdown_for_results
from tests.conftest import REPO, SMALL_DATA, compose_config

CLASSES = ["background", "building"]
COMMIT = "5b2c15b0000000000000000000000000000000aa"
SWEEP_COMMAND = "python train.py -m experiment=mst_ablation scale=smoke seed=0,1,2"

# Two-class scenes (rows true, columns predicted) whose IoUs are easy to count by hand:
#   A: IoU(background) = 3 / (3 + 1 + 0) = 0.75,  IoU(building) = 4 / (4 + 0 + 1) = 0.8   -> mIoU 77.50 %
#   B: IoU(background) = 1 / (1 + 1 + 2) = 0.25,  IoU(building) = 4 / (4 + 2 + 1) = 4/7   -> mIoU 41.07 %
#   A + B = [[4, 2], [2, 8]]: 4 / 8 = 0.5 and 8 / 12 = 2/3                                  -> mIoU 58.33 %
SCENE_A = [[3, 1], [0, 4]]
SCENE_B = [[1, 1], [2, 4]]
SCENE_AB = [[4, 2], [2, 8]]

ABLATION = {
    "name": "mst_ablation", "title": "Ablation of MST-DeepLabv3+", "source": "Wang et al. 2024, Table 8",
    "layout": "ablation", "split": "test",
    "rows": ["xception", "mobilenetv2", "mobilenetv2_se", "mst_deeplab"],
    "marks": ["Xception", "MobileNetV2", "SENet", "Transfer learning"],
    "columns": ["miou", "mib"], "per_class": ["iou"],
    # The tests' runs are of the synthetic data: the paper's numbers for it stand in for a dataset the paper used.
    "paper": {"synthetic": {"note": "ISPRS Vaihingen (Table 8)",
                            "rows": {"xception": {"miou": 68.62, "mib": 208.7}, "mst_deeplab": {"miou": 82.47, "mib": 22.96}}}},
}
ABLATION_ROWS = {
    "xception": ("DeepLabv3+", [True, False, False, False], 208.7),
    "mobilenetv2": ("DeepLabv3+ (MobileNetV2)", [False, True, False, False], 22.18),
    "mobilenetv2_se": ("DeepLabv3+ (MobileNetV2 + SE)", [False, True, True, False], 22.96),
    "mst_deeplab": ("MST-DeepLabv3+", [False, True, True, True], 22.96),
}


def row_of(name: str) -> dict:
    label, marks, _ = ABLATION_ROWS[name]
    return {"name": name, "label": label, "marks": dict(zip(ABLATION["marks"], marks))}


def write_run(folder: Path, scenes: list, *, seed: int = 0, row: dict | None = None, table: dict | None = None,
              model: str = "deeplabv3plus", overrides: list[str] | None = None, scale: str | None = "smoke",
              mib: float = 22.96, classes: list[str] = CLASSES, exclude: list[str] | None = None,
              checkpoint: str | None = None, data: dict | None = None, split: str = "val") -> Path:
    """A results.json as training writes it: metrics of the summed scene confusions, one entry per scene."""
    total = np.sum(np.asarray(scenes), axis=0)
    metrics = metrics_from_confusion(total, classes, exclude or []) | {"confusion": total.tolist()}
    return write_results(folder / "results.json", {
        "task": "train", "status": "done", "rsseg_version": "0.1.0", "git_commit": COMMIT,
        "command": SWEEP_COMMAND if table else "python train.py -m model=unet,segnet seed=0,1",
        "overrides": overrides or [f"seed={seed}"],
        "experiment": table["name"] if table else None, "row": row, "scale": scale, "model": model,
        "data": "synthetic", "seed": seed, "checkpoint": checkpoint, "params": int(mib * 2**20 / 4), "mib": mib,
        "gflops": 1.5, "metrics": {split: metrics},
        "scenes": {split: [{"name": f"scene_{i}", "confusion": c} for i, c in enumerate(scenes)]},
        "table": table,
        "config": {"seed": seed, "data": data or {"class_names": classes, "exclude_from_mean": exclude or []}},
    })


def ablation_sweep(root: Path) -> Path:
    """multirun/mst_ablation/smoke as the experiment's sweep lays it out; mobilenetv2_se's only job failed."""
    sweep = root / "multirun" / "mst_ablation" / "smoke"
    seeds = {0: [SCENE_A], 1: [SCENE_B], 2: [SCENE_AB]}  # mIoU 77.50, 41.07, 58.33 on the one val scene
    for name in ("xception", "mobilenetv2", "mst_deeplab"):
        for seed, scenes in seeds.items():
            write_run(sweep / name / f"seed={seed}", scenes, seed=seed, row=row_of(name), table=ABLATION,
                      mib=ABLATION_ROWS[name][2])
    failed = sweep / "mobilenetv2_se" / "seed=0"
    failed.mkdir(parents=True)
    (failed / "error.json").write_text(json.dumps({
        "status": "failed", "error": "CUDA out of memory. Tried to allocate 2.00 GiB\nmore", "traceback": "...",
        "config": {"seed": 0, "table": ABLATION, "row": row_of("mobilenetv2_se"), "scale": {"name": "smoke"}}}))
    return sweep


def tables(*args: str) -> int:
    return main([str(a) for a in args])


def table_lines(markdown: str) -> list[list[str]]:
    """The cells of each body row of the first markdown table."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in rows[1:]]


def read_csv(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


# --------------------------------------------------------------------------------------------------------------


def test_ablation_table_in_paper_order_with_marks_mean_std_and_provenance(tmp_path, capsys):
    sweep = ablation_sweep(tmp_path)
    assert tables(sweep, "--bootstrap", "0", "--no-figures") == 0
    out = sweep / "tables"
    markdown = (out / "mst_ablation-synthetic-smoke.md").read_text()
    assert capsys.readouterr().out.count("| DeepLabv3+ | ✓ |") == 1  # printed as well as written

    header = next(line for line in markdown.splitlines() if line.startswith("| Model"))
    assert header == ("| Model | Xception | MobileNetV2 | SENet | Transfer learning | mIoU (%) | mIoU (paper) | MiB | "
                      "MiB (paper) | n |")
    rows = table_lines(markdown)
    # Spec order, although the folders sort mobilenetv2, mobilenetv2_se, mst_deeplab, xception.
    assert [r[0] for r in rows] == ["DeepLabv3+", "DeepLabv3+ (MobileNetV2)", "DeepLabv3+ (MobileNetV2 + SE) (missing)",
                                    "MST-DeepLabv3+"]
    assert [r[1:5] for r in rows] == [["✓", "", "", ""], ["", "✓", "", ""], ["", "✓", "✓", ""], ["", "✓", "✓", "✓"]]
    # mean of 77.50, 41.07, 58.33 = 58.97; sample std = sqrt(((18.53)^2 + (17.90)^2 + (0.63)^2) / 2) = 18.22
    assert rows[0][5:] == ["58.97 ± 18.22", "68.62", "208.70", "208.70", "3"]
    assert rows[2][5:] == ["—", "", "—", "", "0"]
    assert rows[3][5:] == ["58.97 ± 18.22", "82.47", "22.96", "22.96", "3"]
    assert "- failed row: mobilenetv2_se seed 0: CUDA out of memory. Tried to allocate 2.00 GiB (" in markdown
    assert "- (paper): the paper's reported numbers, ISPRS Vaihingen (Table 8)" in markdown

    for text in (markdown, (out / "mst_ablation-synthetic-smoke.tex").read_text(),
                 (out / "mst_ablation-synthetic-smoke.csv").read_text()):
        assert f"written by: rsseg tables {sweep} --bootstrap 0\n" in text.replace("  \n", "\n")
        assert f"trained by: {SWEEP_COMMAND}" in text
        assert f"runs at commit: {COMMIT}" in text
        assert "scale: smoke -- REDUCED BUDGET" in text
    latex = (out / "mst_ablation-synthetic-smoke.tex").read_text()
    body = "\n".join(line for line in latex.splitlines() if line.endswith("\\\\"))
    assert body.count("\\checkmark") == 1 + 1 + 2 + 3
    assert "DeepLabv3+ & \\checkmark &  &  &  & 58.97 $\\pm$ 18.22 & 68.62 & 208.70 & 208.70 & 3 \\\\" in latex
    assert latex.splitlines()[0].startswith("% written by: rsseg tables")

    per_class = table_lines((out / "mst_ablation-synthetic-smoke-per_class_iou.md").read_text())
    # background IoU 75, 25, 50 -> 50 ± 25; building 80, 57.14, 66.67 -> 67.94 ± 11.48
    assert per_class[0] == ["DeepLabv3+", "50.00 ± 25.00", "67.94 ± 11.48", "58.97 ± 18.22", "68.62", "3"]


def test_csv_parses_back_to_the_numbers(tmp_path):
    sweep = ablation_sweep(tmp_path)
    run = subprocess.run([sys.executable, "-m", "rsseg.tables", str(sweep), "--format", "md,csv", "--bootstrap", "0",
                          "--no-figures", "--out", str(tmp_path / "t")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [
        "mst_ablation-synthetic-smoke-per_class_iou.csv", "mst_ablation-synthetic-smoke-per_class_iou.md",
        "mst_ablation-synthetic-smoke.csv", "mst_ablation-synthetic-smoke.md"]
    assert "| DeepLabv3+ | ✓ |  |  |  | 58.97 ± 18.22 | 68.62 | 208.70 | 208.70 | 3 |" in run.stdout
    rows = read_csv(tmp_path / "t" / "mst_ablation-synthetic-smoke.csv")
    assert [r["row"] for r in rows] == ABLATION["rows"]
    first = rows[0]
    expected = np.array([77.5, 100 * (0.25 + 4 / 7) / 2, 100 * (0.5 + 2 / 3) / 2])
    assert float(first["miou"]) == pytest.approx(expected.mean(), abs=1e-4)
    assert float(first["miou:std"]) == pytest.approx(expected.std(ddof=1), abs=1e-4)
    assert (first["mark:Xception"], first["mark:SENet"], first["seeds"], first["split"]) == ("true", "false", "3", "val")
    assert (float(first["mib"]), float(first["miou:paper"]), first["miou:low"]) == (208.7, 68.62, "")
    assert "mib:std" not in first  # a size has no spread over seeds
    assert rows[2]["miou"] == "" and rows[2]["seeds"] == "0"


def test_bootstrap_interval_equals_the_hand_computed_case(tmp_path, capsys):
    # One model, scenes A and B. A resample draws AA, AB, BA or BB (1/4, 1/2, 1/4): the metric of AA is A's
    # (scale-free), of BB B's, of AB (A + B)'s. With 1000 resamples about 250 are BB and 250 AA, so the 2.5th
    # percentile is B's mIoU 41.07 and the 97.5th A's 77.50, exactly; the point value is (A + B)'s 58.33.
    write_run(tmp_path / "run", [SCENE_A, SCENE_B])
    assert tables(tmp_path / "run", "--no-figures", "--format", "md,csv", "--bootstrap", "1000", "--seed", "3") == 0
    rows = table_lines((tmp_path / "run" / "tables" / "comparison-synthetic-smoke.md").read_text())
    assert rows[0][:2] == ["deeplabv3plus", "58.33 [41.07, 77.50]§"]  # one seed: scenes only, marked
    data = read_csv(tmp_path / "run" / "tables" / "comparison-synthetic-smoke.csv")[0]
    assert float(data["miou:low"]) == pytest.approx(100 * (0.25 + 4 / 7) / 2, abs=1e-4)
    assert float(data["miou:high"]) == pytest.approx(77.5, abs=1e-4)
    assert ("95 % percentile interval of a two-level bootstrap: the row's seeds with replacement, then the "
            "evaluation scenes with replacement, the same draws for every row (1000 resamples, seed 3); "
            "§ = one seed, the interval resamples the scenes only") in capsys.readouterr().out


def numpy_miou(confusion: np.ndarray) -> float:
    tp = np.diag(confusion)
    return float(np.mean(tp / (confusion.sum(0) + confusion.sum(1) - tp)))


def test_bootstrap_over_seeds_and_paired_difference_agree_with_numpy(tmp_path):
    rng = np.random.default_rng(7)
    base = [rng.integers(5, 40, (2, 2)) for _ in range(3)]
    better = [c + np.array([[30, 0], [0, 30]]) for c in base]  # more true positives in every scene: clearly better
    similar = [better[0] + 4 * np.eye(2, dtype=int), better[1] - 4 * np.eye(2, dtype=int), better[2]]  # +/-
    table = {**ABLATION, "rows": ["a", "b", "c"], "marks": ["Better"], "columns": ["miou"], "per_class": ["iou"],
             "paper": {}}
    scenes = {"a": base, "b": better, "c": similar}
    for name, confusions in scenes.items():
        for seed in (0, 1):
            shifted = [c + seed * np.eye(2, dtype=int) for c in confusions]
            write_run(tmp_path / name / f"seed={seed}", [c.tolist() for c in shifted], seed=seed, table=table,
                      row={"name": name, "label": name.upper(), "marks": {"Better": name != "a"}})
    assert tables(tmp_path, "--no-figures", "--format", "csv,md", "--bootstrap", "400", "--seed", "11") == 0
    rows = {r["row"]: r for r in read_csv(tmp_path / "tables" / "mst_ablation-synthetic-smoke.csv")}
    shown = table_lines((tmp_path / "tables" / "mst_ablation-synthetic-smoke.md").read_text())

    # The same computation, written independently: draw seeds (stream seed + 1), draw scene indices (stream
    # seed), sum each drawn seed's drawn scenes, mIoU, mean over the drawn seeds, percentiles.
    draws = np.random.default_rng(11).integers(0, 3, size=(400, 3))
    seed_draws = np.random.default_rng(12).integers(0, 2, size=(400, 2))
    replicates = {}
    for name, confusions in scenes.items():
        per_seed = np.array([[numpy_miou(sum(confusions[i] + seed * np.eye(2) for i in draw)) for draw in draws]
                             for seed in (0, 1)])
        replicates[name] = 100 * np.array([per_seed[seeds, b].mean() for b, seeds in enumerate(seed_draws)])
        low, high = np.percentile(replicates[name], [2.5, 97.5])
        assert float(rows[name]["miou:low"]) == pytest.approx(low, abs=1e-4)
        assert float(rows[name]["miou:high"]) == pytest.approx(high, abs=1e-4)
    for name, above in (("b", "a"), ("c", "b")):
        low, high = np.percentile(replicates[name] - replicates[above], [2.5, 97.5])
        assert float(rows[name]["delta:miou:low"]) == pytest.approx(low, abs=1e-4)
        assert float(rows[name]["delta:miou:high"]) == pytest.approx(high, abs=1e-4)
        assert float(rows[name]["delta:miou"]) == pytest.approx(float(rows[name]["miou"]) - float(rows[above]["miou"]),
                                                                abs=2e-4)
        star = " *" if name == "b" else ""
        assert shown[ord(name) - ord("a")][-1] == f"{float(rows[name]['delta:miou']):+.2f} [{low:+.2f}, {high:+.2f}]{star}"
    assert rows["a"]["delta:miou"] == "" and shown[0][-1] == ""
    # Per-class intervals come from the same resamples: the building IoU of each row, computed independently.
    per_class = {r["row"]: r for r in read_csv(tmp_path / "tables" / "mst_ablation-synthetic-smoke-per_class_iou.csv")}
    for name, confusions in scenes.items():
        def building_iou(total):
            return total[1, 1] / (total[1, :].sum() + total[:, 1].sum() - total[1, 1])

        per_seed = np.array([[building_iou(sum(confusions[i] + seed * np.eye(2) for i in draw)) for draw in draws]
                             for seed in (0, 1)])
        building = 100 * np.array([per_seed[seeds, b].mean() for b, seeds in enumerate(seed_draws)])
        low, high = np.percentile(building, [2.5, 97.5])
        assert float(per_class[name]["per_class.iou.building:low"]) == pytest.approx(low, abs=1e-4)
        assert float(per_class[name]["per_class.iou.building:high"]) == pytest.approx(high, abs=1e-4)
    assert rows["b"]["delta:miou:significant"] == "true" and float(rows["b"]["delta:miou:low"]) > 0
    # One scene better, one worse: the paired interval straddles 0.
    assert rows["c"]["delta:miou:significant"] == "false"
    assert float(rows["c"]["delta:miou:low"]) < 0 < float(rows["c"]["delta:miou:high"])


def test_a_difference_with_a_one_seed_row_is_never_starred(tmp_path, capsys):
    # Row b is far better in every scene, so the interval excludes 0, but b has one seed: the interval resamples
    # a's seeds and the scenes, not b's seeds, so it cannot carry the star that claims significance.
    base = [np.array([[20, 9], [7, 15]]), np.array([[12, 6], [8, 25]]), np.array([[30, 4], [5, 11]])]
    table = {**ABLATION, "rows": ["a", "b"], "marks": ["Better"], "columns": ["miou"], "per_class": ["iou"],
             "paper": {}}
    for seed in (0, 1):
        write_run(tmp_path / "a" / f"seed={seed}", [(c + seed * np.eye(2, dtype=int)).tolist() for c in base],
                  seed=seed, table=table, row={"name": "a", "label": "A", "marks": {"Better": False}})
    write_run(tmp_path / "b" / "seed=0", [(c + 40 * np.eye(2, dtype=int)).tolist() for c in base], seed=0,
              table=table, row={"name": "b", "label": "B", "marks": {"Better": True}})
    assert tables(tmp_path, "--no-figures", "--format", "csv,md", "--bootstrap", "400", "--seed", "5") == 0
    rows = {r["row"]: r for r in read_csv(tmp_path / "tables" / "mst_ablation-synthetic-smoke.csv")}
    assert float(rows["b"]["delta:miou:low"]) > 10 and rows["b"]["delta:miou:significant"] == "false"
    shown = table_lines((tmp_path / "tables" / "mst_ablation-synthetic-smoke.md").read_text())
    low, high = float(rows["b"]["delta:miou:low"]), float(rows["b"]["delta:miou:high"])
    assert shown[1][-1] == f"{float(rows['b']['delta:miou']):+.2f} [{low:+.2f}, {high:+.2f}]§"
    assert "a difference with a row of one seed (§) gets no *" in capsys.readouterr().out


def test_a_dataset_the_paper_did_not_use_has_no_paper_column_but_the_papers_steps(tmp_path):
    spec = {**ABLATION, "direction_from": "vaihingen", "per_class": [],
            "paper": {"vaihingen": {"note": "Table 8", "rows": {"xception": {"miou": 68.62}, "mobilenetv2": {"miou": 64.26},
                                                                 "mobilenetv2_se": {"miou": 69.61}, "mst_deeplab": {"miou": 82.47}}}}}
    for name in ABLATION["rows"]:
        write_run(tmp_path / name, [SCENE_A], row=row_of(name), table=spec)
    # One row's checkpoint was chosen on the test split: marked in the table and the CSV.
    chosen = tmp_path / "mst_deeplab" / "results.json"
    chosen.write_text(json.dumps({**json.loads(chosen.read_text()), "selection": {"split": "test"}}))
    for name in ("xception", "mobilenetv2", "mobilenetv2_se"):
        path = tmp_path / name / "results.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "selection": {"split": "val"}}))
    assert tables(tmp_path, "--no-figures", "--format", "md,csv,tex", "--bootstrap", "0") == 0
    markdown = (tmp_path / "tables" / "mst_ablation-synthetic-smoke.md").read_text()
    latex = (tmp_path / "tables" / "mst_ablation-synthetic-smoke.tex").read_text()
    assert "MST-DeepLabv3+ $^\\ddagger$" in latex and latex.count("$^\\ddagger$") == 2  # the row and its note
    header = next(line for line in markdown.splitlines() if line.startswith("| Model"))
    assert "(paper) |" not in header and header.endswith("| Δ mIoU (paper, vaihingen) |")
    assert "- no paper column: Wang et al. 2024, Table 8 reports no results on synthetic (it reports vaihingen)" in markdown
    steps = [row[-1] for row in table_lines(markdown)]
    assert steps == ["", "-4.36", "+5.35", "+12.86"]
    assert table_lines(markdown)[3][0] == "MST-DeepLabv3+ ‡"
    assert "- ‡: the checkpoint was chosen on the test split (protocol.select_on=test)" in markdown
    rows = read_csv(tmp_path / "tables" / "mst_ablation-synthetic-smoke.csv")
    assert [r["selected_on"] for r in rows] == ["val", "val", "val", "test"]
    assert float(rows[3]["delta:miou:paper"]) == pytest.approx(12.86)


def test_bca_interval_agrees_with_scipy_on_one_seed(tmp_path):
    from scipy.stats import bootstrap

    rng = np.random.default_rng(2)
    confusions = [rng.integers(1, 30, (2, 2)) + np.diag(rng.integers(0, 60, 2)) for _ in range(6)]
    write_run(tmp_path / "run", [c.tolist() for c in confusions])
    assert tables(tmp_path / "run", "--no-figures", "--format", "csv", "--bootstrap", "20000", "--interval", "bca") == 0
    row = read_csv(tmp_path / "run" / "tables" / "comparison-synthetic-smoke.csv")[0]
    stacked = np.asarray(confusions, dtype=float)

    def interval(method: str, state: int):
        return bootstrap((np.arange(6),), lambda idx: 100 * numpy_miou(stacked[idx].sum(0)), vectorized=False,
                         n_resamples=20000, method=method, random_state=state).confidence_interval

    # Six scenes make a lumpy bootstrap distribution: scipy's own bounds move by up to 0.4 points between random
    # states, so ours is compared with the median of four of them.
    bca = [interval("BCa", state) for state in range(4)]
    assert float(row["miou:low"]) == pytest.approx(np.median([b.low for b in bca]), abs=0.4)
    assert float(row["miou:high"]) == pytest.approx(np.median([b.high for b in bca]), abs=0.4)
    percentile = interval("percentile", 0)
    assert abs(np.median([b.low for b in bca]) - percentile.low) > 1.0  # skewed enough for BCa to move the bounds


def test_rows_two_experiments_share_are_trained_once_and_shown_in_both(tmp_path):
    compare = {"name": "mst_compare", "title": "Comparison", "layout": "comparison", "split": "val",
               "rows": ["pspnet", "xception", "mst_deeplab"], "columns": ["miou"], "per_class": [], "paper": {}}
    for seed, scenes in ((0, [SCENE_A]), (1, [SCENE_B])):
        write_run(tmp_path / "ablation" / "xception" / f"seed={seed}", scenes, seed=seed, row=row_of("xception"),
                  table=ABLATION)
        write_run(tmp_path / "compare" / "pspnet" / f"seed={seed}", [SCENE_AB], seed=seed,
                  row={"name": "pspnet", "label": "PSPNet"}, table=compare)
    assert tables(tmp_path, "--no-figures", "--format", "csv,md", "--bootstrap", "0") == 0
    rows = {r["row"]: r for r in read_csv(tmp_path / "tables" / "mst_compare-synthetic-smoke.csv")}
    # mean of 77.50 and 41.07 over the two seeds the ablation trained
    assert rows["xception"]["seeds"] == "2" and float(rows["xception"]["miou"]) == pytest.approx((77.5 + 4107.14 / 100) / 2, abs=0.01)
    assert rows["mst_deeplab"]["seeds"] == "0"  # no run in either experiment
    markdown = (tmp_path / "tables" / "mst_compare-synthetic-smoke.md").read_text()
    assert "- row xception: the runs of mst_ablation (the same configuration and seeds; trained once for both tables)" in markdown
    # Its confusion matrices are drawn once, under the experiment that trained it.
    assert tables(tmp_path, "--format", "csv", "--bootstrap", "0", "--figure-tiles", "0") == 0
    confusions = sorted(p.name for p in (tmp_path / "tables" / "figures").glob("*-confusion-*.png"))
    assert confusions == [f"mst_ablation-synthetic-smoke-confusion-xception-seed{s}.png" for s in (0, 1)] + \
        [f"mst_compare-synthetic-smoke-confusion-pspnet-seed{s}.png" for s in (0, 1)]
    # Another recipe (a different learning rate) is another training: nothing is shared.
    for seed in (0, 1):
        path = tmp_path / "compare" / "pspnet" / f"seed={seed}" / "results.json"
        payload = json.loads(path.read_text())
        payload["config"]["optimizer"] = {"lr": 1e-3}
        path.write_text(json.dumps(payload))
    assert tables(tmp_path, "--no-figures", "--format", "csv", "--bootstrap", "0") == 0
    rows = {r["row"]: r for r in read_csv(tmp_path / "tables" / "mst_compare-synthetic-smoke.csv")}
    assert rows["xception"]["seeds"] == "0"


def test_comparison_with_positive_class_shows_missing_rows(tmp_path):
    spec = {"name": "deconvnet_compare", "title": "Building extraction", "layout": "comparison", "split": "test",
            "rows": ["deconvnet_skip", "deconvnet", "unet"], "positive_class": ["building", "built-up"],
            "columns": ["oa", "precision@positive", "recall@positive", "f1@positive"], "per_class": [],
            "paper": {"synthetic": {"note": "Massachusetts Buildings, test split",
                                    "rows": {"unet": {"oa": 92, "f1@positive": 46}}}}}
    for name in ("unet", "deconvnet_skip"):
        write_run(tmp_path / name, [SCENE_A], table=spec, row={"name": name, "label": name}, split="test")
    assert tables(tmp_path, "--no-figures", "--format", "md", "--bootstrap", "0") == 0
    markdown = (tmp_path / "tables" / "deconvnet_compare-synthetic-smoke.md").read_text()
    assert "| Model | OA (%) | OA (paper) | Precision (building) (%) | Recall (building) (%) | F1 (building) (%) | " \
           "F1 (building) (paper) | n |" in markdown
    rows = table_lines(markdown)
    # A: OA 7/8; building precision 4/5, recall 4/4, F1 2 * 0.8 * 1 / 1.8
    assert rows[0] == ["deconvnet_skip", "87.50", "", "80.00", "100.00", "88.89", "", "1"]
    assert rows[1] == ["deconvnet (missing)", "—", "", "—", "—", "—", "", "0"]
    assert rows[2] == ["unet", "87.50", "92.00", "80.00", "100.00", "88.89", "46.00", "1"]
    assert "- missing row: deconvnet (deconvnet): no run" in markdown
    assert "split test" in markdown and "REDUCED" in markdown


def test_plain_sweep_gets_a_generic_comparison_by_model(tmp_path):
    sweep = tmp_path / "multirun" / "2025-06-01" / "12-00-00"
    classes = ["road", "tree", "clutter"]
    job = 0
    for model in ("unet", "segnet"):
        for seed in (0, 1):
            scene = np.diag([10, 20, 5]) + (1 if model == "segnet" else 3) + seed
            write_run(sweep / str(job), [scene.tolist()], seed=seed, model=model, classes=classes, scale=None,
                      exclude=["clutter"], overrides=[f"model={model}", f"seed={seed}", "trainer.devices=1"])
            job += 1
    job_dir = sweep / "10"  # sorts after 2..9, not after 1
    job_dir.mkdir()
    (job_dir / "error.json").write_text(json.dumps({"status": "failed", "error": "boom", "config": {"seed": 0}}))
    assert tables(sweep, "--no-figures", "--bootstrap", "0") == 0
    out = sweep / "tables"
    rows = read_csv(out / "comparison-synthetic-full.csv")  # no scale field: the configured default, full
    assert [(r["row"], r["seeds"]) for r in rows] == [("unet", "2"), ("segnet", "2"), ("10", "0")]
    iou = read_csv(out / "comparison-synthetic-full-per_class_iou.csv")
    # unet seed 0: road 13 / (13 + 3 + 3 + 3 + 3) = 13 / 25 = 52 %; seed 1: 14 / 30 = 46.67 %
    assert float(iou[0]["per_class.iou.road"]) == pytest.approx(100 * (13 / 25 + 14 / 30) / 2, abs=1e-4)
    assert list(iou[0])[:6] == ["row", "label", "per_class.iou.road", "per_class.iou.road:std",
                                "per_class.iou.road:low", "per_class.iou.road:high"]
    markdown = (out / "comparison-synthetic-full-per_class_iou.md").read_text()
    assert "| Model | road | tree | clutter† | mean | n |" in markdown
    assert "- †: not in the mean (clutter, data.exclude_from_mean)" in markdown
    assert "- failed row: 10 seed 0: boom (" in (out / "comparison-synthetic-full.md").read_text()


def test_sweep_over_two_keys_names_rows_by_the_overrides_that_differ(tmp_path):
    for job, (lr, aug) in enumerate([("1e-3", "none"), ("1e-2", "none"), ("1e-3", "ricap"), ("1e-2", "ricap")]):
        write_run(tmp_path / str(job), [SCENE_A], model="unet", overrides=["model=unet", f"optimizer.lr={lr}",
                                                                             f"aug={aug}", "seed=0"])
    assert tables(tmp_path, "--no-figures", "--format", "csv", "--bootstrap", "0") == 0
    rows = read_csv(tmp_path / "tables" / "comparison-synthetic-smoke.csv")
    assert [r["label"] for r in rows] == ["aug=none, optimizer.lr=1e-3", "aug=none, optimizer.lr=1e-2",
                                          "aug=ricap, optimizer.lr=1e-3", "aug=ricap, optimizer.lr=1e-2"]
    assert [float(r["miou"]) for r in rows] == [77.5] * 4 and rows[0]["mib"] == "22.96"


def test_params_table_from_a_sizes_only_run(tmp_path):
    spec = {"name": "mst_params", "title": "Parameter sizes", "source": "Wang et al. 2024, Table 9",
            "layout": "params", "rows": ["pspnet", "xception", "mst_deeplab"], "columns": ["params", "mib", "gflops"],
            "labels": {"pspnet": "PSPNet", "xception": "DeepLabv3+", "mst_deeplab": "MST-DeepLabv3+"},
            "models": {"pspnet": "pspnet", "xception": "deeplabv3plus", "mst_deeplab": "mst_deeplab"},
            "paper": {"any": {"note": "Table 9", "rows": {"pspnet": {"mib": 259.64}, "xception": {"mib": 208.7},
                                                          "mst_deeplab": {"mib": 22.96}}}}}
    sizes = [{"row": "xception", "label": "DeepLabv3+", "model": "deeplabv3plus", "params": 54709702, "mib": 208.7,
              "gflops": 41.234},
             {"row": "mst_deeplab", "label": "MST-DeepLabv3+", "model": "mst_deeplab", "params": 6019094,
              "mib": 22.96, "gflops": 12.5}]
    write_results(tmp_path / "results.json", {"task": "train", "status": "done", "experiment": "mst_params",
                                              "scale": "full", "data": "synthetic", "table": spec, "sizes": sizes,
                                              "command": "python train.py experiment=mst_params", "config": {}})
    assert tables(tmp_path / "results.json", "--no-figures") == 0
    markdown = (tmp_path / "tables" / "mst_params-synthetic-full.md").read_text()
    rows = read_csv(tmp_path / "tables" / "mst_params-synthetic-full.csv")
    assert [(r["row"], r["params"], r["mib"], r["mib:paper"]) for r in rows] == [
        ("pspnet", "", "", "259.64"), ("xception", "54709702", "208.7", "208.7"), ("mst_deeplab", "6019094", "22.96", "22.96")]
    assert table_lines(markdown) == [
        ["PSPNet (missing)", "pspnet", "—", "—", "259.64", "—"],
        ["DeepLabv3+", "deeplabv3plus", "54,709,702", "208.70", "208.70", "41.23"],
        ["MST-DeepLabv3+", "mst_deeplab", "6,019,094", "22.96", "22.96", "12.50"],
    ]
    assert "scale: full (the experiment's recipe as configured)" in markdown
    printed = markdown_for_results(tmp_path / "results.json")  # what train.py experiment=mst_params prints
    assert table_lines(printed) == table_lines(markdown) and "written by" not in printed


@pytest.mark.parametrize("case", ["empty_folder", "malformed_json", "eval_results", "class_lists_differ"])
def test_bad_input_exits_2_with_one_error_line_and_writes_nothing(tmp_path, case):
    folder = tmp_path / "runs"
    folder.mkdir()
    expected = {
        "empty_folder": f"error: {folder}: no results.json under this folder; expected a run folder",
        "malformed_json": f"error: {folder / 'results.json'}: not valid JSON (Expecting ',' delimiter at line 1)",
        "eval_results": f"error: {folder / 'results.json'}: \"task\" is 'eval', not a training run; expected the "
                        f"results.json a training run writes",
        "class_lists_differ": "differ from ['background', 'building'] in",
    }[case]
    if case == "malformed_json":
        (folder / "results.json").write_text('{"task": "train" "metrics": {}}')
    elif case == "eval_results":
        (folder / "results.json").write_text(json.dumps({"task": "eval", "metrics": {}}))
    elif case == "class_lists_differ":
        write_run(folder / "0", [SCENE_A])
        write_run(folder / "1", [SCENE_A], classes=["background", "road"])
    run = subprocess.run([sys.executable, "-m", "rsseg.tables", str(folder)], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], run.stderr
    assert not (folder / "tables").exists() and run.stdout == ""


def test_bad_option_is_one_line_too(tmp_path, capsys):
    write_run(tmp_path, [SCENE_A])
    assert tables(tmp_path, "--format", "md,docx") == 2
    assert capsys.readouterr().err == ("error: --format md,docx: unknown format 'docx'; expected a comma-separated "
                                       "list of md, csv, tex\n")
    assert not (tmp_path / "tables").exists()


def pdf_info(pdf: bytes, key: str) -> str:
    """A text entry of a PDF's document information (a hex UTF-16 string or a literal string)."""
    import re

    match = re.search(rb"/" + key.encode() + rb" (<[0-9A-Fa-f]+>|\((?:\\.|[^\\)])*\))", pdf)
    raw = match.group(1)
    if raw.startswith(b"<"):
        return bytes.fromhex(raw[1:-1].decode()).decode("utf-16")
    escapes = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
    text = re.sub(rb"\\([0-7]{1,3}|.)", lambda m: bytes([int(m.group(1), 8)]) if m.group(1)[:1].isdigit()
                  else escapes.get(m.group(1), m.group(1)), raw[1:-1], flags=re.S)
    return text.decode("utf-16") if text.startswith(b"\xfe\xff") else text.decode("latin-1")


def test_figures_are_written_as_png_and_pdf(tmp_path, cache_dir, capsys):
    from PIL import Image

    from tests.test_predict_cli import conv_model_config, write_checkpoint

    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"paths.cache_dir={cache_dir}", *SMALL_DATA])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    classes = list(data["class_names"])
    scene = (np.eye(6, dtype=int) * 50 + 2).tolist()
    for index, model in enumerate(("unet", "segnet", "fcn8s")):
        checkpoint = None
        if model != "fcn8s":  # a row without its checkpoint is left out of the prediction grid
            checkpoint = str(write_checkpoint(tmp_path / f"{model}.ckpt", conv_model_config(3, 6), data, seed=index))
        run = write_run(tmp_path / "sweep" / str(index), [scene, scene], model=model, classes=classes, data=data,
                        checkpoint=checkpoint, overrides=[f"model={model}"])
        if model != "fcn8s":  # the CSV log Lightning writes beside results.json: validation every 4 steps
            log = run.parent / "csv" / "version_0" / "metrics.csv"
            log.parent.mkdir(parents=True)
            log.write_text("epoch,step,train/loss_step,val/miou\n0,3,0.9,\n0,3,,0.25\n1,7,0.7,\n1,7,,0.5\n")
    assert tables(tmp_path / "sweep", "--figure-tiles", "2", "--bootstrap", "50") == 0
    figures = tmp_path / "sweep" / "tables" / "figures"
    stems = ["comparison-synthetic-smoke-iou", "comparison-synthetic-smoke-predictions",
             "comparison-synthetic-smoke-validation_curves",
             *(f"comparison-synthetic-smoke-confusion-{m}-seed0" for m in ("unet", "segnet", "fcn8s"))]
    assert sorted(p.name for p in figures.iterdir()) == sorted(f"{s}.{e}" for s in stems for e in ("png", "pdf", "txt"))
    assert all(p.stat().st_size > 1000 for p in figures.iterdir() if p.suffix != ".txt")
    assert all(p.read_bytes().startswith(b"%PDF") for p in figures.glob("*.pdf"))
    # Provenance travels with every figure: in its caption file, its PNG text chunks and its PDF metadata.
    caption = (figures / "comparison-synthetic-smoke-iou.txt").read_text().splitlines()
    assert caption[0].startswith("Comparison: per-class IoU (synthetic, scale smoke")
    assert caption[1] == f"written by: rsseg tables {tmp_path / 'sweep'} --bootstrap 50"
    assert f"runs at commit: {COMMIT} (rsseg 0.1.0)" in caption
    png_text = Image.open(figures / "comparison-synthetic-smoke-iou.png").text
    assert png_text["Description"] == "\n".join(caption) and png_text["Software"].startswith("rsseg ")
    assert pdf_info((figures / "comparison-synthetic-smoke-iou.pdf").read_bytes(), "Subject") == "\n".join(caption)
    grid = np.asarray(Image.open(figures / "comparison-synthetic-smoke-predictions.png").convert("RGB"))
    assert grid.shape[1] > grid.shape[0] and grid.std() > 20  # 2 tiles x (image, label, 2 predictions)
    grid_caption = (figures / "comparison-synthetic-smoke-predictions.txt").read_text().splitlines()
    assert grid_caption[1] == (f"rows shown: unet {tmp_path / 'sweep' / '0' / 'results.json'}; "
                               f"segnet {tmp_path / 'sweep' / '1' / 'results.json'}")
    assert grid_caption[2] == "rows left out (checkpoint not on this machine): fcn8s"
    err = capsys.readouterr().err
    assert "row fcn8s has no checkpoint (None); left out of the prediction grid" in err
    assert "wrote 6 table files and 18 figure files" in err


COMMITTED = REPO / "experiments" / "dubai"


def test_the_committed_runs_rederive_every_committed_table(tmp_path):
    """experiments/dubai holds its runs' results.json: the documented command rebuilds every table file there,
    byte for byte, and the README's example cells are cells of those tables."""
    out = tmp_path / "dubai"
    run = subprocess.run([sys.executable, "-m", "rsseg.cli", "tables", "experiments/dubai/runs", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    committed = sorted(p.name for p in COMMITTED.iterdir() if p.suffix in (".md", ".csv", ".tex"))
    assert committed and sorted(p.name for p in out.iterdir() if p.suffix in (".md", ".csv", ".tex")) == committed
    for name in committed:
        assert (out / name).read_text() == (COMMITTED / name).read_text(), name
    captions = sorted(p.name for p in (COMMITTED / "figures").glob("*.txt"))
    assert captions and all((out / "figures" / name).read_text() == (COMMITTED / "figures" / name).read_text()
                            for name in captions if not name.endswith("-predictions.txt"))
    readme = (REPO / "README.md").read_text()
    example = readme.split("read like this one, the mean ± std over seeds [interval]:\n", 1)[1]
    cell, delta = re.findall(r"`([^`]+)`", example)[:2]
    ablation = (COMMITTED / "mst_ablation-dubai-cpu.md").read_text()
    assert f"| {cell} |" in ablation and f"| {delta} |" in ablation
