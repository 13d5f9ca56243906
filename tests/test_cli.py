import json
from pathlib import Path

import pytest
from conftest import invoke

TINY = [
    "--dataset",
    "sample",
    "--val-size",
    "100",
    "--limit-train",
    "200",
    "--limit-test",
    "100",
    "--batch-size",
    "50",
    "--synth-per-class",
    "5",
    "--synth-max-steps",
    "3",
    "--device",
    "cpu",
    "--no-progress",
    "--quiet",
]


def _run(args, **kw):
    return invoke(*args, catch_exceptions=False, **kw)


def test_train_winn_then_resume_with_more_epochs(tmp_path: Path, small_init_pool):
    """--resume with a larger --epochs continues the run: epoch 1 is kept, the pool grows."""
    out = tmp_path / "run"
    r = _run(["train", *TINY, "--method", "winn", "--epochs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "winn vanilla on sample: 1 epochs" in r.output
    for name in ("checkpoint-best.pt", "checkpoint-last.pt", "record.json", "epochs.csv"):
        assert (out / name).is_file()
    first = json.loads((out / "record.json").read_text())
    r = _run(["train", *TINY, "--method", "winn", "--epochs", "2", "--out", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "record.json").read_text())
    assert rec["epochs_run"] == 2 and rec["command"].startswith("robust-winn")
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
    assert rec["history"][0] == first["history"][0]  # epoch 1 is kept, not trained again
    assert [h["pool_size"] for h in rec["history"]] == [10 * (2 + 5), 10 * (2 + 5 + 5)]
    assert rec["config"]["synthesis"]["max_steps"] == 3 and rec["seed"] == 0
    assert len((out / "epochs.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert len(small_init_pool) == 2
    r = _run(["train", *TINY, "--method", "winn", "--epochs", "2", "--out", str(out)])
    assert r.exit_code == 2 and "--resume" in r.output  # a finished run is not replaced silently


def test_list_shows_datasets_models_attacks_ood_sets():
    from robust_winn.data.ood_sets import list_synthetic_sets

    r = _run(["list"])
    assert r.exit_code == 0
    for word in ("mnist", "svhn", "cifar10", "sample", "vanilla", "resnet32", "fgsm", "pgd"):
        assert word in r.output
    ood = r.output.split("OOD sets")[1]  # every synthetic set and user-set form, after its heading
    for name in [*list_synthetic_sets(), "folder:PATH", "npz:PATH", "adv:ATTACK:EPS"]:
        assert f"  {name} " in ood, name


def test_user_factory_trains_by_both_methods(tmp_path: Path, small_init_pool):
    for method in ("baseline", "winn"):
        r = _run(
            [
                "train",
                *TINY,
                "--arch",
                "user_models:tiny",
                "--method",
                method,
                "--epochs",
                "1",
                "--out",
                str(tmp_path / method),
            ]
        )
        assert r.exit_code == 0, r.output
        rec = json.loads((tmp_path / method / "record.json").read_text())
        assert rec["config"]["arch"] == "user_models:tiny" and rec["config"]["method"] == method
        assert rec["status"] == "completed" and rec["epochs_run"] == 1
    # the command asked for the defaults' 100 initial pseudo-negatives per class (2 here) and
    # --synth-per-class 5 new ones: WINN's pool after one epoch
    assert [c.synthesis.init_per_class for c in small_init_pool] == [100, 100]
    assert rec["history"][0]["pool_size"] == 10 * (2 + 5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--arch", "alexnet"], "unknown model 'alexnet'"),
        (["--epochs", "-1"], "-1 is not in the range"),
        (["--arch", "user_models:wrong_shape"], "(N, 10) logits; got (2, 7)"),
        (["--method", "magic"], "'magic' is not one of"),
        (["--device", "cuda:7"], "cuda"),
    ],
)
def test_bad_input_gives_one_error_line_and_exit_2(args, message, tmp_path: Path):
    r = invoke("train", *TINY, *args, "--out", tmp_path / "o")
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], r.output


def test_train_mode_must_be_supervised_or_unsupervised(tmp_path: Path):
    r = invoke("train", "--mode", "both", *TINY, "--out", tmp_path / "o")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "'--mode'" in r.output, r.output
    r = invoke("train", "--mode=supervised", *TINY, "--epochs", "-1", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "-1 is not in the range" in r.output, r.output  # reached `train`


def test_unreadable_checkpoint_on_resume(tmp_path: Path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "checkpoint-last.pt").write_bytes(b"garbage")
    r = invoke("train", *TINY, "--out", out, "--resume")
    assert r.exit_code == 2
    assert r.output.startswith("Error: cannot read checkpoint") and len(r.output.splitlines()) == 1


def test_missing_data_is_one_line_saying_where(tmp_path: Path):
    r = invoke("train", "--dataset", "mnist", "--data-dir", tmp_path, "--out", tmp_path / "o", "--quiet")
    assert r.exit_code == 2
    assert "MNIST/raw" in r.output and len(r.output.splitlines()) == 1


def test_help_documents_every_train_option():
    r = _run(["train", "--help"])
    assert r.exit_code == 0
    for opt in (
        "--dataset",
        "--arch",
        "--method",
        "--epochs",
        "--data-dir",
        "--out",
        "--seed",
        "--resume",
        "--device",
        "--download",
        "--stop-rule",
        "--alpha",
    ):
        assert opt in r.output
