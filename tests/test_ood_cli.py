"""``robust-winn ood`` and ``reproduce ood`` end to end on tiny checkpoints (issue 14 §5).

Two tiny runs (baseline and WINN, one epoch on 100 images of the bundled sample) are scored on
40 test images against synthetic sets, a user folder, a user ``.npz`` and FGSM examples; bad
inputs are answered by one ``Error:`` line and exit code 2, before the output folder is made.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config
from PIL import Image

import robust_winn.experiments.ood as ood_experiment
from robust_winn import evaluate_ood, train
from robust_winn.errors import RunDirError
from robust_winn.evaluation.ood_report import OOD_FILES
from robust_winn.experiments.ood import OODTableSpec, reproduce_ood
from robust_winn.runtime.checkpoint import load_checkpoint, save_checkpoint

FASHION = Path("/usr/share/datasets/fashion-mnist")
HOSTILE = {"arch": "os:system", "kwargs": {"command": "touch PWNED"}}
QUICK = ["--limit", "40", "--pseudo-negatives", "1", "--synth-max-steps", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """checkpoint-best.pt of a tiny baseline and a tiny WINN run, in folders named by method."""
    root = tmp_path_factory.mktemp("ood-runs")
    for method in ("baseline", "winn"):
        train(tiny_config(root / method, method=method, epochs=1))
    return {m: root / m / "checkpoint-best.pt" for m in ("baseline", "winn")}


@pytest.fixture(scope="module")
def user_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder of RGB PNGs of another size and an NHWC float .npz."""
    root = tmp_path_factory.mktemp("ood-sets")
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir()
    for i in range(3):
        Image.fromarray((rng.random((32, 40, 3)) * 255).astype(np.uint8)).save(root / "imgs" / f"{i}.png")
    np.savez(root / "x.npz", images=rng.random((5, 28, 28, 1)).astype(np.float32))
    return {"folder": root / "imgs", "npz": root / "x.npz"}


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_cli_end_to_end(cli, ckpts, user_sets, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "ood",
        *("--model", ckpts["baseline"], "--model", ckpts["winn"], "--in", "sample"),
        *("--ood", "uniform-noise", "--ood", "inverted", "--ood", f"folder:{user_sets['folder']}"),
        *("--ood", f"npz:{user_sets['npz']}", "--ood", "adv:fgsm:0.125"),
        *("--score", "msp", "--score", "critic", "--score", "energy", "--score", "critic-grad"),
        *("--out", out, *QUICK),
    ]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(OOD_FILES)
    table = pd.read_csv(out / "ood-table.csv")
    assert len(table) == 2 * 5 * 4  # models x sets x scores
    critic = table[table["score"].isin(["critic", "critic-grad"])]
    base, winn = critic[critic["model"] == "baseline"], critic[critic["model"] == "winn"]
    assert base["auroc"].isna().all() and base["status"].str.contains("not trained").all()
    assert winn["auroc"].between(0, 1).all() and (winn["status"] == "measured").all()
    assert table[table["score"] == "msp"]["auroc"].between(0, 1).all()
    adv = table[table["ood"] == "adv:fgsm:0.125"]
    assert adv["fooled"].between(0, 1).all()
    rec = json.loads((out / "ood-record.json").read_text())
    assert rec["command"].startswith("robust-winn ood") and rec["in_distribution"]["n"] == 40
    assert {s["name"]: s["n"] for s in rec["ood_sets"]}[f"npz:{user_sets['npz']}"] == 5
    for m in rec["models"].values():
        assert set(m["calibration"]["clean"]) == {"ece", "nll", "brier", "accuracy", "confidence"}
        assert "adv:fgsm:0.125" in m["calibration"]
        assert m["pseudo_negatives"]["images"] == 10 and m["pseudo_negatives"]["max_steps"] <= 2
    assert rec["models"]["baseline"]["critic"].startswith("critic head not trained")
    assert rec["models"]["winn"]["critic"] == "trained"
    assert "n/a" in (out / "ood-table.md").read_text()
    # the results are never silently replaced
    assert "already holds results" in _one_error_line(cli(*args))
    assert cli(*args, "--overwrite").exit_code == 0


@pytest.mark.parametrize(
    ("ood", "extra", "words"),
    [
        ("no-such-set", [], "unknown OOD set"),
        ("folder:{empty}", [], "holds no image files"),
        ("folder:{text}", [], "is not an image file"),
        ("folder:{sizes}", ["--no-resize"], "but the model takes 28x28"),
        ("npz:{two}", [], "2 channels cannot be converted"),
        ("adv:fgsm", [], "adv:ATTACK:EPS"),
    ],
)
def test_cli_bad_inputs_are_one_line(
    cli, ckpts, tmp_path: Path, ood: str, extra: list[str], words: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("not an image")
    (tmp_path / "sizes").mkdir()
    Image.new("L", (32, 32)).save(tmp_path / "sizes" / "a.png")
    np.savez(tmp_path / "two.npz", images=np.zeros((2, 2, 28, 28), dtype=np.uint8))
    name = ood.format(**{k: tmp_path / k for k in ("empty", "text", "sizes")}, two=tmp_path / "two.npz")
    out = tmp_path / "out"
    result = cli("ood", "--model", ckpts["winn"], "--ood", name, "--out", out, *QUICK, *extra)
    assert words in _one_error_line(result)
    assert not any(p.name in OOD_FILES for p in out.glob("*"))


def test_cli_bad_checkpoint_and_dataset(cli, ckpts, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert "does not exist" in _one_error_line(
        cli("ood", "--model", tmp_path / "x.pt", "--ood", "constant", "--out", out)
    )
    assert not out.exists()  # checked before --out is claimed
    line = _one_error_line(
        cli("ood", "--model", ckpts["winn"], "--in", "cifar10", "--ood", "constant", "--out", out)
    )
    assert "cifar10" in line
    assert "unknown dataset 'mnsit'" in _one_error_line(
        cli("ood", "--model", ckpts["winn"], "--in", "mnsit", "--ood", "constant", "--out", tmp_path / "o2")
    )
    assert not (tmp_path / "o2").exists()


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_files(ckpts) -> None:
    result = evaluate_ood(
        {"winn": ckpts["winn"]},
        ood=["fashion-mnist"],
        in_dist="sample",
        ood_data_dir=FASHION.parent,
        limit=30,
        pseudo_negatives=0,
        device="cpu",
    )
    rows = result.record["rows"]
    assert [r["score"] for r in rows] == ["msp", "critic", "energy"]
    assert all(0 <= r["auroc"] <= 1 for r in rows)
    assert result.record["ood_sets"] == [{"name": "fashion-mnist", "kind": "dataset", "n": 30}]


def test_reproduce_ood_reuses_runs_and_guards_measured_rows(ckpts, tmp_path: Path, monkeypatch) -> None:
    """Seeds of the table's runs are scored and aggregated; missing OOD data never replaces a measured row."""
    runs = tmp_path / "runs"
    for method, path in ckpts.items():
        (runs / f"sample-vanilla-{method}-s0").mkdir(parents=True)
        shutil.copy(path, runs / f"sample-vanilla-{method}-s0" / "checkpoint-best.pt")
    monkeypatch.setattr(ood_experiment, "run_grid", lambda *a, **k: [])  # the runs above are the grid's
    (tmp_path / "no-ood-data").mkdir()
    spec = OODTableSpec(
        rows=(("sample", "vanilla"),),
        seeds=(0,),
        ood=("fashion-mnist", "constant", "adv:fgsm:0.125"),
        scores=("msp", "critic"),
        ood_data_dir=str(tmp_path / "no-ood-data"),
        runs_dir=str(runs),
        limit_test=30,
        pseudo_negatives=1,
        negatives_max_steps=2,
        device="cpu",
    )
    out = tmp_path / "results"
    df = reproduce_ood(spec, out_dir=out, command="test")
    assert {p.name for p in out.iterdir()} >= {"ood.csv", "ood.md", "ood.json", "ood.png", "ood-seeds.csv"}
    status = {(r["ood"], r["score"]): r["status"] for r in df.to_dict("records")}
    assert status[("constant", "msp")] == "run" and status[("fashion-mnist", "msp")].startswith(
        "not run here"
    )
    row = df[(df["ood"] == "constant") & (df["score"] == "critic")].iloc[0]
    assert pd.isna(row["baseline_auroc_mean"]) and 0 <= row["winn_auroc_mean"] <= 1
    meta = json.loads((out / "ood.json").read_text())
    assert meta["seeds"] == [0] and meta["command"] == "test" and "torch_threads" in meta
    assert set(meta["calibration"]) == {"sample vanilla baseline", "sample vanilla winn"}
    for by_examples in meta["calibration"].values():  # clean and on the model's own FGSM examples
        assert list(by_examples) == ["clean", "adv:fgsm:0.125"]
        assert by_examples["adv:fgsm:0.125"]["nll"][0] > by_examples["clean"]["nll"][0]
    cal = pd.read_csv(out / "ood-calibration.csv")
    assert sorted(zip(cal["model"], cal["examples"], strict=True)) == [
        ("baseline", "adv:fgsm:0.125"),
        ("baseline", "clean"),
        ("winn", "adv:fgsm:0.125"),
        ("winn", "clean"),
    ]
    assert "Findings" in (out / "ood.md").read_text()
    # a measured fashion-mnist row on disk is not replaced by "not run here"
    rows = meta["rows"]
    rows[0]["status"] = "run"
    (out / "ood.json").write_text(json.dumps({**meta, "rows": rows}))
    before = (out / "ood.md").read_bytes()
    with pytest.raises(RunDirError, match="would not measure again"):
        reproduce_ood(spec, out_dir=out, command="test")
    assert (out / "ood.md").read_bytes() == before


def test_a_checkpoint_that_names_code_is_refused(cli, ckpts, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    state = load_checkpoint(ckpts["winn"])
    save_checkpoint({**state, "model": {**state["model"], **HOSTILE}}, tmp_path / "hostile.pt")
    line = _one_error_line(cli("ood", "--model", "hostile.pt", "--ood", "constant", "--out", "out"))
    assert "--trust-checkpoint-code" in line
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()
