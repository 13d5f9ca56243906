"""The README's first command, `robust-winn quickstart`, with its CLI defaults (device auto)."""

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_DATA

from robust_winn.experiments.quickstart import QUICK
from robust_winn.runtime.checkpoint import load_classifier, save_checkpoint

QUICK_TINY = {"epochs": 1, "synth_max_steps": 2, "synth_per_class": 1, "attacks": ("fgsm", "pgd:steps=2")}


def _check_quickstart(result, out: Path, train_images: int, test_images: int) -> None:
    """Both runs trained and loaded back on the default device ('auto'), both attacked; the
    summary names both models with the numbers of their records."""
    assert result.exit_code == 0, result.output
    assert "| baseline" in result.output and "| winn" in result.output
    assert (out / "summary.md").is_file()
    attack = json.loads((out / "attack-record.json").read_text())
    assert set(attack["models"]) == {"baseline", "winn"} and attack["n"] == test_images
    for method in ("baseline", "winn"):
        rec = json.loads((out / method / "record.json").read_text())
        assert rec["status"] == "completed" and rec["config"]["method"] == method
        assert rec["cost"]["train_images"] == train_images
        assert rec["device"].split(":")[0] == ("cuda" if torch.cuda.is_available() else "cpu")  # auto
        err = 100 * rec["test_error_at_best_val"]
        assert f"| {method} " in result.output and f"{round(err, 2):g}" in result.output
        white = {r["attack"]: r["error"] for r in attack["results"] if r["source"] == r["scorer"] == method}
        assert set(white) == {"fgsm", "pgd:steps=2"}
        assert all(e >= attack["models"][method]["clean_error"] for e in white.values())


def test_quickstart_cli_defaults_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli):
    """`robust-winn quickstart` with its CLI defaults, on tiny budgets: QUICK shrunk (1 epoch,
    2 PGD steps), its runs on 100 of the sample's training images with 2 initial
    pseudo-negatives per class (the 100 of the defaults cost ~4 s on a CPU alone), and the
    attacks on 200 of its 1,000 test images. The same command at the sample's full size:
    test_quickstart_on_the_whole_sample (slow)."""
    from robust_winn.attacks import harness
    from robust_winn.experiments import quickstart

    for key, value in QUICK_TINY.items():
        monkeypatch.setitem(QUICK, key, value)
    config, synthesis = quickstart.TrainConfig, quickstart.SynthesisConfig
    monkeypatch.setattr(quickstart, "TrainConfig", lambda **kw: config(**{**TINY_DATA, **kw}))
    monkeypatch.setattr(quickstart, "SynthesisConfig", lambda **kw: synthesis(**{"init_per_class": 2, **kw}))
    evaluate = harness.evaluate
    monkeypatch.setattr(harness, "evaluate", lambda *a, **kw: evaluate(*a, **{"limit": 200, **kw}))
    out = tmp_path / "qs"
    result = cli("quickstart", "--out", out, "--no-progress")
    _check_quickstart(result, out, TINY_DATA["limit_train"], 200)
    rec = json.loads((out / "winn" / "record.json").read_text())
    assert rec["history"][-1]["pool_size"] == 10 * (2 + 1)


@pytest.mark.slow
def test_quickstart_on_the_whole_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli):
    """The quickstart on the sample's 2,500 training images and its default pool (~15 s)."""
    for key, value in QUICK_TINY.items():
        monkeypatch.setitem(QUICK, key, value)
    out = tmp_path / "qs"
    _check_quickstart(cli("quickstart", "--out", out, "--no-progress"), out, 2500, 1000)


def test_load_classifier_accepts_auto(tmp_path: Path):
    from robust_winn.models import Introspective, build_classifier

    model = Introspective(build_classifier("vanilla", image_shape=(1, 28, 28), num_classes=10), 10)
    save_checkpoint(
        {
            "format": "robust_winn.runtime.checkpoint/1",
            "model": {"arch": "vanilla", "image_shape": [1, 28, 28], "num_classes": 10},
            "model_state": model.state_dict(),
        },
        tmp_path / "c.pt",
    )
    loaded, _ = load_classifier(tmp_path / "c.pt", "auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(loaded.parameters()).device.type == expected
