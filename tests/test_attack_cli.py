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
            "model": {"arch": "custom_model:tiny_cnn", "kwargs": {}, "image_shape": [1, 28, 28],
                      "num_classes": 10},
            "dataset": {"name": "sample", "image_shape": [1, 28, 28]},
            "method": name, "model_state": wrapped.state_dict(),
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
        "--arch", "custom_model:tiny_cnn", "--weights", str(files["weights"]), "--dataset",
        "sample", "--limit", "48", "--attack", "fgsm", "--attack", "pgd:steps=5",
        "--eps", "0.05", "--eps", "0.1", "--out", str(tmp_path), "--quiet",
    )
    assert code == 0, output
    for name in ("attack-record.json", "attack-table.csv", "attack-table.md", "attack-curve.csv",
                 "attack-curve.png"):
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
    code, output = run("--model", str(files["model"]), "--baseline", str(files["baseline"]),
                       "--arch", "custom_model:tiny_cnn", "--limit", "32", "--out", str(tmp_path), "--quiet")
    assert code == 0, output
    table = pd.read_csv(tmp_path / "attack-table.csv")
    assert set(table["referee"]) == {"model", "baseline"}
    assert {"correction_by_model_%", "correction_by_baseline_%",
            "transfer_error_model_%"} <= set(table.columns)
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
    for opt in ("--model", "--baseline", "--arch", "--weights", "--attack", "--eps",
                "--dataset", "--data-dir", "--out", "--limit", "--batch-size", "--device",
                "--seed"):
        assert opt in result.output


def test_reproduce_table3_smoke(tmp_path) -> None:
    """Tiny end-to-end Table 3: trains both methods once, attacks, writes paper beside ours."""
    from robust_winn.cli.attack import reproduce_table3
    from robust_winn.config import SynthesisConfig
    from robust_winn.experiments.tables34 import Table3Spec

    tiny = {"limit_train": 200, "val_size": 100, "limit_test": 40,
            "synthesis": SynthesisConfig(max_steps=2, per_class=5, init_per_class=5)}
    spec = Table3Spec(rows=[("sample", "vanilla")], seeds=(0,), epochs=1, runs_dir=str(tmp_path / "runs"),
                      limit_test=40, progress=False, attacks=("fgsm",), extra=tiny, device="cpu")
    df = reproduce_table3(spec, out_dir=tmp_path / "out", command="pytest")
    vanilla, resnet = df.iloc[0], df.iloc[1]
    assert vanilla["status"] == "run" and vanilla["seeds"] == "0"
    assert 0 <= vanilla["baseline_adv_error_mean"] <= 100
    assert vanilla["paper_baseline_adv_error"] == 32.41
    assert resnet["status"].startswith("not run here")
    for name in ("table3.csv", "table3.md", "table3.json", "table3-seeds.csv"):
        assert (tmp_path / "out" / name).exists()
    md = (tmp_path / "out" / "table3.md").read_text()
    assert "Command: `pytest`" in md and "| paper |" in md
    # a second call reuses the finished runs (their record.json exists) and gives the same table
    again = reproduce_table3(spec, out_dir=tmp_path / "out2", command="pytest")
    assert again.iloc[0]["baseline_adv_error_mean"] == vanilla["baseline_adv_error_mean"]


def test_reproduce_table4_without_svhn_marks_row_and_keeps_seed_header(tmp_path) -> None:
    """No SVHN files: the row says why it was not run, the paper's numbers stay, and the
    per-seed CSV still has its header (an empty file would read as a crash)."""
    from robust_winn.experiments.tables34 import SEED_COLUMNS, Table4Spec, reproduce_table4

    (tmp_path / "no-data").mkdir()  # exists but holds no SVHN (a missing folder is an error)
    spec = Table4Spec(data_dir=str(tmp_path / "no-data"), runs_dir=str(tmp_path / "runs"), device="cpu",
                      progress=False)
    df = reproduce_table4(spec, out_dir=tmp_path / "out", command="pytest")
    assert list(df["status"]) == ["not run here (data unavailable offline)"]
    assert df.iloc[0]["paper_baseline_adv_error"] == 29.29
    header = (tmp_path / "out" / "table4-seeds.csv").read_text().splitlines()[0]
    assert header.split(",") == list(SEED_COLUMNS)
