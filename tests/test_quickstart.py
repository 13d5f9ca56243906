"""The README's first command, `robust-winn quickstart`, with its CLI defaults (device auto)."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from robust_winn.cli.main import main
from robust_winn.experiments.quickstart import QUICK
from robust_winn.runtime.checkpoint import load_classifier, save_checkpoint


def test_quickstart_cli_defaults_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With tiny budgets: both runs train, load back on the default device ('auto') and are
    attacked; the summary names both models. (The real budgets take minutes; see README.)"""
    for key, value in {"epochs": 1, "synth_max_steps": 2, "synth_per_class": 2}.items():
        monkeypatch.setitem(QUICK, key, value)
    out = tmp_path / "qs"
    result = CliRunner().invoke(main, ["quickstart", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "| baseline" in result.output and "| winn" in result.output
    assert (out / "summary.md").is_file() and (out / "attack-record.json").is_file()


def test_load_classifier_accepts_auto(tmp_path: Path):
    from robust_winn.models import Introspective, build_classifier

    model = Introspective(build_classifier("vanilla", image_shape=(1, 28, 28), num_classes=10), 10)
    save_checkpoint({"format": "robust_winn.runtime.checkpoint/1",
                     "model": {"arch": "vanilla", "image_shape": [1, 28, 28], "num_classes": 10},
                     "model_state": model.state_dict()}, tmp_path / "c.pt")
    loaded, _ = load_classifier(tmp_path / "c.pt", "auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(loaded.parameters()).device.type == expected
