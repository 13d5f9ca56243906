"""The table drivers end to end on tiny runs: records in, tables out, runs reused."""

import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_overrides, tiny_synthesis

from robust_winn.experiments import ablations
from robust_winn.experiments.ablations import AblationSpec, Variant, run_ablations
from robust_winn.experiments.effect_map import run_effect_map
from robust_winn.experiments.table2 import GridSpec, reproduce_table2

SMOKE = ["--seeds", "0,1", "--epochs", "1", "--synth-max-steps", "2", "--device", "cpu", "--no-progress"]
# conftest's tiny runs: 100 images, 2 pseudo-negatives per class (the CLI cannot lower its 100
# initial ones per class), at most 2 synthesis steps.
TINY = tiny_overrides(synthesis=tiny_synthesis(max_steps=2))


def _check_table2(df: pd.DataFrame, runs: Path) -> None:
    """The sample rows are the mean and sample std of the runs' records; SVHN is not run here."""
    sample = df[df.dataset == "sample"].set_index("method")
    for method in ("baseline", "winn"):
        rec = [
            json.loads((runs / f"sample-vanilla-{method}-s{s}" / "record.json").read_text()) for s in (0, 1)
        ]
        errs = [100 * x["test_error_at_best_val"] for x in rec]
        mins = [100 * x["min_test_error"] for x in rec]
        assert sample.loc[method, "error_at_best_val_pct_mean"] == pytest.approx(statistics.mean(errs))
        assert sample.loc[method, "error_at_best_val_pct_std"] == pytest.approx(statistics.stdev(errs))
        assert sample.loc[method, "min_test_error_pct_mean"] == pytest.approx(statistics.mean(mins))
        assert sample.loc[method, "status"] == "run" and str(sample.loc[method, "seeds"]) == "0 1"
        assert all(x["epochs_run"] == 1 and x["config"]["method"] == method for x in rec)
    assert (df[df.dataset == "svhn"].status == "not run here (data unavailable offline)").all()
    assert (df[df.dataset == "svhn"].paper_error_pct.tolist()) == [4.64, 4.50]


def test_table2_from_records_and_reuse(tmp_path: Path):
    (tmp_path / "nodata").mkdir()  # exists without SVHN: "not run here" (a missing folder is an error)
    runs = tmp_path / "runs"
    spec = GridSpec(
        rows=[("sample", "vanilla"), ("svhn", "resnet32")],
        seeds=(0, 1),
        epochs=1,
        synth_max_steps=2,
        data_dir=str(tmp_path / "nodata"),
        runs_dir=str(runs),
        device="cpu",
        progress=False,
        extra=TINY,
    )
    df = reproduce_table2(spec, out_dir=tmp_path / "res", command="robust-winn reproduce table2 (test)")
    _check_table2(df, runs)
    _check_table2(pd.read_csv(tmp_path / "res" / "table2.csv"), runs)
    md = (tmp_path / "res" / "table2.md").read_text()
    assert "robust-winn" in md and "torch" in md and "not run here" in md
    mtime = (runs / "sample-vanilla-winn-s0" / "checkpoint-last.pt").stat().st_mtime_ns
    again = reproduce_table2(spec, out_dir=tmp_path / "res2", command="t")  # reuses the runs
    assert (runs / "sample-vanilla-winn-s0" / "checkpoint-last.pt").stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(again, df)


def test_table2_cli_passes_its_options(tmp_path: Path, cli):
    """The command line reaches the driver: rows, seeds, epochs, cap, folders (no training: the
    only row has no data here)."""
    (tmp_path / "nodata").mkdir()
    r = cli(
        "reproduce",
        "table2",
        *SMOKE,
        "--rows",
        "svhn:resnet32",
        "--data-dir",
        tmp_path / "nodata",
        "--runs-dir",
        tmp_path / "runs",
        "--out",
        tmp_path / "res",
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "res" / "table2.csv")
    assert df[["dataset", "arch", "method"]].values.tolist() == [
        ["svhn", "resnet32", "baseline"],
        ["svhn", "resnet32", "winn"],
    ]
    assert (df.status == "not run here (data unavailable offline)").all()
    md = (tmp_path / "res" / "table2.md").read_text()
    assert "Command: `robust-winn " in md  # + sys.argv, which is pytest's under CliRunner
    assert "Seeds: 0, 1; epochs: 1 " in md and "synthesis cap: 2 Adam steps" in md
    assert md in r.output and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_table2_cli_trains_the_sample_rows(tmp_path: Path, cli):
    """The same grid as test_table2_from_records_and_reuse through the command line, at the CLI's
    synthesis settings (100 initial pseudo-negatives per class: minutes rather than seconds)."""
    (tmp_path / "nodata").mkdir()
    args = [
        "reproduce",
        "table2",
        *SMOKE,
        "--rows",
        "sample:vanilla,svhn:resnet32",
        "--data-dir",
        tmp_path / "nodata",
        "--runs-dir",
        tmp_path / "runs",
        "--out",
        tmp_path / "res",
    ]
    r = cli(*args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    _check_table2(pd.read_csv(tmp_path / "res" / "table2.csv"), tmp_path / "runs")
    mtime = (tmp_path / "runs" / "sample-vanilla-winn-s0" / "checkpoint-last.pt").stat().st_mtime_ns
    assert cli(*args, catch_exceptions=False).exit_code == 0  # second call reuses the runs
    assert (tmp_path / "runs" / "sample-vanilla-winn-s0" / "checkpoint-last.pt").stat().st_mtime_ns == mtime


def test_ablations_share_baselines_and_tabulate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    variants = [
        Variant("tiny", epochs=1, synth_max_steps=2),
        Variant("tiny-alpha", alpha=0.5, epochs=1, synth_max_steps=2),
    ]
    spec = AblationSpec(
        variants=variants,
        seeds=(0,),
        dataset="sample",
        runs_dir=str(tmp_path / "runs"),
        device="cpu",
        limit_test=50,
        progress=False,
        attacks=("fgsm", "pgd:steps=5"),
        extra=TINY,
    )
    df = run_ablations(spec, out_dir=tmp_path / "res", command="test")
    assert set(df.variant) == {"tiny", "tiny-alpha"}
    assert {a.split(":")[0] for a in df.attack} == {"fgsm", "pgd"}
    assert (df.baseline_adv_error_mean >= df.baseline_clean_error_mean).all()
    assert (df.winn_adv_error_mean >= df.winn_clean_error_mean).all()
    # both variants are paired with the very same baseline run (same seed and epochs)
    assert (df.groupby("attack").baseline_adv_error_mean.nunique() == 1).all()
    runs = tmp_path / "runs" / "ablations"
    assert sorted(p.name for p in runs.iterdir()) == ["attacks", "baseline-e1", "tiny", "tiny-alpha"]
    rec = json.loads((runs / "tiny-alpha" / "sample-vanilla-winn-s0" / "record.json").read_text())
    assert rec["config"]["alpha"] == 0.5
    tiny = json.loads((runs / "tiny" / "sample-vanilla-winn-s0" / "record.json").read_text())
    assert tiny["config"]["alpha"] == 0.01
    assert "ablations" in (tmp_path / "res" / "ablations.md").read_text().lower()
    # the paired change is each seed's WINN minus its own baseline
    per_seed = pd.read_csv(tmp_path / "res" / "ablations-seeds.csv")
    for kind in ("clean", "adv"):
        want = per_seed[f"winn_{kind}_error"] - per_seed[f"baseline_{kind}_error"]
        assert np.allclose(per_seed[f"{kind}_error_change"], want)
    assert np.allclose(df.adv_error_change_mean, df.winn_adv_error_mean - df.baseline_adv_error_mean)
    assert "adv. err. WINN − baseline (paired)" in (tmp_path / "res" / "ablations.md").read_text()

    # the effect map (issue 13 §5) reuses those runs and adds an epoch count
    ckpt = runs / "tiny-alpha" / "sample-vanilla-winn-s0" / "checkpoint-last.pt"
    mtime = ckpt.stat().st_mtime_ns
    spec.variants = [*variants, Variant("tiny-e2", epochs=2, synth_max_steps=2)]
    spec.attacks = ("fgsm",)
    emap = run_effect_map(spec, out_dir=tmp_path / "res", command="test")
    assert ckpt.stat().st_mtime_ns == mtime  # reused, not retrained
    assert sorted(emap.variant) == ["tiny", "tiny-alpha", "tiny-e2"] and sorted(emap.epochs) == [1, 1, 2]
    res = tmp_path / "res"
    assert (res / "effect-map.png").read_bytes()[:4] == b"\x89PNG"
    assert "effect map" in (res / "effect-map.md").read_text().lower()
    assert len(json.loads((res / "effect-map.json").read_text())["rows"]) == 3
    assert json.loads((res / "ablations.json").read_text())["stem"] == "ablations"  # left alone

    # every pair's attacks were kept: running the map again attacks nothing and gives the same table
    saved = sorted(p.name for p in (runs / "attacks").iterdir())
    assert len(saved) == 5 and sum(n.startswith("tiny-alpha-s0-") for n in saved) == 2  # 2 attack lists

    def no_attack(*args: object, **kwargs: object) -> None:
        raise AssertionError("attacked a pair whose results were saved")

    monkeypatch.setattr(ablations, "evaluate", no_attack)
    again = run_effect_map(spec, out_dir=tmp_path / "res2", command="test")
    pd.testing.assert_frame_equal(again, emap)
