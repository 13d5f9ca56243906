"""`reproduce defences` (issue 13 §2) end to end on tiny runs: records in, table out.

Two methods x two seeds on 100 images of the bundled MNIST sample, one epoch, 2-step training
attacks, an attack ladder cut to a few steps on 20 test images with a 10-image subset (~3 s).
The table is checked against the per-seed numbers and the run records (mean and sample std
computed here), the subset's cells and indices, the anchors, the refusal to replace measured
rows, the reuse of Table 2's runs, the APGD-DLR registry entry and the command line.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from robust_winn.attacks.registry import build_attack
from robust_winn.cli.main import main
from robust_winn.config import AdversarialConfig, SynthesisConfig
from robust_winn.data.datasets import load_dataset
from robust_winn.errors import BadValueError, RunDirError
from robust_winn.experiments.defences import ANCHOR, DefencesSpec, LadderAttack, reproduce_defences
from robust_winn.experiments.presets import DEFENCES_SUBSET_SEED
from robust_winn.runtime.checkpoint import load_classifier

REPO = Path(__file__).resolve().parents[1]
LADDER = (
    LadderAttack("fgsm", "fgsm"),
    LadderAttack("pgd", "pgd:steps=2,restarts=2"),
    LadderAttack("apgd-ce", "apgd:steps=2", subset=True),
    LadderAttack("apgd-dlr", "apgd-dlr:steps=2,targets=2", subset=True),
    LadderAttack("square", "square:queries=20", subset=True),
)
NUMBERS = ["clean_error", "fgsm", "pgd", "apgd-ce", "apgd-dlr", "square", "worst_case", "worst_case_full_set"]
N_TEST, SUBSET = 20, 10


def _spec(root: Path, **kw: Any) -> DefencesSpec:
    base: dict[str, Any] = {
        "methods": ("baseline", "pgd-at"),
        "seeds": (0, 1),
        "epochs": 1,
        "synth_max_steps": 2,
        "dataset": "sample",
        "eps": (0.05, 0.3),
        "ladder": LADDER,
        "subset_size": SUBSET,
        "limit_train": 100,
        "limit_test": N_TEST,
        "runs_root": str(root / "runs"),
        "device": "cpu",
        "progress": False,
        "adversarial": AdversarialConfig(steps=2, step_size=0.15),
        "extra": {
            "val_size": 100,
            "batch_size": 50,
            "synthesis": SynthesisConfig(per_class=2, init_per_class=2, max_steps=2),
        },
    }
    return DefencesSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("defences")
    df = reproduce_defences(_spec(root), out_dir=root / "res", command="robust-winn reproduce defences")
    return root, df


def _ours(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.source == "ours"]


def test_rows_are_mean_and_sample_std_over_the_seeds(table: tuple[Path, pd.DataFrame]) -> None:
    root, df = table
    seeds = pd.read_csv(root / "res" / "defences-seeds.csv")
    written = pd.read_csv(root / "res" / "defences.csv")
    assert len(_ours(df)) == 4 and len(seeds) == 8
    for frame in (df, written):
        for r in _ours(frame).to_dict("records"):
            mine = seeds[(seeds.method == r["method"]) & (seeds.eps == r["eps"])]
            assert sorted(mine.seed) == [0, 1] and r["status"] == "run" and str(r["seeds"]) == "0 1"
            for k in NUMBERS:
                assert r[f"{k}_mean"] == pytest.approx(statistics.mean(mine[k]))
                assert r[f"{k}_std"] == pytest.approx(statistics.stdev(mine[k]))


def test_per_seed_numbers_come_from_the_checkpoints_and_records(table: tuple[Path, pd.DataFrame]) -> None:
    """Clean error re-measured on each best checkpoint; costs are the training records'."""
    root, df = table
    seeds = pd.read_csv(root / "res" / "defences-seeds.csv")
    x, y = next(load_dataset("sample", data_dir="unused", limit_test=N_TEST).test.batches(N_TEST))
    for s in seeds.to_dict("records"):
        run = Path(s["run"])
        assert run.parent == root / "runs" / "defences"
        model, _ = load_classifier(run / "checkpoint-best.pt")
        with torch.no_grad():
            assert s["clean_error"] == pytest.approx(100 * float((model(x).argmax(1) != y).float().mean()))
        rec = json.loads((run / "record.json").read_text())
        assert rec["config"]["method"] == s["method"] and rec["seed"] == s["seed"]
        assert s["train_images"] == rec["cost"]["train_images"]
        assert s["adv_image_steps"] == rec["cost"].get("adv_image_steps", 0)
        assert s["train_min"] == pytest.approx(rec["wall_time_s"] / 60)
        # the worst case takes every attack on the images it saw, and the clean mistakes
        assert s["worst_case"] >= max(s["clean_error_subset"], s["apgd-ce"], s["apgd-dlr"], s["square"])
        assert s["worst_case_full_set"] >= max(s["clean_error"], s["fgsm"], s["pgd"])
    ours = _ours(df).set_index(["method", "eps"])
    for method, passes in (("baseline", 100), ("pgd-at", 100 + 100 * 2)):  # 2 attack steps per image
        row = ours.loc[(method, 0.3)]
        assert row["image_passes"] == passes and row["passes_vs_baseline"] == pytest.approx(passes / 100)
        mins = seeds[(seeds.method == method) & (seeds.eps == 0.3)].train_min
        assert row["train_min_mean"] == pytest.approx(statistics.mean(mins))


def test_subset_cells_and_indices_are_recorded(table: tuple[Path, pd.DataFrame]) -> None:
    root, df = table
    assert set(_ours(df).subset_cells) == {"apgd-ce apgd-dlr square worst_case"}
    assert set(_ours(df).subset_size) == {SUBSET} and set(_ours(df).n_test) == {N_TEST}
    meta = json.loads((root / "res" / "defences.json").read_text())
    want = torch.randperm(N_TEST, generator=torch.Generator().manual_seed(DEFENCES_SUBSET_SEED))[:SUBSET]
    assert meta["subset_indices"] == sorted(want.tolist()) and meta["subset_seed"] == DEFENCES_SUBSET_SEED
    assert [a["subset"] for a in meta["ladder"]] == [False, False, True, True, True]
    header = next(
        line for line in (root / "res" / "defences.md").read_text().splitlines() if line.startswith("| eps |")
    )
    assert "| fgsm |" in header and "| pgd |" in header and "| clean error |" in header
    for cell in ("apgd-ce †", "apgd-dlr †", "square †", "worst case †"):
        assert cell in header


def test_anchors_are_beside_ours_and_marked_not_ours(table: tuple[Path, pd.DataFrame]) -> None:
    root, df = table
    anchors = df[df.source == ANCHOR].set_index("method")
    assert len(anchors) == 2 and (anchors.status == ANCHOR).all() and (anchors.eps == 0.3).all()
    madry = anchors.loc[next(m for m in anchors.index if m.startswith("Madry"))]
    trades = anchors.loc[next(m for m in anchors.index if m.startswith("TRADES"))]
    assert madry.worst_case_mean == pytest.approx(11.50) and madry.clean_error_mean == pytest.approx(1.47)
    assert trades.worst_case_mean == pytest.approx(7.19) and trades.clean_error_mean == pytest.approx(0.52)
    assert "CNN" in madry.arch and "SmallCNN" in trades.arch and "Croce & Hein 2020" in madry.notes
    md = (root / "res" / "defences.md").read_text()
    assert md.count(f"| {ANCHOR} |") >= 2 and "not ours" in md


def test_measured_rows_are_not_replaced_by_rows_not_run(
    table: tuple[Path, pd.DataFrame],
    tmp_path: Path,
) -> None:
    root, _ = table
    res = tmp_path / "res"
    shutil.copytree(root / "res", res)
    before = {p.name: p.read_bytes() for p in res.iterdir()}
    (tmp_path / "nodata").mkdir()
    lost = _spec(tmp_path, dataset="mnist", data_dir=str(tmp_path / "nodata"))
    with pytest.raises(RunDirError, match="measured results that this run would not measure again"):
        reproduce_defences(lost, out_dir=res, command="t")
    assert {p.name: p.read_bytes() for p in res.iterdir()} == before
    assert not (tmp_path / "runs").exists()  # refused before any work
    df = reproduce_defences(lost, out_dir=res, command="t", replace_measured=True)
    assert (_ours(df).status == "not run here (data unavailable offline)").all()
    assert _ours(df).clean_error_mean.isna().all() and (df.source == ANCHOR).sum() == 2
    assert not (tmp_path / "runs").exists()


def test_identical_table2_runs_are_reused(table: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    """A finished baseline run with the same settings under ROOT/table2 is read, not retrained;
    without a subset no cell is marked."""
    root, df = table
    shared = tmp_path / "runs" / "table2" / "sample-vanilla-baseline-s0"
    shutil.copytree(root / "runs" / "defences" / "sample-vanilla-baseline-s0", shared)
    before = (shared / "checkpoint-last.pt").stat().st_mtime_ns
    again = reproduce_defences(
        _spec(tmp_path, methods=("baseline",), seeds=(0,), subset_size=None),
        out_dir=tmp_path / "res",
        command="t",
    )
    # no run of our own was trained: only the attack rows were kept beside the runs
    assert [f.name for f in (tmp_path / "runs" / "defences").iterdir()] == ["attacks"]
    assert (shared / "checkpoint-last.pt").stat().st_mtime_ns == before
    seeds = pd.read_csv(tmp_path / "res" / "defences-seeds.csv")
    assert set(seeds.run) == {str(shared)}
    ours = _ours(again)
    assert ours.subset_size.isna().all() and (ours.subset_cells.fillna("") == "").all()
    first = pd.read_csv(root / "res" / "defences-seeds.csv")
    first = first[(first.method == "baseline") & (first.seed == 0)]
    assert list(seeds.clean_error) == list(first.clean_error)  # the same checkpoint
    assert "†" not in (tmp_path / "res" / "defences.md").read_text().split("| eps |")[1].splitlines()[0]


def test_each_winn_variant_trains_in_its_own_folder(tmp_path: Path) -> None:
    """WINN at alpha 0.01 and 0.1 are one method with two weights: two folders, two records."""
    df = reproduce_defences(
        _spec(
            tmp_path,
            methods=("winn", "winn-alpha0.1"),
            seeds=(0,),
            eps=(0.3,),
            ladder=LADDER[:1],
            subset_size=None,
        ),
        out_dir=tmp_path / "res",
        command="t",
    )
    assert list(_ours(df).method) == ["winn", "winn-alpha0.1"]
    for name, alpha in (("winn", 0.01), ("winn-alpha0.1", 0.1)):
        run = tmp_path / "runs" / "defences" / f"sample-vanilla-{name}-s0"
        rec = json.loads((run / "record.json").read_text())
        assert rec["config"]["method"] == "winn" and rec["config"]["alpha"] == pytest.approx(alpha)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"methods": ("bogus",)}, "unknown method 'bogus'"),
        ({"methods": ("winn", "winn")}, "give each method once"),
        ({"eps": (0.3, 0.3)}, "give each eps"),
        ({"eps": (float("nan"),)}, "eps must be"),
        ({"subset_size": 0}, "subset_size must be"),
        ({"seeds": (0, -1)}, "seed must be >= 0"),
        ({"ladder": (LadderAttack("a", "pgd:steps=0"),)}, "pgd: steps must be >= 1"),
        ({"ladder": (LadderAttack("a", "apgd", subset=True),)}, "at least one attack of the ladder"),
    ],
)
def test_bad_specs_are_refused_before_any_work(tmp_path: Path, change: dict[str, Any], match: str) -> None:
    with pytest.raises(BadValueError, match=match):
        reproduce_defences(_spec(tmp_path, **change), out_dir=tmp_path / "res", command="t")
    assert not (tmp_path / "res").exists() and not (tmp_path / "runs").exists()


def test_apgd_dlr_entry_is_targeted_by_default_and_checks_its_targets() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 10))
    kw = {"eps": 0.1, "num_classes": 10, "image_channels": 1}
    atk = build_attack("apgd-dlr", model, **kw)
    assert type(atk).__name__ == "APGDT" and atk.n_target_classes == 9 and atk.steps == 100
    assert build_attack("apgd-dlr:targets=3", model, **kw).n_target_classes == 3
    untargeted = build_attack("apgd-dlr:targeted=false", model, **kw)
    assert type(untargeted).__name__ == "APGD" and untargeted.loss == "dlr"
    with pytest.raises(BadValueError, match="targets must be <= 9"):
        build_attack("apgd-dlr:targets=10", model, **kw)
    with pytest.raises(BadValueError, match="targeted attack only"):
        build_attack("apgd-dlr:targeted=false,targets=2", model, **kw)
    with pytest.raises(BadValueError, match="at least 4 classes"):
        build_attack("apgd-dlr", model, eps=0.1, num_classes=3, image_channels=1)


def test_cli_help_explains_every_option() -> None:
    r = CliRunner().invoke(main, ["reproduce", "defences", "--help"])
    assert r.exit_code == 0, r.output
    for opt in (
        "--method",
        "--preset",
        "--seeds",
        "--epochs",
        "--eps",
        "--dataset",
        "--arch",
        "--data-dir",
        "--runs-root",
        "--out",
        "--device",
        "--subset-size",
        "--limit-train",
        "--limit-test",
        "--replace-measured",
        "--no-progress",
        "pgd-at",
        "trades",
        "winn-at",
        "winn-alpha0.1",
    ):
        assert opt in r.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--eps", "2"], "Error: Invalid value for '--eps'"),
        (["--eps", "nan"], "Error: Invalid value for '--eps'"),
        (["--method", "bogus"], "Error: Invalid value for '--method'"),
        (["--seeds", "a,b"], "Error: Invalid value for '--seeds'"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], match: str) -> None:
    r = CliRunner().invoke(main, ["reproduce", "defences", *args, "--out", str(tmp_path / "res")])
    assert r.exit_code == 2, r.output
    assert r.output.startswith(match) and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()


def test_cli_passes_its_options(tmp_path: Path) -> None:
    """Methods, eps, seeds and folders reach the driver (no training: MNIST is not in the folder)."""
    (tmp_path / "nodata").mkdir()
    r = CliRunner().invoke(
        main,
        [
            "reproduce",
            "defences",
            "--method",
            "winn",
            "--method",
            "trades",
            "--eps",
            "0.2",
            "--seeds",
            "3,4",
            "--data-dir",
            str(tmp_path / "nodata"),
            "--runs-root",
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "res"),
            "--device",
            "cpu",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "res" / "defences.csv")
    ours = _ours(df)
    assert list(ours.method) == ["winn", "trades"] and set(ours.eps) == {0.2}
    assert (ours.status == "not run here (data unavailable offline)").all()
    meta = json.loads((tmp_path / "res" / "defences.json").read_text())
    assert meta["seeds"] == [3, 4] and meta["command"].startswith("robust-winn")


@pytest.mark.slow
def test_gpu_script_smoke_runs_on_the_cpu(tmp_path: Path) -> None:
    """benchmarks/gpu_defences.py --smoke: the GPU budget's code path on the CPU (~25 s; its own
    process, since --smoke flushes denormal floats process-wide)."""
    script = str(REPO / "benchmarks" / "gpu_defences.py")
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, script, str(out), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "| 0.3 | winn-at | ours | resnet32 |" in r.stdout and "wall time:" in r.stdout
    ours = _ours(pd.read_csv(out / "defences.csv"))
    assert list(ours.method) == ["baseline", "winn", "pgd-at", "trades", "winn-at"]
    assert set(ours.arch) == {"resnet32"} and (ours.status == "run").all() and set(ours.eps) == {0.3}
    bad = subprocess.run(
        [sys.executable, script, str(tmp_path / "x"), "--smoke", "--epochs", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["Error: epochs must be >= 1, got 0"]


def test_budgets_differ_only_where_declared_and_keep_the_standard_eps() -> None:
    """The cpu budget: fewer epochs and training steps, its cuts on the subset; the same eps and columns."""
    full, cpu = DefencesSpec.from_budget("full"), DefencesSpec.from_budget("cpu")
    assert full == DefencesSpec()  # the defaults are the full budget, declared once
    assert cpu.budget == "cpu" and cpu.epochs < full.epochs and len(cpu.seeds) >= 3  # the issue: >= 3 seeds
    assert cpu.adversarial.eps == full.adversarial.eps == 0.3
    assert cpu.adversarial.steps * cpu.adversarial.step_size >= cpu.adversarial.eps  # can reach the rim
    assert [a.name for a in cpu.ladder] == [a.name for a in full.ladder]
    assert [a.name for a in cpu.ladder if not a.subset] == ["fgsm"]
    assert DefencesSpec.from_budget("cpu", epochs=7, seeds=(5,)).epochs == 7
    with pytest.raises(BadValueError, match="unknown budget 'gpu'; choose from full, cpu"):
        DefencesSpec.from_budget("gpu")


def test_cli_preset_reaches_the_record_and_options_override_it(tmp_path: Path) -> None:
    (tmp_path / "nodata").mkdir()
    base = ["reproduce", "defences", "--method", "pgd-at", "--data-dir", str(tmp_path / "nodata")]
    base += ["--runs-root", str(tmp_path / "runs"), "--device", "cpu", "--no-progress"]
    r = CliRunner().invoke(
        main, [*base, "--preset", "cpu", "--out", str(tmp_path / "a")], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "a" / "defences.json").read_text())
    cpu = DefencesSpec.from_budget("cpu")
    assert meta["budget"] == "cpu" and meta["epochs"] == cpu.epochs and meta["seeds"] == list(cpu.seeds)
    assert meta["training_attack"]["steps"] == cpu.adversarial.steps
    assert [x["attack"] for x in meta["ladder"]][-1] == "square:queries=1000"
    assert "Budget: cpu" in (tmp_path / "a" / "defences.md").read_text()
    args = [*base, "--preset", "cpu", "--epochs", "3", "--seeds", "4", "--subset-size", "0"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "b" / "defences.json").read_text())
    assert meta["epochs"] == 3 and meta["seeds"] == [4] and meta["subset_size"] is None
    r = CliRunner().invoke(main, [*base, "--preset", "gpu", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and r.output.startswith("Error: Invalid value for '--preset'")


def test_attack_rows_are_reused_only_while_their_key_matches(
    table: tuple[Path, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second command with the same settings attacks nothing and writes the same table; other eps attack."""
    import robust_winn.experiments.defences as defences

    root, first = table
    calls: list[str] = []
    real = defences.evaluate
    monkeypatch.setattr(defences, "evaluate", lambda *a, **k: calls.append("x") or real(*a, **k))
    again = reproduce_defences(
        _spec(root), out_dir=tmp_path / "res", command="robust-winn reproduce defences"
    )
    assert calls == []
    pd.testing.assert_frame_equal(again, first)
    meta = json.loads((tmp_path / "res" / "defences.json").read_text())
    assert len(meta["attacks_reused"]) == 4  # 2 methods x 2 seeds
    cached = sorted((root / "runs" / "defences" / "attacks").glob("*.json"))
    assert len(cached) == 4
    reproduce_defences(_spec(root, eps=(0.1,)), out_dir=tmp_path / "other", command="x")
    assert len(calls) == 8  # every checkpoint again, full set and subset
    assert len(list(cached[0].parent.glob("*.json"))) == 8  # both settings kept
    cached[0].write_text("{not json")  # a broken file is recomputed, not trusted
    third = reproduce_defences(_spec(root), out_dir=tmp_path / "third", command="x")
    assert len(calls) == 10
    pd.testing.assert_frame_equal(third, first)
