"""``robust-winn attack``: outputs, a user classifier by import string, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from custom_model import load_trained, trained_tiny_cnn

from robust_winn.checkpoint import save_checkpoint
from robust_winn.cli import main
from robust_winn.cli_attack import attack
from robust_winn.models import Introspective

if "attack" not in main.commands:  # cli.py registers it; keep the tests independent of that
    main.add_command(attack)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


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
    for name in ("record.json", "table.csv", "table.md", "curve.csv", "curve.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["n"] == 48 and rec["eps"] == [0.05, 0.1]
    assert rec["command"].startswith("robust-winn attack --arch custom_model:tiny_cnn")
    assert {"torch", "torchattacks"} <= set(rec["versions"]) and rec["device"] == "cpu"
    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == 2 * 2 + 2  # attacks x eps + worst-case rows
    assert (table["adversarial_error_%"] >= table["clean_error_%"]).all()
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert sorted(curve["eps"].unique()) == [0.0, 0.05, 0.1]
    assert "adversarial error" in output


def test_two_checkpoints_give_table3_layout(files, tmp_path) -> None:
    code, output = run("--model", str(files["model"]), "--baseline", str(files["baseline"]),
                       "--limit", "32", "--out", str(tmp_path), "--quiet")
    assert code == 0, output
    table = pd.read_csv(tmp_path / "table.csv")
    assert set(table["referee"]) == {"model", "baseline"}
    assert {"correction_by_model_%", "correction_by_baseline_%",
            "transfer_error_model_%"} <= set(table.columns)
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["dataset"] == "sample"  # taken from the checkpoint
    assert rec["inputs"] == {"model": str(files["model"]), "baseline": str(files["baseline"])}
    assert "correction by model of these errors" in output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--attack", "fgsn"], "unknown attack 'fgsn'; choose one of"),
        (["--eps", "1.5"], "eps must be in [0, 1]"),
        (["--eps", "-0.1"], "eps must be in [0, 1]"),
        (["--attack", "pgd:stepz=3"], "takes no parameter stepz"),
        (["--model", "@svhn-shaped"], "was trained on images (3, 32, 32)"),
        (["--model", "@garbage"], "cannot read checkpoint"),
        (["--model", "/nonexistent.pt"], "does not exist"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "MNIST"),
        (["--dataset", "nosuch"], "unknown dataset 'nosuch'"),
        (["--weights", "@weights"], "--weights needs --arch"),
        ([], "exactly one of them"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(files, tmp_path, args, needle) -> None:
    args = [str(files[a[1:]]) if a.startswith("@") else a for a in args]
    if not any(a in args for a in ("--model", "--weights")) and args != []:
        args += ["--arch", "custom_model:tiny_cnn", "--weights", str(files["weights"])]
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
