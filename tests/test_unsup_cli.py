"""Unsupervised CLI commands through click's CliRunner: a tiny run, generate, one-line errors."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from textures import texture_image

from robust_winn.cli.main import main
from robust_winn.cli.unsup import generate_cmd, score_cmd, train_unsupervised_cmd
from robust_winn.runtime.checkpoint import save_checkpoint

BRICK = texture_image()
TINY = ["--image-size", "16", "--cascades", "2", "--iterations", "1", "--pos-per-step", "10",
        "--k-passes", "1", "--init-images", "10", "--new-per-iter", "10", "--new-last-iter", "10",
        "--synth-max-steps", "2", "--device", "cpu", "--no-progress", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-cascade texture checkpoint made by the CLI itself, through `train --mode unsupervised`."""
    out = tmp_path_factory.mktemp("tex") / "run"
    r = CliRunner().invoke(main, ["train", "--mode", "unsupervised", "--dataset", "texture", "--image",
                                  str(BRICK), *TINY, "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "2 cascades, 2 iterations" in r.output
    return out / "checkpoint-last.pt"


def _run(cmd, args):
    return CliRunner().invoke(cmd, args, catch_exceptions=False)


def test_generate_writes_grid_and_tensor(ckpt: Path, tmp_path: Path):
    grid, saved = tmp_path / "grid.png", tmp_path / "x.pt"
    r = _run(generate_cmd, ["--checkpoint", str(ckpt), "--n", "6", "--out", str(grid), "--save", str(saved),
                            "--device", "cpu", "--max-steps", "2", "--quiet"])  # fmt: skip
    assert r.exit_code == 0, r.output
    with Image.open(grid) as im:
        assert im.size == (3 * 18 + 2, 2 * 18 + 2)  # 3 x 2 grid of 16x16 images, 2-pixel padding
    x = torch.load(saved, weights_only=True)
    assert x.shape == (6, 3, 16, 16) and x.abs().max() <= 1
    r = _run(generate_cmd, ["--checkpoint", str(ckpt), "--n", "1", "--cascades", "1", "--size", "24",
                            "--patches-per-step", "2", "--max-steps", "1", "--device", "cpu",
                            "--save", str(saved), "--quiet", "--overwrite"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert torch.load(saved, weights_only=True).shape == (1, 3, 24, 24)


def test_resume_via_cli_completes(ckpt: Path):
    r = _run(train_unsupervised_cmd, ["--dataset", "texture", "--image", str(BRICK), *TINY,
                                      "--out", str(ckpt.parent), "--resume"])  # fmt: skip
    assert r.exit_code == 0 and "2 cascades, 2 iterations" in r.output


def test_bad_input_exits_2_with_one_line(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    clf = tmp_path / "clf.pt"
    save_checkpoint({"method": "winn", "model": {}}, clf)  # a supervised checkpoint, not unsupervised
    grid = str(tmp_path / "g.png")
    c = str(ckpt)
    cases = [
        (generate_cmd, ["--checkpoint", str(tmp_path / "missing.pt"), "--out", grid], "does not exist"),
        (generate_cmd, ["--checkpoint", c, "--cascades", "3", "--out", grid], "1..2"),
        (generate_cmd, ["--checkpoint", c, "--cascades", "zero", "--out", grid], "'all' or a positive"),
        (generate_cmd, ["--checkpoint", c, "--cascades", "0", "--out", grid], "'all' or a positive"),
        (generate_cmd, ["--checkpoint", c, "--n", "0", "--out", grid], "--n"),
        (generate_cmd, ["--checkpoint", c], "--out"),
        (generate_cmd, ["--checkpoint", str(clf), "--out", grid], "not an unsupervised"),
        (generate_cmd, ["--checkpoint", c, "--out", grid, "--device", "cuda:7"], "device"),
        (score_cmd, ["--checkpoint", c, "--n", "10"], "inception_v3_google"),
        (
            score_cmd,
            ["--checkpoint", c, "--n", "10", "--classifier", str(tmp_path / "no.pt")],
            "does not exist",
        ),
        (score_cmd, ["--checkpoint", c, "--n", "5", "--splits", "10"], "--splits"),
        (train_unsupervised_cmd, ["--dataset", "texture", "--out", str(tmp_path / "o")], "--image"),
        (train_unsupervised_cmd, ["--dataset", "image-folder", "--out", str(tmp_path / "o")], "--folder"),
        (
            train_unsupervised_cmd,
            ["--dataset", "texture", "--image", str(tmp_path / "no.png"), "--out", str(tmp_path / "o")],
            "does not exist",
        ),  # fmt: skip
        (train_unsupervised_cmd, ["--dataset", "lsun", "--out", str(tmp_path / "o")], "lsun"),
        (
            train_unsupervised_cmd,
            ["--dataset", "texture", "--image", str(BRICK), "--arch", "nonet", "--out", str(tmp_path / "o")],
            "unknown model",
        ),  # fmt: skip
        (
            train_unsupervised_cmd,
            ["--dataset", "texture", "--image", str(BRICK), "--out", str(tmp_path / "o"), "--resume"],
            "to resume from",
        ),  # fmt: skip
    ]
    for cmd, args, needle in cases:
        r = CliRunner().invoke(cmd, args)
        assert r.exit_code == 2, (args, r.output)
        err = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
        assert len(err) == 1 and needle in err[0], (args, r.output)


def test_score_with_classifier_gives_digit_score(ckpt: Path, tmp_path: Path):
    from robust_winn.models import Introspective, build_classifier

    torch.manual_seed(0)
    model = Introspective(build_classifier("vanilla", image_shape=(1, 28, 28), num_classes=10), 10)
    clf = tmp_path / "clf.pt"
    meta = {"arch": "vanilla", "kwargs": {}, "image_shape": [1, 28, 28], "num_classes": 10}
    save_checkpoint({"model": meta, "model_state": model.state_dict()}, clf)
    args = ["--checkpoint", str(ckpt), "--n", "8", "--chunk", "5", "--splits", "2", "--classifier", str(clf)]
    r = _run(score_cmd, [*args, "--max-steps", "1", "--device", "cpu", "--quiet"])
    assert r.exit_code == 0, r.output
    line = r.output.strip().splitlines()[-1]
    assert line.startswith("digit score of 8 images: ")
    mean = float(line.split(": ")[1].split(" +- ")[0])
    assert 1.0 <= mean <= 10.0


def test_unsupervised_training_refuses_a_multi_process_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Under torchrun every rank would train alone and write to the same --out: refuse."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["train", "--mode", "unsupervised", "--dataset", "mnist", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "unsupervised training runs in one process" in result.output
    assert not out.exists()
