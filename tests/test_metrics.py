"""Metrics against confusion matrices computed by hand."""

import math

import pytest
import torch

from rsseg.metrics import format_table, metrics_from_confusion, paper_f1
from rsseg.metrics.accumulators import SegmentationMetrics

# Rows = true class, columns = predicted class.
CONFUSION = torch.tensor([[50, 10, 0], [5, 30, 5], [0, 0, 0]])
NAMES = ["a", "b", "c"]


def test_per_class_and_means_on_a_hand_computed_matrix():
    m = metrics_from_confusion(CONFUSION, NAMES)
    a, b, c = (m["per_class"][n] for n in NAMES)
    assert a["iou"] == pytest.approx(50 / (60 + 55 - 50))
    assert a["precision"] == pytest.approx(50 / 55)
    assert a["recall"] == pytest.approx(50 / 60)
    assert b["iou"] == pytest.approx(30 / (40 + 40 - 30))
    assert b["precision"] == pytest.approx(30 / 40)
    assert b["recall"] == pytest.approx(30 / 40)
    # c: never labelled but predicted 5 times -> IoU 0, precision 0, recall undefined.
    assert c["iou"] == 0.0 and c["precision"] == 0.0 and math.isnan(c["recall"])
    assert m["oa"] == pytest.approx(80 / 100)
    assert m["miou"] == pytest.approx((50 / 65 + 30 / 50 + 0) / 3)
    assert m["mrecall"] == pytest.approx((50 / 60 + 30 / 40) / 2)
    mp, mr = (50 / 55 + 30 / 40 + 0) / 3, (50 / 60 + 30 / 40) / 2
    assert m["f1_paper"] == pytest.approx(2 * mp * mr / (mp + mr))


def test_class_absent_from_labels_and_predictions_is_nan_and_left_out_of_means():
    confusion = torch.tensor([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    m = metrics_from_confusion(confusion, NAMES)
    assert math.isnan(m["per_class"]["c"]["iou"])
    assert math.isnan(m["per_class"]["c"]["precision"])
    assert m["miou"] == pytest.approx((8 / 11 + 9 / 12) / 2)


def test_excluded_class_stays_in_oa_but_not_in_means():
    m = metrics_from_confusion(CONFUSION, NAMES, exclude_from_mean=["c"])
    assert m["miou"] == pytest.approx((50 / 65 + 30 / 50) / 2)
    assert m["oa"] == pytest.approx(0.8)
    assert m["classes_in_mean"] == ["a", "b"]
    with pytest.raises(ValueError, match="unknown class 'clutter'"):
        metrics_from_confusion(CONFUSION, NAMES, exclude_from_mean=["clutter"])


def test_paper_f1_is_the_harmonic_mean_of_macro_precision_and_recall():
    # Rows are the true class. x: recall 9012 / 10000, precision 9012 / 9912; y: recall 9100 / 10000, precision
    # 9100 / 10088. Macro P = 0.905631, macro R = 0.9056, and the paper's F1 = 2PR / (P + R) = 0.905616.
    confusion = torch.tensor([[9012, 988], [900, 9100]], dtype=torch.float64)
    m = metrics_from_confusion(confusion, ["x", "y"])
    assert m["mprecision"] == pytest.approx(0.9056314, abs=1e-7)
    assert m["mrecall"] == pytest.approx(0.9056, abs=1e-12)
    assert m["f1_paper"] == pytest.approx(0.9056157, abs=1e-7)
    # MST-DeepLabv3+ reports P 90.34, R 90.12, F1 90.23 on ISPRS (and two more datasets): the same formula.
    assert paper_f1(90.34, 90.12) == pytest.approx(90.23, abs=0.005)
    assert paper_f1(84.10, 84.86) == pytest.approx(84.48, abs=0.005)
    assert paper_f1(95.28, 95.02) == pytest.approx(95.15, abs=0.005)
    assert math.isnan(paper_f1(float("nan"), 0.5))


def test_accumulated_metric_respects_ignore_index_and_matches_the_function():
    metric = SegmentationMetrics(3, NAMES, ignore_index=255)
    target = torch.tensor([[0, 0, 1, 255], [1, 2, 2, 255]])
    preds = torch.tensor([[0, 1, 1, 2], [1, 2, 0, 0]])
    metric.update(preds[None], target[None])
    logits = torch.nn.functional.one_hot(preds, 3).permute(2, 0, 1).float()[None]
    metric.update(logits, target[None])  # logits are argmaxed to the same predictions
    result = metric.compute()
    expected = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 1]]) * 2
    assert torch.equal(torch.tensor(result["confusion"]), expected)
    assert result["miou"] == pytest.approx(metrics_from_confusion(expected, NAMES)["miou"])
    assert "mIoU" in format_table(result)
