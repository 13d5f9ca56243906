"""Hostile and careless input, every command (issue 11): one line, exit 2, nothing lost.

Each case runs a real ``robust-winn`` command line through click's runner and asserts:

- exit code 2 and exactly one ``Error:`` line that names the problem (``needle``);
- no traceback;
- no file created outside the case's own output folder (the working directory is a fresh
  folder that must stay empty: a hostile checkpoint would ``touch PWNED`` there);
- every earlier result (a trained run, an attack, the tables) byte-identical afterwards.

Tiny models and ``--limit`` keep it fast; every case fails before any real work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from textures import texture_image

from robust_winn.cli.main import main
from robust_winn.errors import ModelSpecError
from robust_winn.models import create_model
from robust_winn.runtime.checkpoint import load_checkpoint, save_checkpoint
from robust_winn.runtime.rundir import LOCK_NAME, _lock

TINY = ["--dataset", "sample", "--val-size", "100", "--limit-train", "100", "--limit-test", "50",
        "--batch-size", "50", "--device", "cpu", "--no-progress", "--quiet"]  # fmt: skip
UNSUP = ["--dataset", "texture", "--image-size", "16", "--cascades", "1", "--iterations", "1",
         "--pos-per-step", "10", "--k-passes", "1", "--init-images", "10", "--new-per-iter", "10",
         "--new-last-iter", "10", "--synth-max-steps", "1", "--device", "cpu", "--no-progress",
         "--quiet"]  # fmt: skip
IMG = str(texture_image())
HOSTILE = {"arch": "os:system", "kwargs": {"command": "touch PWNED"}}
OOD_TINY = ["--ood", "uniform-noise", "--limit", "8", "--pseudo-negatives", "0", "--device", "cpu", "--quiet"]


def _cli(args: list[str]):
    return CliRunner().invoke(main, [str(a) for a in args])


_HASHES: dict[tuple[str, int, int, int, int], str] = {}


def _sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, computed again only when its inode, size, mtime or ctime moved.

    Any write to a file changes its ctime (which, unlike mtime, no user call can set back), and
    a replaced file is another inode: a file whose stat is unchanged holds the bytes it held.
    The cases protect the same files again and again; hashing them all twice per case was
    most of this module's time.
    """
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _HASHES[key]


def _digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (the lock file aside)."""
    return {
        str(p.relative_to(root)): _sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real results to protect and real files to corrupt, made once by the CLI itself."""
    d = tmp_path_factory.mktemp("corpus")
    run = d / "run"
    r = _cli(["train", *TINY, "--method", "baseline", "--epochs", "1", "--out", run])
    assert r.exit_code == 0, r.output
    ckpt = run / "checkpoint-last.pt"
    r = _cli(["attack", "--model", ckpt, "--limit", "20", "--out", d / "attacked", "--quiet"])
    assert r.exit_code == 0, r.output
    unsup = d / "unsup"
    r = _cli(["train-unsupervised", *UNSUP, "--image", IMG, "--out", unsup])
    assert r.exit_code == 0, r.output
    r = _cli(["ood", "--model", ckpt, *OOD_TINY, "--out", d / "ood"])
    assert r.exit_code == 0, r.output
    files = {
        "run": run,
        "ckpt": ckpt,
        "attacked": d / "attacked",
        "ood": d / "ood",
        "unsup": unsup,
        "unsup_ckpt": unsup / "checkpoint-last.pt",
    }

    state = load_checkpoint(ckpt)  # hostile metadata, with a valid content hash
    save_checkpoint({**state, "model": {**state["model"], **HOSTILE}}, d / "evil.pt")
    ustate = load_checkpoint(files["unsup_ckpt"])
    save_checkpoint({**ustate, "model": {**ustate["model"], **HOSTILE}}, d / "evil-unsup.pt")
    save_checkpoint({**state, "model": {**state["model"], "kwargs": {"evil": 1}}}, d / "kwargs.pt")
    meta = {k: v for k, v in state["model"].items() if k != "num_classes"}
    save_checkpoint({**state, "model": meta}, d / "no-classes.pt")
    save_checkpoint({**state, "model": {**state["model"], "arch": "resnet32"}}, d / "misfit.pt")
    flipped = dict(state)  # weights changed after the hash was stored: a damaged file
    flipped["model_state"] = {k: v.clone() for k, v in state["model_state"].items()}
    next(iter(flipped["model_state"].values())).view(-1)[:500].mul_(-3.0)
    torch.save(flipped, d / "flipped.pt")
    raw = bytearray(ckpt.read_bytes())  # 2,000 flipped bytes in the middle of the file
    mid = len(raw) // 2
    raw[mid : mid + 2000] = bytes(b ^ 0xFF for b in raw[mid : mid + 2000])
    (d / "bytes.pt").write_bytes(bytes(raw))
    save_checkpoint({k: v for k, v in ustate.items() if k != "config"}, d / "unsup-noconfig.pt")
    (d / "dir.pt").mkdir()
    for name in (
        "evil",
        "evil-unsup",
        "kwargs",
        "no-classes",
        "misfit",
        "flipped",
        "dir",
        "bytes",
        "unsup-noconfig",
    ):
        files[name] = d / f"{name}.pt"

    (d / "afile").write_text("x")
    files["afile"] = d / "afile"
    mnist = d / "mnist" / "MNIST" / "raw"  # an IDX file with a wrong magic number
    mnist.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # fmt: skip
        (mnist / name).write_bytes(b"\x00\x00\x09\x99" + bytes(64))
    files["bad_mnist"] = d / "mnist"

    mods = d / "usermods"  # user factories that fail in each way a user's code can
    mods.mkdir()
    (mods / "raises_on_import.py").write_text("raise RuntimeError('boom at import')\n")
    (mods / "syntax_error.py").write_text("def f(:\n")
    (mods / "factories.py").write_text(
        textwrap.dedent("""\
        def raises(num_classes=10):
            raise ValueError("factory refuses")

        def needs_arg(depth, num_classes=10):
            raise AssertionError("never called")
    """)
    )
    files["mods"] = mods

    user = d / "ood-inputs"  # user OOD sets a careless hand makes
    (user / "empty").mkdir(parents=True)
    (user / "junk").mkdir()
    (user / "junk" / "notes.txt").write_text("not an image")
    np.savez(user / "two-channels.npz", images=np.zeros((4, 28, 28, 2), np.uint8))
    np.savez(user / "big.npz", images=np.zeros((4, 32, 32), np.uint8))
    np.savez(user / "range.npz", images=np.full((4, 28, 28), 200.0, np.float32))
    files["user"] = user

    results = d / "results"  # the committed, measured Table 3 that a data-dir mistake must not replace
    results.mkdir()
    for name in ("table3.json", "table3.md", "table3.csv", "table3-seeds.csv"):
        shutil.copyfile(Path(__file__).resolve().parents[1] / "results" / name, results / name)
    files["results"] = results
    return files


@dataclass
class Case:
    """One bad input: the command line (``{name}`` = a world file) and what the error says."""

    id: str
    args: list[str]
    needle: str
    protect: tuple[str, ...] = ("run", "attacked", "unsup", "results", "ood")
    before: Callable[[dict[str, Path], Path], object] | None = field(default=None, repr=False)


def _hold_lock(world: dict[str, Path], tmp: Path) -> object:
    return _lock(world["run"])


CASES = [
    # --- checkpoints never choose code -------------------------------------------------------
    Case(
        "attack-hostile-model",
        ["attack", "--model", "{evil}", "--limit", "8", "--out", "{tmp}/a"],
        "names code as its architecture",
    ),
    Case(
        "attack-hostile-baseline",
        ["attack", "--model", "{ckpt}", "--baseline", "{evil}", "--limit", "8", "--out", "{tmp}/a"],
        "names code as its architecture",
    ),
    Case(
        "score-hostile-classifier",
        [
            "score",
            "--checkpoint",
            "{unsup_ckpt}",
            "--classifier",
            "{evil}",
            "--n",
            "10",
            "--splits",
            "2",
            "--device",
            "cpu",
        ],
        "names code as its architecture",
    ),
    Case(
        "generate-hostile",
        ["generate", "--checkpoint", "{evil-unsup}", "--n", "2", "--out", "{tmp}/g.png"],
        "names code as its architecture",
    ),
    Case(
        "score-hostile-generator",
        ["score", "--checkpoint", "{evil-unsup}", "--classifier", "{ckpt}", "--n", "10", "--splits", "2"],
        "names code as its architecture",
    ),
    Case(
        "checkpoint-unknown-kwarg",
        ["attack", "--model", "{kwargs}", "--limit", "8", "--out", "{tmp}/a"],
        "takes no keyword 'evil'",
    ),
    Case(
        "checkpoint-missing-key",
        ["attack", "--model", "{no-classes}", "--limit", "8", "--out", "{tmp}/a"],
        "model.num_classes",
    ),
    Case(
        "checkpoint-corrupt",
        ["attack", "--model", "{flipped}", "--limit", "8", "--out", "{tmp}/a"],
        "corrupt",
    ),
    Case(
        "checkpoint-flipped-bytes",
        ["attack", "--model", "{bytes}", "--limit", "8", "--out", "{tmp}/a"],
        "{bytes}",
    ),
    Case(
        "generate-foreign-unsup",
        ["generate", "--checkpoint", "{unsup-noconfig}", "--n", "2", "--out", "{tmp}/g.png"],
        "lacks config",
    ),
    Case(
        "checkpoint-is-a-folder",
        ["attack", "--model", "{dir}", "--limit", "8", "--out", "{tmp}/a"],
        "is a directory",
    ),
    Case(
        "checkpoint-weights-misfit",
        ["attack", "--model", "{misfit}", "--limit", "8", "--out", "{tmp}/a"],
        "do not fit",
    ),
    Case(
        "score-classifier-missing",
        [
            "score",
            "--checkpoint",
            "{unsup_ckpt}",
            "--classifier",
            "{tmp}/no.pt",
            "--n",
            "10",
            "--splits",
            "2",
        ],
        "does not exist",
    ),
    Case(
        "score-classifier-misfit",
        ["score", "--checkpoint", "{unsup_ckpt}", "--classifier", "{misfit}", "--n", "10", "--splits", "2"],
        "do not fit",
    ),
    # --- runs are never lost -------------------------------------------------------------------
    Case("train-into-existing-run", ["train", *TINY, "--epochs", "1", "--out", "{run}"], "--overwrite"),
    Case(
        "train-resume-and-overwrite",
        ["train", *TINY, "--epochs", "2", "--out", "{run}", "--resume", "--overwrite"],
        "give one of them",
    ),
    Case("train-epochs-0", ["train", *TINY, "--epochs", "0", "--out", "{run}"], "--epochs"),
    Case(
        "train-resume-epochs-done",
        ["train", *TINY, "--method", "baseline", "--epochs", "1", "--out", "{run}", "--resume"],
        "already run 1 epochs",
    ),
    Case(
        "train-resume-other-seed",
        [
            "train",
            *TINY,
            "--method",
            "baseline",
            "--epochs",
            "2",
            "--seed",
            "1",
            "--out",
            "{run}",
            "--resume",
        ],
        "seed (run: 0, asked: 1)",
    ),
    Case(
        "train-resume-other-lr",
        [
            "train",
            *TINY,
            "--method",
            "baseline",
            "--epochs",
            "2",
            "--lr",
            "0.01",
            "--out",
            "{run}",
            "--resume",
        ],
        "lr (run: 0.001, asked: 0.01)",
    ),
    Case(
        "train-resume-other-limit",
        [
            "train",
            *TINY[:4],
            "--limit-train",
            "60",
            *TINY[6:],
            "--method",
            "baseline",
            "--epochs",
            "2",
            "--out",
            "{run}",
            "--resume",
        ],
        "limit_train (run: 100, asked: 60)",
    ),
    Case(
        "train-resume-other-method",
        ["train", *TINY, "--epochs", "2", "--out", "{run}", "--resume"],
        "method (run: 'baseline', asked: 'winn')",
    ),
    Case(
        "train-resume-other-arch",
        [
            "train",
            *TINY,
            "--method",
            "baseline",
            "--arch",
            "resnet32",
            "--epochs",
            "2",
            "--out",
            "{run}",
            "--resume",
        ],
        "arch",
    ),
    Case(
        "train-concurrent",
        ["train", *TINY, "--epochs", "2", "--out", "{run}", "--resume", "--method", "baseline"],
        "in use by another robust-winn process",
        before=_hold_lock,
    ),
    Case(
        "attack-into-existing-attack",
        ["attack", "--model", "{ckpt}", "--limit", "8", "--out", "{attacked}"],
        "already holds results (attack-record.json, attack-table.csv, attack-table.md, attack-curve.csv, "
        "attack-curve.png, attack-calibration.csv, attack-reliability.png); pass --overwrite to replace "
        "it",  # attack has no --resume to suggest
    ),
    Case(
        "quickstart-into-existing-results",
        ["quickstart", "--out", "{attacked}", "--device", "cpu"],
        "already holds results (attack-record.json); pass --overwrite to replace it",
    ),
    Case(
        "unsup-into-existing-run",
        ["train-unsupervised", *UNSUP, "--image", IMG, "--out", "{unsup}"],
        "--overwrite",
    ),
    Case(
        "unsup-resume-other-seed",
        ["train-unsupervised", *UNSUP, "--image", IMG, "--seed", "3", "--out", "{unsup}", "--resume"],
        "seed (run: 0, asked: 3)",
    ),
    Case(
        "generate-existing-out",
        ["generate", "--checkpoint", "{unsup_ckpt}", "--n", "2", "--out", "{attacked}/attack-curve.png"],
        "exists; pass --overwrite",
    ),
    Case(
        "reproduce-typo-data-dir",
        [
            "reproduce",
            "table3",
            "--data-dir",
            "{tmp}/typo",
            "--out",
            "{results}",
            "--runs-dir",
            "{tmp}/runs",
            "--arch",
            "vanilla",
            "--seeds",
            "0",
            "--device",
            "cpu",
        ],
        "typo does not exist",
    ),
    Case(
        "reproduce-data-dir-without-mnist",
        [
            "reproduce",
            "table3",
            "--data-dir",
            "{tmp}",
            "--out",
            "{results}",
            "--runs-dir",
            "{tmp}/runs",
            "--arch",
            "vanilla",
            "--device",
            "cpu",
        ],
        "--replace-measured",
    ),
    # --- unwritable outputs, checked before any work ---------------------------------------------
    Case("train-out-is-a-file", ["train", *TINY, "--epochs", "1", "--out", "{afile}"], "is a file"),
    Case(
        "train-out-under-a-file",
        ["train", *TINY, "--epochs", "1", "--out", "{afile}/sub"],
        "cannot be written",
    ),
    Case(
        "train-out-read-only",
        ["train", *TINY, "--epochs", "1", "--out", "/proc/robust_winn_run"],
        "cannot be written",
    ),
    Case(
        "attack-out-under-a-file",
        ["attack", "--model", "{ckpt}", "--limit", "8", "--out", "{afile}/a"],
        "cannot be written",
    ),
    Case(
        "unsup-out-is-a-file", ["train-unsupervised", *UNSUP, "--image", IMG, "--out", "{afile}"], "is a file"
    ),
    Case(
        "generate-out-unknown-type",
        ["generate", "--checkpoint", "{unsup_ckpt}", "--n", "2", "--out", "{tmp}/grid.xyz"],
        "unknown image type '.xyz'",
    ),
    Case(
        "generate-out-under-a-file",
        ["generate", "--checkpoint", "{unsup_ckpt}", "--n", "2", "--out", "{afile}/g.png"],
        "afile is a file",
    ),
    Case(
        "generate-save-under-a-file",
        ["generate", "--checkpoint", "{unsup_ckpt}", "--n", "2", "--save", "{afile}/x.pt"],
        "afile is a file",
    ),
    Case("quickstart-out-is-a-file", ["quickstart", "--out", "{afile}", "--device", "cpu"], "is a file"),
    Case(
        "reproduce-out-is-a-file",
        [
            "reproduce",
            "table3",
            "--data-dir",
            "{tmp}",
            "--out",
            "{afile}",
            "--runs-dir",
            "{tmp}/runs",
            "--arch",
            "vanilla",
            "--seeds",
            "0",
        ],
        "{afile}",
    ),
    # --- bad numbers ---------------------------------------------------------------------------
    Case("train-alpha-nan", ["train", *TINY, "--alpha", "nan", "--out", "{tmp}/o"], "not a finite number"),
    Case("train-lr-inf", ["train", *TINY, "--lr", "inf", "--out", "{tmp}/o"], "not a finite number"),
    Case("train-seed-huge", ["train", *TINY, "--seed", str(2**70), "--out", "{tmp}/o"], "--seed"),
    Case("train-seed-negative", ["train", *TINY, "--seed", "-1", "--out", "{tmp}/o"], "--seed"),
    Case("train-device-foo", ["train", *TINY, "--device", "foo", "--out", "{tmp}/o"], "is not a device"),
    Case("quickstart-device-foo", ["quickstart", "--device", "foo", "--out", "{tmp}/o"], "is not a device"),
    Case(
        "attack-device-cuda",
        ["attack", "--model", "{ckpt}", "--device", "cuda:3", "--out", "{tmp}/a"],
        "cuda:3",
    ),
    Case(
        "attack-eps-nan",
        ["attack", "--model", "{ckpt}", "--eps", "nan", "--out", "{tmp}/a"],
        "not a finite number",
    ),
    Case(
        "attack-pgd-negative-alpha",
        ["attack", "--model", "{ckpt}", "--attack", "pgd:alpha=-0.01", "--out", "{tmp}/a"],
        "alpha",
    ),
    Case(
        "attack-pgd-nan-alpha",
        ["attack", "--model", "{ckpt}", "--attack", "pgd:alpha=nan", "--out", "{tmp}/a"],
        "alpha",
    ),
    Case(
        "attack-pgd-steps-abc",
        ["attack", "--model", "{ckpt}", "--attack", "pgd:steps=abc", "--out", "{tmp}/a"],
        "steps",
    ),
    Case(
        "attack-unknown",
        ["attack", "--model", "{ckpt}", "--attack", "fgsn", "--out", "{tmp}/a"],
        "unknown attack 'fgsn'",
    ),
    Case(
        "unsup-seed-huge",
        ["train-unsupervised", *UNSUP, "--image", IMG, "--seed", str(2**64), "--out", "{tmp}/u"],
        "--seed",
    ),
    # --- foreign data ----------------------------------------------------------------------------
    Case(
        "idx-wrong-magic",
        [
            "attack",
            "--model",
            "{ckpt}",
            "--dataset",
            "mnist",
            "--data-dir",
            "{bad_mnist}",
            "--limit",
            "8",
            "--out",
            "{tmp}/a",
        ],
        "magic",
    ),
    Case(
        "data-dir-missing",
        ["train", *TINY[2:], "--dataset", "mnist", "--data-dir", "{tmp}/none", "--out", "{tmp}/o"],
        "--download",
    ),
    # --- OOD sets (robust-winn ood) ----------------------------------------------------------------
    Case(
        "ood-hostile-model",
        ["ood", "--model", "{evil}", *OOD_TINY, "--out", "{tmp}/o"],
        "names code as its architecture",
    ),
    Case(
        "ood-unknown-set",
        ["ood", "--model", "{ckpt}", *OOD_TINY[2:], "--ood", "fashion-mnsit", "--out", "{tmp}/o"],
        "unknown OOD set 'fashion-mnsit'",
    ),
    Case(
        "ood-empty-folder",
        ["ood", "--model", "{ckpt}", *OOD_TINY[2:], "--ood", "folder:{user}/empty", "--out", "{tmp}/o"],
        "holds no image files",
    ),
    Case(
        "ood-non-image-file",
        ["ood", "--model", "{ckpt}", *OOD_TINY[2:], "--ood", "folder:{user}/junk", "--out", "{tmp}/o"],
        "notes.txt is not an image file",
    ),
    Case(
        "ood-wrong-channels",
        [
            "ood",
            "--model",
            "{ckpt}",
            *OOD_TINY[2:],
            "--ood",
            "npz:{user}/two-channels.npz",
            "--out",
            "{tmp}/o",
        ],
        "2 channels cannot be converted",
    ),
    Case(
        "ood-size-mismatch-no-resize",
        [
            "ood",
            "--model",
            "{ckpt}",
            *OOD_TINY[2:],
            "--ood",
            "npz:{user}/big.npz",
            "--no-resize",
            "--out",
            "{tmp}/o",
        ],
        "image is 32x32 but the model takes 28x28",
    ),  # fmt: skip
    Case(
        "ood-float-out-of-range",
        ["ood", "--model", "{ckpt}", *OOD_TINY[2:], "--ood", "npz:{user}/range.npz", "--out", "{tmp}/o"],
        "float images must lie in [0, 1]",
    ),
    Case(
        "ood-npz-missing",
        ["ood", "--model", "{ckpt}", *OOD_TINY[2:], "--ood", "npz:{tmp}/none.npz", "--out", "{tmp}/o"],
        "does not exist",
    ),
    Case(
        "ood-adv-without-eps",
        ["ood", "--model", "{ckpt}", *OOD_TINY[2:], "--ood", "adv:fgsm", "--out", "{tmp}/o"],
        "adv:ATTACK:EPS",
    ),
    Case(
        "ood-into-existing-results",
        ["ood", "--model", "{ckpt}", *OOD_TINY, "--out", "{ood}"],
        "pass --overwrite",
    ),
    Case("ood-out-is-a-file", ["ood", "--model", "{ckpt}", *OOD_TINY, "--out", "{afile}"], "is a file"),
    # --- user factories that fail ---------------------------------------------------------------
    Case(
        "factory-raises-on-import",
        ["train", *TINY, "--arch", "raises_on_import:f", "--out", "{tmp}/o"],
        "raises_on_import.py:1",
    ),
    Case(
        "factory-syntax-error",
        ["train", *TINY, "--arch", "syntax_error:f", "--out", "{tmp}/o"],
        "syntax_error.py:1",
    ),
    Case(
        "factory-raises",
        ["train", *TINY, "--arch", "factories:raises", "--out", "{tmp}/o"],
        "factory refuses (",
    ),
    Case(
        "factory-needs-argument",
        ["train", *TINY, "--arch", "factories:needs_arg", "--out", "{tmp}/o"],
        "needs argument(s) depth",
    ),
    Case(
        "factory-missing-module",
        ["train", *TINY, "--arch", "no_such_module:f", "--out", "{tmp}/o"],
        "no module named 'no_such_module'",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(
    case: Case, world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(world["mods"]))
    names = {**{k: str(v) for k, v in world.items()}, "tmp": str(tmp_path)}
    args = [a.format(**names) for a in case.args]
    needle = case.needle.format(**names)
    before = {k: _digest(world[k]) for k in case.protect}
    guard = case.before(world, tmp_path) if case.before else None
    if guard is not None:
        with guard:  # type: ignore[attr-defined]
            r = _cli(args)
    else:
        r = _cli(args)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert r.exit_code == 2, (r.output, r.exception)
    assert len(errors) == 1 and needle in errors[0], r.output
    assert "Traceback" not in r.output
    assert not any(cwd.iterdir()), sorted(os.listdir(cwd))  # nothing created (no PWNED)
    assert not Path("PWNED").exists()
    for k in case.protect:
        assert _digest(world[k]) == before[k], f"{k} changed"


def test_results_of_a_case_that_succeeds_are_kept_apart(world: dict[str, Path], tmp_path: Path) -> None:
    """An attack into a training run's folder writes attack-* files and leaves the run alone."""
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    before = _digest(run)
    r = _cli(["attack", "--model", run / "checkpoint-last.pt", "--limit", "8", "--out", run, "--quiet"])
    assert r.exit_code == 0, r.output
    after = _digest(run)
    assert {k: after[k] for k in before} == before
    assert "attack-record.json" in after


def test_overwrite_replaces_and_resume_continues(world: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    (run / "checkpoint-last.pt.abc123.tmp").write_bytes(bytes(10))  # left by a killed write
    r = _cli(["train", *TINY, "--method", "baseline", "--epochs", "2", "--out", run, "--resume"])
    assert r.exit_code == 0, r.output
    assert not list(run.glob("*.tmp")) and not (run / LOCK_NAME).exists()
    assert json.loads((run / "record.json").read_text())["epochs_run"] == 2
    r = _cli(["train", *TINY, "--method", "baseline", "--epochs", "1", "--out", run, "--overwrite"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "record.json").read_text())["epochs_run"] == 1


def test_a_trusted_import_string_is_still_loaded(world: dict[str, Path], tmp_path: Path) -> None:
    """The rule refuses untrusted code only: naming the factory with --arch loads the checkpoint."""
    state = load_checkpoint(world["ckpt"])
    from user_models import tiny

    from robust_winn.models import Introspective

    model = Introspective(tiny(), 10)
    meta = {**state["model"], "arch": "user_models:tiny"}
    save_checkpoint({**state, "model": meta, "model_state": model.state_dict()}, tmp_path / "u.pt")
    r = _cli(["attack", "--model", tmp_path / "u.pt", "--limit", "8", "--out", tmp_path / "a", "--quiet"])
    assert r.exit_code == 2 and "--arch user_models:tiny" in r.output
    r = _cli(
        [
            "attack",
            "--model",
            tmp_path / "u.pt",
            "--arch",
            "user_models:tiny",
            "--limit",
            "8",
            "--out",
            tmp_path / "a",
            "--quiet",
        ]
    )
    assert r.exit_code == 0, r.output


def test_registry_refuses_unknown_keywords() -> None:
    with pytest.raises(ModelSpecError, match="takes no keyword 'widht'"):
        create_model("vanilla", widht=999)


def test_a_bug_keeps_its_traceback(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal KeyError is not a user error: exit 1 with the exception, not 'Error: ...'."""
    import robust_winn.attacks.harness as harness

    def broken(*a, **k):
        raise KeyError("model_state")

    monkeypatch.setattr(harness, "evaluate", broken)
    monkeypatch.setattr("robust_winn.attacks.evaluate", broken)
    r = _cli(["attack", "--model", world["ckpt"], "--limit", "8", "--out", tmp_path / "a"])
    assert r.exit_code == 1 and isinstance(r.exception, KeyError)
    assert "Error:" not in r.output
