"""The table drivers end to end on tiny runs: records in, tables out, runs reused."""

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from robust_winn.cli.main import main
from robust_winn.experiments.ablations import AblationSpec, Variant, run_ablations

SMOKE = ["--seeds", "0,1", "--epochs", "1", "--synth-max-steps", "2", "--device", "cpu", "--no-progress"]


def test_table2_from_records_and_reuse(tmp_path: Path):
    (tmp_path / "nodata").mkdir()  # exists without SVHN: "not run here" (a missing folder is an error)
    args = ["reproduce", "table2", *SMOKE, "--rows", "sample:vanilla,svhn:resnet32",
            "--data-dir", str(tmp_path / "nodata"), "--runs-dir", str(tmp_path / "runs"),
            "--out", str(tmp_path / "res")]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "res" / "table2.csv")
    sample = df[df.dataset == "sample"].set_index("method")
    for method in ("baseline", "winn"):
        rec = [json.loads((tmp_path / "runs" / f"sample-vanilla-{method}-s{s}" / "record.json")
                          .read_text()) for s in (0, 1)]
        errs = [100 * x["test_error_at_best_val"] for x in rec]
        assert abs(sample.loc[method, "error_at_best_val_pct_mean"] - sum(errs) / 2) < 1e-9
    assert (df[df.dataset == "svhn"].status == "not run here (data unavailable offline)").all()
    assert (df[df.dataset == "svhn"].paper_error_pct.tolist()) == [4.64, 4.50]
    md = (tmp_path / "res" / "table2.md").read_text()
    assert "robust-winn" in md and "torch" in md and "not run here" in md
    mtime = (tmp_path / "runs" / "sample-vanilla-winn-s0" / "checkpoint-last.pt").stat().st_mtime
    r = CliRunner().invoke(main, args, catch_exceptions=False)  # second call reuses the runs
    assert r.exit_code == 0
    assert (tmp_path / "runs" / "sample-vanilla-winn-s0" / "checkpoint-last.pt").stat().st_mtime == mtime


def test_ablations_share_baselines_and_tabulate(tmp_path: Path):
    variants = [Variant("tiny", epochs=1, synth_max_steps=2),
                Variant("tiny-alpha", alpha=0.5, epochs=1, synth_max_steps=2)]
    spec = AblationSpec(variants=variants, seeds=(0,), dataset="sample", runs_dir=str(tmp_path / "runs"),
                        device="cpu", limit_test=50, progress=False, extra={"limit_train": 100})
    df = run_ablations(spec, out_dir=tmp_path / "res", command="test")
    assert set(df.variant) == {"tiny", "tiny-alpha"}
    assert {a.split(":")[0] for a in df.attack} == {"fgsm", "pgd"}
    assert (df.baseline_adv_error_mean >= df.baseline_clean_error_mean).all()
    assert (df.winn_adv_error_mean >= df.winn_clean_error_mean).all()
    # both variants are paired with the very same baseline run (same seed and epochs)
    assert (df.groupby("attack").baseline_adv_error_mean.nunique() == 1).all()
    runs = tmp_path / "runs" / "ablations"
    assert sorted(p.name for p in runs.iterdir()) == ["baseline-e1", "tiny", "tiny-alpha"]
    rec = json.loads((runs / "tiny-alpha" / "sample-vanilla-winn-s0" / "record.json").read_text())
    assert rec["config"]["alpha"] == 0.5
    assert "ablations" in (tmp_path / "res" / "ablations.md").read_text().lower()
