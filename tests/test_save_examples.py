"""attack --save-examples (issue 13 §4): saved per-example outcomes re-score to the record."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from custom_model import load_trained, trained_tiny_cnn

from robust_winn.cli import main


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("examples")
    torch.save(trained_tiny_cnn(0), d / "tiny.pt")
    out = d / "out"
    r = CliRunner().invoke(
        main,
        [
            "attack",
            "--arch",
            "custom_model:tiny_cnn",
            "--weights",
            str(d / "tiny.pt"),
            "--dataset",
            "sample",
            "--limit",
            "40",
            "--attack",
            "fgsm",
            "--attack",
            "pgd:steps=3",
            "--eps",
            "0.05",
            "--eps",
            "0.1",
            "--out",
            str(out),
            "--save-examples",
            "--save-adversarial",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    return out


def test_saved_predictions_rescore_to_the_record(attacked: Path) -> None:
    rec = json.loads((attacked / "attack-record.json").read_text())
    ex = pd.read_csv(attacked / "examples-model.csv", keep_default_na=False)
    assert len(ex) == rec["n"] == 40 and list(ex["index"]) == list(range(40))
    assert (ex["clean_pred"] != ex["label"]).mean() == pytest.approx(rec["models"]["model"]["clean_error"])
    for r in rec["results"]:
        col = f"pred:{r['attack']}@{r['eps']:g}"
        assert (ex[col] != ex["label"]).sum() == r["errors"], col
    for w in rec["worst_case"]:  # RobustBench: clean mistake or any attack at this eps
        cols = [f"pred:{a}@{w['eps']:g}" for a in w["attacks"]]
        broken = (ex["clean_pred"] != ex["label"]) | (ex[cols].ne(ex["label"], axis=0)).any(axis=1)
        assert broken.mean() == pytest.approx(w["error"])
    # broken_first covers every eps: non-empty exactly where something broke the image
    any_col = [c for c in ex.columns if c.startswith("pred:")]
    ever = (ex["clean_pred"] != ex["label"]) | ex[any_col].ne(ex["label"], axis=0).any(axis=1)
    assert ((ex["broken_first"] != "") == ever).all()
    assert set(ex.loc[ex["clean_pred"] != ex["label"], "broken_first"]) <= {"clean"}


def test_saved_adversarial_sets_are_the_attacked_images(attacked: Path) -> None:
    saved = torch.load(attacked / "adversarial-model.pt", weights_only=True)
    ex = pd.read_csv(attacked / "examples-model.csv", keep_default_na=False)
    model = load_trained(0)
    for tag, x in saved["examples"].items():
        x = x.float() / 255 if x.dtype == torch.uint8 else x  # (N, C, H, W) in [0, 1]
        assert x.shape[0] == 40 and x.min() >= 0 and x.max() <= 1
        with torch.no_grad():
            pred = model(x * 2 - 1).argmax(1)
        assert pred.tolist() == ex[f"pred:{tag}"].tolist(), tag  # re-scoring reproduces the CSV
    assert (attacked / "examples-model.png").stat().st_size > 0


def test_save_adversarial_needs_save_examples(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["attack", "--arch", "vanilla", "--out", str(tmp_path), "--save-adversarial"]
    )
    assert r.exit_code == 2 and "--save-adversarial needs --save-examples" in r.output
