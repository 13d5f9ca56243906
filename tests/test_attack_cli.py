"""``robust-winn attack``: outputs, a user classifier by import string, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from custom_model import load_trained, trained_tiny_cnn

from robust_winn.cli.attack import attack
from robust_winn.cli.main import main
from robust_winn.models import Introspective
from robust_winn.runtime.checkpoint import save_checkpoint

if "attack" not in main.commands:  # cli.py registers it; keep the tests independent of that
    main.add_command(attack)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A state_dict for --arch/--weights and two robust_winn checkpoints of the same net."""
    d = tmp_path_factory.mktemp("attack-cli")
    weights = d / "tiny.pt"
    torch.save(trained_tiny_cnn(0), weights)
    out = {"weights": weights}
    for name, seed in (("model", 0), ("baseline", 1)):
        wrapped = Introspective(load_trained(seed), 10)
        state = {
            "model": {
                "arch": "custom_model:tiny_cnn",
                "kwargs": {},
                "image_shape": [1, 28, 28],
                "num_classes": 10,
            },
            "dataset": {"name": "sample", "image_shape": [1, 28, 28]},
            "method": name,
            "model_state": wrapped.state_dict(),
        }
        save_checkpoint(state, d / f"{name}.pt")
        out[name] = d / f"{name}.pt"
    bad = {**state, "model": {**state["model"], "image_shape": [3, 32, 32]}}
    save_checkpoint(bad, d / "svhn-shaped.pt")
    out["svhn-shaped"] = d / "svhn-shaped.pt"
    (d / "garbage.pt").write_bytes(b"not a checkpoint")
    out["garbage"] = d / "garbage.pt"
    return out


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["attack", *args])
    return result.exit_code, result.output


def test_user_classifier_by_import_string(files, tmp_path) -> None:
    code, output = run(
        "--arch",
        "custom_model:tiny_cnn",
        "--weights",
        str(files["weights"]),
        "--dataset",
        "sample",
        "--limit",
        "48",
        "--attack",
        "fgsm",
        "--attack",
        "pgd:steps=5",
        "--eps",
        "0.05",
        "--eps",
        "0.1",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0, output
    for name in (
        "attack-record.json",
        "attack-table.csv",
        "attack-table.md",
        "attack-curve.csv",
        "attack-curve.png",
        "attack-calibration.csv",
        "attack-reliability.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    rec = json.loads((tmp_path / "attack-record.json").read_text())
    assert rec["n"] == 48 and rec["eps"] == [0.05, 0.1]
    assert rec["command"].startswith("robust-winn attack --arch custom_model:tiny_cnn")
    assert {"torch", "torchattacks"} <= set(rec["versions"]) and rec["device"] == "cpu"
    table = pd.read_csv(tmp_path / "attack-table.csv")
    assert len(table) == 2 * 2 + 2  # attacks x eps + worst-case rows
    assert (table["adversarial_error_%"] >= table["clean_error_%"]).all()
    curve = pd.read_csv(tmp_path / "attack-curve.csv")
    assert sorted(curve["eps"].unique()) == [0.0, 0.05, 0.1]
    assert "adversarial error" in output


def test_two_checkpoints_give_table3_layout(files, tmp_path) -> None:
    # the checkpoints name a user factory: the user trusts it by naming it with --arch
    code, output = run(
        "--model",
        str(files["model"]),
        "--baseline",
        str(files["baseline"]),
        "--arch",
        "custom_model:tiny_cnn",
        "--limit",
        "32",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0, output
    table = pd.read_csv(tmp_path / "attack-table.csv")
    assert set(table["referee"]) == {"model", "baseline"}
    assert {"correction_by_model_%", "correction_by_baseline_%", "transfer_error_model_%"} <= set(
        table.columns
    )
    rec = json.loads((tmp_path / "attack-record.json").read_text())
    assert rec["dataset"] == "sample"  # taken from the checkpoint
    assert rec["inputs"] == {"model": str(files["model"]), "baseline": str(files["baseline"])}
    assert "correction by model of these errors" in output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--attack", "fgsn"], "unknown attack 'fgsn'; choose one of"),
        (["--eps", "1.5"], "1.5 is not in the range 0<=x<=1"),
        (["--eps", "-0.1"], "-0.1 is not in the range 0<=x<=1"),
        (["--attack", "pgd:stepz=3"], "takes no parameter stepz"),
        (["--model", "@svhn-shaped"], "was trained on images (3, 32, 32)"),
        (["--model", "@garbage"], "cannot read checkpoint"),
        (["--model", "/nonexistent.pt"], "does not exist"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "MNIST"),
        (["--dataset", "nosuch"], "unknown dataset 'nosuch'"),
        (["--weights", "@weights"], "--weights needs --arch"),
        ([], "give the model to attack"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(files, tmp_path, args, needle) -> None:
    args = [str(files[a[1:]]) if a.startswith("@") else a for a in args]
    if not any(a in args for a in ("--model", "--weights")) and args != []:
        args += ["--arch", "custom_model:tiny_cnn", "--weights", str(files["weights"])]
    elif "--model" in args:  # the checkpoints name a user factory: trust it by naming it
        args += ["--arch", "custom_model:tiny_cnn"]
    if "--dataset" not in args:
        args += ["--dataset", "sample"]
    code, output = run(*args, "--limit", "8", "--out", str(tmp_path))
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code == 2, output
    assert len(lines) == 1 and lines[0].startswith("Error:"), output
    assert needle in lines[0]


def test_help_explains_every_option() -> None:
    result = CliRunner().invoke(main, ["attack", "--help"])
    assert result.exit_code == 0
    for opt in (
        "--model",
        "--baseline",
        "--arch",
        "--weights",
        "--attack",
        "--eps",
        "--dataset",
        "--data-dir",
        "--out",
        "--limit",
        "--batch-size",
        "--device",
        "--seed",
    ):
        assert opt in result.output


N_IMAGES = 200
# Hand-built counts per (seed, attack), out of N_IMAGES: clean errors of both models, each
# referee's errors on its own (white-box) examples, the other model's errors on them (transfer)
# and N_AB (both wrong). Seed 2's PGD breaks no WINN image: its correction by the baseline is
# undefined (N_A = 0) and the mean is over seeds 0 and 1 only.
COUNTS = {
    (0, "fgsm"): {"clean": (4, 3), "white": (90, 60), "transfer": (50, 70), "both": (30, 45)},
    (1, "fgsm"): {"clean": (6, 2), "white": (100, 50), "transfer": (40, 80), "both": (35, 20)},
    (2, "fgsm"): {"clean": (5, 5), "white": (80, 40), "transfer": (60, 90), "both": (10, 30)},
    (0, "pgd:steps=2"): {"clean": (4, 3), "white": (150, 120), "transfer": (95, 130), "both": (90, 100)},
    (1, "pgd:steps=2"): {"clean": (6, 2), "white": (160, 100), "transfer": (85, 140), "both": (80, 64)},
    (2, "pgd:steps=2"): {"clean": (5, 5), "white": (170, 0), "transfer": (65, 150), "both": (50, 0)},
}


def _harness_record(seed: int, attacks: list[str], eps: float) -> dict:
    """An attack record as the harness writes it (models baseline and winn), from COUNTS."""
    from robust_winn.evaluation.metrics import CorrectionRates

    models = dict.fromkeys(("baseline", "winn"))
    results, correction = [], []
    for label in attacks:
        c = COUNTS[(seed, label)]
        for i, (src, other) in enumerate((("baseline", "winn"), ("winn", "baseline"))):
            models[src] = {"clean_error": c["clean"][i] / N_IMAGES}
            for scorer, errors in ((src, c["white"][i]), (other, c["transfer"][i])):
                results.append(
                    {
                        "source": src,
                        "scorer": scorer,
                        "attack": label,
                        "eps": eps,
                        "type": "white-box" if scorer == src else "transfer",
                        "n": N_IMAGES,
                        "errors": errors,
                        "error": errors / N_IMAGES,
                    }
                )
            rates = CorrectionRates(n=N_IMAGES, n_a=c["white"][i], n_ab=c["both"][i]).to_dict()
            correction.append({"referee": src, "other": other, "attack": label, "eps": eps, **rates})
    return {"models": models, "results": results, "correction": correction, "warnings": []}


def _expected(label: str) -> dict[str, list[float | None]]:
    """The Table 3 numbers (percent) per seed, computed here from COUNTS by the paper's formulas."""
    out: dict[str, list[float | None]] = {}
    for seed in (0, 1, 2):
        c = COUNTS[(seed, label)]
        (cb, cw), (wb, ww), (bb, bw) = c["clean"], c["white"], c["both"]
        for key, value in (
            ("baseline_clean_error", 100 * cb / N_IMAGES),
            ("winn_clean_error", 100 * cw / N_IMAGES),
            ("baseline_adv_error", 100 * wb / N_IMAGES),  # referee = baseline, its own examples
            ("winn_adv_error", 100 * ww / N_IMAGES),
            ("correction_by_winn", 100 * (1 - bb / wb) if wb else None),  # baseline's errors fixed by WINN
            ("correction_by_baseline", 100 * (1 - bw / ww) if ww else None),
        ):
            out.setdefault(key, []).append(value)
    return out


def test_table3_columns_and_seed_aggregation_from_hand_built_records(tmp_path, monkeypatch) -> None:
    """Table 3 from three seeds' attack records with known counts: each column holds the right
    referee's number (adversarial error of each model on its own examples, correction *by* the
    other model), mean and sample std over seeds, N_A = 0 left out, the paper's FGSM numbers
    beside ours and nothing beside PGD; the per-seed CSV holds every seed's numbers."""
    import statistics

    from robust_winn.experiments import tables34
    from robust_winn.experiments.tables34 import Table3Spec, reproduce_table3, seed_numbers

    attacks = ["fgsm", "pgd:steps=2"]
    for seed in (0, 1, 2):  # the mapping of one record, straight
        rec = _harness_record(seed, attacks, 0.1)
        for label in attacks:
            exp = _expected(label)
            got = seed_numbers(rec, label)
            assert got.keys() == exp.keys()
            for key, values in exp.items():
                assert (
                    got[key] == pytest.approx(values[seed]) if values[seed] is not None else got[key] is None
                )

    calls = []

    def fake_evaluate(models, *, dataset, attacks, eps, seed, **kw):  # the harness, by hand
        calls.append((sorted(models), len(dataset.test), list(attacks), eps, seed))
        return _harness_record(seed, list(attacks), eps[0])

    monkeypatch.setattr(tables34, "run_grid", lambda *a, **k: [])  # no training
    monkeypatch.setattr(tables34, "load_classifier", lambda path, *a, **k: (str(path), {}))
    monkeypatch.setattr(tables34, "evaluate", fake_evaluate)
    spec = Table3Spec(
        rows=[("sample", "vanilla")],
        seeds=(0, 1, 2),
        epochs=1,
        runs_dir=str(tmp_path / "runs"),
        device="cpu",
        progress=False,
        attacks=attacks,
        eps=0.1,
        limit_test=40,
    )
    df = reproduce_table3(spec, out_dir=tmp_path / "out", command="pytest")
    assert calls == [(["baseline", "winn"], 40, attacks, [0.1], s) for s in (0, 1, 2)]

    assert df[["arch", "attack"]].values.tolist() == [
        ["vanilla", "fgsm"],
        ["vanilla", "pgd:steps=2"],
        ["resnet32", "fgsm"],
        ["resnet32", "pgd:steps=2"],
    ]
    for label in attacks:
        row = df[(df.arch == "vanilla") & (df.attack == label)].iloc[0]
        assert row["status"] == "run" and row["seeds"] == "0 1 2" and row["eps"] == 0.1
        for key, values in _expected(label).items():
            vals = [v for v in values if v is not None]
            assert row[f"{key}_mean"] == pytest.approx(statistics.mean(vals)), (label, key)
            assert row[f"{key}_std"] == pytest.approx(statistics.stdev(vals)), (label, key)
    assert _expected("pgd:steps=2")["correction_by_baseline"][2] is None  # the case above
    fgsm = df[(df.arch == "vanilla") & (df.attack == "fgsm")].iloc[0]
    paper = [fgsm[f"paper_{k}"] for k in tables34.METRICS]
    assert paper == [32.41, 7.99, 90.00, 46.93]  # paper Table 3, vanilla CNN, in METRICS order
    assert tables34.METRICS == (
        "baseline_adv_error",
        "winn_adv_error",
        "correction_by_winn",
        "correction_by_baseline",
    )
    pgd = df[(df.arch == "vanilla") & (df.attack == "pgd:steps=2")].iloc[0]
    assert all(pd.isna(pgd[f"paper_{k}"]) for k in tables34.METRICS)  # no paper PGD numbers
    resnet = df[(df.arch == "resnet32") & (df.attack == "fgsm")].iloc[0]
    assert resnet["status"].startswith("not run here") and resnet["paper_winn_adv_error"] == 2.05
    assert pd.isna(resnet["baseline_adv_error_mean"])

    per_seed = pd.read_csv(tmp_path / "out" / "table3-seeds.csv")
    assert len(per_seed) == 2 * 3 and list(per_seed.columns) == list(tables34.SEED_COLUMNS)
    for r in per_seed.to_dict("records"):
        exp = _expected(r["attack"])
        for key, values in exp.items():
            v = values[r["seed"]]
            assert pd.isna(r[key]) if v is None else r[key] == pytest.approx(v), (r, key)
    md = (tmp_path / "out" / "table3.md").read_text()
    m, sd = fgsm["baseline_adv_error_mean"], fgsm["baseline_adv_error_std"]
    assert "| vanilla | fgsm | ours (seeds 0 1 2) | " in md and f"{m:.2f} ± {sd:.2f}" in md
    assert "| vanilla | fgsm | paper | - | 32.41 | 7.99 | 90.00 | 46.93 | |" in md


def test_reproduce_table3_attacks_the_best_checkpoints_of_real_runs(tmp_path) -> None:
    """Tiny end to end: both methods trained once, each seed's checkpoint-best.pt attacked; the
    row is what the harness gives on those checkpoints. A second call reuses the runs."""
    from conftest import tiny_overrides, tiny_synthesis

    from robust_winn.attacks import evaluate
    from robust_winn.cli.attack import reproduce_table3
    from robust_winn.data.datasets import load_dataset
    from robust_winn.experiments.tables34 import Table3Spec, seed_numbers
    from robust_winn.runtime.checkpoint import load_classifier

    extra = tiny_overrides(synthesis=tiny_synthesis(max_steps=2))
    spec = Table3Spec(
        rows=[("sample", "vanilla")],
        seeds=(0,),
        epochs=1,
        runs_dir=str(tmp_path / "runs"),
        limit_test=40,
        progress=False,
        attacks=("fgsm",),
        extra=extra,
        device="cpu",
    )
    df = reproduce_table3(spec, out_dir=tmp_path / "out", command="pytest")
    vanilla, resnet = df.iloc[0], df.iloc[1]
    assert vanilla["status"] == "run" and vanilla["seeds"] == "0"
    models = {
        m: load_classifier(tmp_path / "runs" / f"sample-vanilla-{m}-s0" / "checkpoint-best.pt")[0]
        for m in ("baseline", "winn")
    }
    rec = evaluate(
        models, dataset=load_dataset("sample", limit_test=40), attacks=["fgsm"], eps=[spec.eps], seed=0
    )
    for key, value in seed_numbers(rec, "fgsm").items():
        assert (
            vanilla[f"{key}_mean"] == pytest.approx(value)
            if value is not None
            else pd.isna(vanilla[f"{key}_mean"])
        ), key
    assert vanilla["paper_baseline_adv_error"] == 32.41
    assert resnet["status"].startswith("not run here")
    for name in ("table3.csv", "table3.md", "table3.json", "table3-seeds.csv"):
        assert (tmp_path / "out" / name).exists()
    md = (tmp_path / "out" / "table3.md").read_text()
    assert "Command: `pytest`" in md and "| paper |" in md
    mtime = (tmp_path / "runs" / "sample-vanilla-winn-s0" / "checkpoint-best.pt").stat().st_mtime_ns
    again = reproduce_table3(spec, out_dir=tmp_path / "out2", command="pytest")
    assert again.iloc[0]["baseline_adv_error_mean"] == vanilla["baseline_adv_error_mean"]
    assert (tmp_path / "runs" / "sample-vanilla-winn-s0" / "checkpoint-best.pt").stat().st_mtime_ns == mtime


def test_reproduce_table4_without_svhn_marks_row_and_keeps_seed_header(tmp_path) -> None:
    """No SVHN files: the row says why it was not run, the paper's numbers stay, and the
    per-seed CSV still has its header (an empty file would read as a crash)."""
    from robust_winn.experiments.tables34 import SEED_COLUMNS, Table4Spec, reproduce_table4

    (tmp_path / "no-data").mkdir()  # exists but holds no SVHN (a missing folder is an error)
    spec = Table4Spec(
        data_dir=str(tmp_path / "no-data"), runs_dir=str(tmp_path / "runs"), device="cpu", progress=False
    )
    df = reproduce_table4(spec, out_dir=tmp_path / "out", command="pytest")
    assert list(df["status"]) == ["not run here (data unavailable offline)"]
    assert df.iloc[0]["paper_baseline_adv_error"] == 29.29
    header = (tmp_path / "out" / "table4-seeds.csv").read_text().splitlines()[0]
    assert header.split(",") == list(SEED_COLUMNS)
