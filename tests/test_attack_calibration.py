"""Calibration in every attack record (issue 14 §2): clean and per example set, files written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from custom_model import load_trained
from torch import nn

from robust_winn.attacks import evaluate
from robust_winn.attacks.harness import Outcomes
from robust_winn.attacks.report import calibration_table, write_attack_outputs
from robust_winn.data.datasets import load_dataset, to_model_range
from robust_winn.evaluation.calibration import calibration_metrics, reliability_bins

N = 150  # batches of 64: a ragged last batch


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    data = load_dataset("sample", data_dir="unused")
    models = {"baseline": load_trained(0), "winn": load_trained(1)}
    out = Outcomes(keep_images=True)
    rec = evaluate(
        models, dataset=data, limit=N, attacks=["fgsm"], eps=[0.0, 0.1], batch_size=64, outcomes=out
    )
    test = data.test.subset(slice(0, N))
    x, y = to_model_range(test.images), test.labels
    return {"models": models, "rec": rec, "out": out, "x": x, "y": y}


def _same(got: dict[str, Any], want: dict[str, float], tol: float) -> None:
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=tol), k


def test_clean_calibration_is_that_of_the_models_logits(run) -> None:
    for name, m in run["models"].items():
        with torch.no_grad():
            logits = m(run["x"])
        got = run["rec"]["models"][name]["calibration"]
        _same(got, calibration_metrics(logits, run["y"]), 1e-9)
        assert got["reliability"]["count"] == reliability_bins(logits, run["y"])["count"]
        assert got["reliability"]["bins"] == 15 and sum(got["reliability"]["count"]) == N


def test_each_example_set_is_scored_by_its_scorer(run: dict[str, Any]) -> None:
    rec, y = run["rec"], run["y"]
    rows = {(r["source"], r["eps"], r["scorer"]): r["calibration"] for r in rec["results"]}
    for src in run["models"]:
        x_adv = run["out"].images[(src, "fgsm", 0.1)] * 2 - 1  # kept in [0, 1] units
        for scorer, m in run["models"].items():
            with torch.no_grad():
                want = calibration_metrics(m(x_adv), y)
            _same(rows[(src, 0.1, scorer)], want, 1e-4)
            assert rows[(src, 0.0, scorer)] == rec["models"][scorer]["calibration"]  # eps 0 = clean
        # the attack raises the white-box NLL: it climbs the very cross-entropy NLL averages
        assert rows[(src, 0.1, src)]["nll"] > rec["models"][src]["calibration"]["nll"]


def test_calibration_files(run: dict[str, Any], tmp_path: Path) -> None:
    paths = write_attack_outputs(run["rec"], tmp_path)
    table = pd.read_csv(paths["calibration.csv"])
    # 2 clean rows + (2 sources x 2 scorers) at eps 0.1; eps 0 rows would repeat the clean ones
    assert len(table) == 2 + 4
    assert set(table["type"]) == {"clean", "white-box", "transfer"}
    assert table[["ece_%", "nll", "brier"]].notna().all().all()
    assert list(table["scorer"]) == list(calibration_table(run["rec"])["scorer"])
    assert paths["reliability.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Calibration (ECE over 15" in paths["table.md"].read_text()


def test_a_model_returning_probabilities_is_scored_as_it_predicts() -> None:
    # the harness's contract is logits; softmax outputs are taken as logits (and warned about)
    class Probs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = load_trained(0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x).softmax(1)

    data = load_dataset("sample", data_dir="unused")
    rec = evaluate(Probs(), dataset=data, limit=64, attacks=["fgsm"], eps=[0.1])
    cal = rec["models"]["model"]["calibration"]
    assert cal["confidence"] < 0.3  # softmax of values in [0, 1]: nearly uniform over 10 classes
    assert any("ends in softmax" in w for w in rec["warnings"])


def test_a_failure_while_rendering_leaves_earlier_results_whole(
    run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robust_winn.attacks import report

    paths = write_attack_outputs(run["rec"], tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    changed = {**run["rec"], "n": 1}  # a different record, whose last file fails to render

    def boom(curves: Any) -> bytes:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(report, "reliability_diagram_png", boom)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_attack_outputs(changed, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no half-new set, no temp files
    assert set(before) == {p.name for p in paths.values()}
