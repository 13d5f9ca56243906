"""Tables never silently lose measured rows, and are written whole (issue 11).

No training here: the existing tables are written by hand in tmp_path (in the formats of
results/table2.csv, results/table3.json and results/ablations.json), and every refusal is
checked to come before any run folder is created.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace as with_
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import REPO

from robust_winn.config import TrainConfig
from robust_winn.errors import BadValueError, DataUnavailableError, RunDirError
from robust_winn.experiments.ablations import AblationSpec, Variant, run_ablations
from robust_winn.experiments.table2 import (
    NO_DATA,
    GridSpec,
    check_measured_kept,
    reproduce_table2,
    train_or_reuse,
)
from robust_winn.experiments.tables34 import Table3Spec, Table4Spec, reproduce_table3, reproduce_table4
from robust_winn.runtime.atomic import write_files_atomically

PGD = "pgd:alpha=0.01,steps=40"
NO_GPU_TEXT = "not run here (no GPU: ResNet-32 rows need --device cuda or --allow-cpu-resnet)"


def _table3_row(arch: str, attack: str, status: str, dataset: str = "mnist") -> dict[str, Any]:
    measured = status == "run"
    return {
        "dataset": dataset,
        "arch": arch,
        "attack": attack,
        "eps": 0.125,
        "baseline_adv_error_mean": 46.1 if measured else None,
        "winn_adv_error_mean": 43.9 if measured else None,
        "seeds": "0 1 2" if measured else "",
        "status": status,
    }


def _write_table3(out: Path, rows: list[dict[str, Any]], name: str = "table3") -> dict[str, bytes]:
    """A table in reproduce's format (json with rows, csv, seeds csv, md); returns the bytes."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"command": "measured", "rows": rows}, indent=2))
    pd.DataFrame(rows).to_csv(out / f"{name}.csv", index=False)
    (out / f"{name}-seeds.csv").write_text("arch,attack,eps,seed\nvanilla,fgsm,0.125,0\n")
    (out / f"{name}.md").write_text("# measured table\n")
    return _snapshot(out)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _measured_table3(out: Path) -> dict[str, bytes]:
    return _write_table3(
        out,
        [
            _table3_row("vanilla", "fgsm", "run"),
            _table3_row("vanilla", PGD, "run"),
            _table3_row("resnet32", "fgsm", NO_GPU_TEXT),
            _table3_row("resnet32", PGD, NO_GPU_TEXT),
        ],
    )


def _table3(
    out: Path,
    data_dir: Path,
    runs: Path,
    *,
    dataset: str = "mnist",
    replace_measured: bool = False,
    **kw: Any,
):
    spec = Table3Spec(
        rows=[(dataset, "vanilla")],
        data_dir=str(data_dir),
        runs_dir=str(runs),
        device="cpu",
        progress=False,
        **kw,
    )
    return reproduce_table3(spec, out_dir=out, replace_measured=replace_measured)


def _table4(out: Path, data_dir: Path, runs: Path, **kw: Any):
    return reproduce_table4(
        Table4Spec(data_dir=str(data_dir), runs_dir=str(runs), device="cpu"), out_dir=out, **kw
    )


# ------------------------------------------------------------------ measured rows are kept


def test_table3_refuses_to_mark_measured_rows_not_run(tmp_path: Path) -> None:
    """The audit's case: a data folder without MNIST would rewrite measured rows as not run."""
    out, data, runs = tmp_path / "results", tmp_path / "empty-data", tmp_path / "runs"
    data.mkdir()
    before = _measured_table3(out)
    with pytest.raises(RunDirError) as info:
        _table3(out, data, runs)
    msg = str(info.value)
    assert "mnist/vanilla/fgsm -> not run here (data unavailable offline)" in msg
    assert f"mnist/vanilla/{PGD}" in msg and "--replace-measured" in msg and "\n" not in msg
    assert "resnet32" not in msg  # it was not measured, so nothing is lost there
    assert _snapshot(out) == before
    assert not runs.exists()  # refused before any training


def test_table3_replace_measured_writes_the_new_table(tmp_path: Path) -> None:
    out, data, runs = tmp_path / "results", tmp_path / "empty-data", tmp_path / "runs"
    data.mkdir()
    _measured_table3(out)
    df = _table3(out, data, runs, replace_measured=True)
    assert set(df[df.arch == "vanilla"].status) == {NO_DATA}
    rows = json.loads((out / "table3.json").read_text())["rows"]
    assert {(r["arch"], r["status"]) for r in rows} == {("vanilla", NO_DATA), ("resnet32", NO_GPU_TEXT)}
    assert not list(out.glob("*.tmp"))


def test_a_missing_data_dir_is_an_error_not_a_not_run_table(tmp_path: Path) -> None:
    """A --data-dir that does not exist is a typo, even with --replace-measured."""
    out, runs = tmp_path / "results", tmp_path / "runs"
    before = _measured_table3(out)
    for replace in (False, True):
        with pytest.raises(DataUnavailableError, match=r"--data-dir \S*typo_dir does not exist"):
            _table3(out, tmp_path / "typo_dir", runs, replace_measured=replace)
    assert _snapshot(out) == before and not runs.exists()
    with pytest.raises(DataUnavailableError, match="typo_dir does not exist"):
        _table4(out, tmp_path / "typo_dir", runs)
    with pytest.raises(DataUnavailableError, match="typo_dir does not exist"):
        reproduce_table2(
            GridSpec(
                rows=[("mnist", "vanilla")],
                data_dir=str(tmp_path / "typo_dir"),
                runs_dir=str(runs),
                device="cpu",
            ),
            out_dir=out,
            command="t",
        )
    assert _snapshot(out) == before


def test_rows_that_were_not_measured_may_be_rewritten_without_the_flag(tmp_path: Path) -> None:
    out, data, runs = tmp_path / "results", tmp_path / "empty-data", tmp_path / "runs"
    data.mkdir()
    _write_table3(out, [_table3_row("resnet32", "fgsm", NO_DATA, dataset="svhn")], name="table4")
    df = _table4(out, data, runs, command="t")
    assert df.status.tolist() == [NO_DATA]
    assert json.loads((out / "table4.json").read_text())["command"] == "t"


def test_table4_refuses_to_mark_a_measured_svhn_row_not_run(tmp_path: Path) -> None:
    out, data, runs = tmp_path / "results", tmp_path / "empty-data", tmp_path / "runs"
    data.mkdir()
    before = _write_table3(out, [_table3_row("resnet32", "fgsm", "run", dataset="svhn")], name="table4")
    with pytest.raises(RunDirError, match="svhn/resnet32/fgsm -> not run here"):
        _table4(out, data, runs)
    assert _snapshot(out) == before


def test_table3_refuses_to_drop_a_measured_attack_row(tmp_path: Path) -> None:
    """A run with another attack list would drop the measured PGD rows."""
    out, data, runs = tmp_path / "results", tmp_path / "empty-data", tmp_path / "runs"
    data.mkdir()
    before = _write_table3(out, [_table3_row("vanilla", PGD, "run", dataset="sample")])
    with pytest.raises(RunDirError, match=f"sample/vanilla/{PGD} -> dropped"):
        _table3(out, data, runs, dataset="sample", attacks=["fgsm"])
    assert _snapshot(out) == before and not runs.exists()


def _table2_csv(out: Path, rows: list[tuple[str, str, str, str]]) -> dict[str, bytes]:
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        [
            {
                "dataset": d,
                "arch": a,
                "method": m,
                "paper_error_pct": 0.89,
                "error_at_best_val_pct_mean": 1.19 if s == "run" else None,
                "status": s,
            }
            for d, a, m, s in rows
        ]
    ).to_csv(out / "table2.csv", index=False)
    (out / "table2.md").write_text("# measured\n")
    return _snapshot(out)


def test_table2_refuses_to_mark_measured_rows_not_run_or_drop_them(tmp_path: Path) -> None:
    out, data, runs = tmp_path / "results", tmp_path / "empty-data", tmp_path / "runs"
    data.mkdir()
    before = _table2_csv(
        out,
        [
            ("mnist", "vanilla", "baseline", "run"),
            ("mnist", "vanilla", "winn", "run"),
            ("svhn", "resnet32", "baseline", NO_DATA),
        ],
    )
    spec = GridSpec(
        rows=[("mnist", "vanilla"), ("svhn", "resnet32")],
        data_dir=str(data),
        runs_dir=str(runs),
        device="cpu",
        progress=False,
    )
    with pytest.raises(RunDirError, match="mnist/vanilla/baseline -> not run here.*mnist/vanilla/winn"):
        reproduce_table2(spec, out_dir=out, command="t")
    only_svhn = GridSpec(rows=[("svhn", "resnet32")], data_dir=str(data), runs_dir=str(runs), device="cpu")
    with pytest.raises(RunDirError, match="mnist/vanilla/baseline -> dropped"):
        reproduce_table2(only_svhn, out_dir=out, command="t")
    assert _snapshot(out) == before and not runs.exists()
    df = reproduce_table2(spec, out_dir=out, command="t", replace_measured=True)
    assert set(df.status) == {NO_DATA}
    assert set(pd.read_csv(out / "table2.csv").status) == {NO_DATA}


def test_ablations_refuse_to_drop_measured_variants_before_training(tmp_path: Path) -> None:
    """ablations.json has no status column: every row there is measured."""
    out, runs = tmp_path / "results", tmp_path / "runs"
    out.mkdir()
    rows = [
        {"variant": "alpha0.1", "alpha": 0.1, "attack": a, "eps": 0.125, "winn_adv_error_mean": 33.5}
        for a in ("fgsm", PGD)
    ]
    (out / "ablations.json").write_text(json.dumps({"command": "measured", "rows": rows}))
    before = _snapshot(out)
    spec = AblationSpec(
        variants=[Variant("tiny", epochs=1, synth_max_steps=2)],
        seeds=(0,),
        dataset="sample",
        runs_dir=str(runs),
        device="cpu",
        progress=False,
    )
    with pytest.raises(RunDirError, match=f"alpha0.1/fgsm -> dropped; alpha0.1/{PGD} -> dropped"):
        run_ablations(spec, out_dir=out, command="t")
    assert _snapshot(out) == before and not runs.exists()


def test_the_committed_results_are_protected(tmp_path: Path) -> None:
    """The exact audit scenario on a copy of results/: a data folder without the datasets."""
    out, data, runs = tmp_path / "results", tmp_path / "empty-data", tmp_path / "runs"
    data.mkdir()
    skip = shutil.ignore_patterns("figure3", "sanity-*", "unsupervised")
    shutil.copytree(REPO / "results", out, ignore=skip)
    before = _snapshot(out)
    measured = [r for r in json.loads((out / "table3.json").read_text())["rows"] if r["status"] == "run"]
    assert measured, "results/table3.json has no measured row to protect"
    with pytest.raises(RunDirError, match="table3.json holds measured results"):
        _table3(out, data, runs)
    with pytest.raises(RunDirError, match="table2.csv holds measured results"):
        reproduce_table2(
            GridSpec(data_dir=str(data), runs_dir=str(runs), device="cpu"), out_dir=out, command="t"
        )
    assert _snapshot(out) == before and not runs.exists()


# ------------------------------------------------------------------ the check itself


def test_check_measured_kept_rules(tmp_path: Path) -> None:
    key = ("dataset", "arch", "attack")
    _write_table3(tmp_path, [_table3_row("vanilla", "fgsm", "run"), _table3_row("resnet32", "fgsm", NO_DATA)])
    # measured again, or only the unmeasured row changes: fine
    check_measured_kept(tmp_path, "table3", key, {("mnist", "vanilla", "fgsm"): "run"})
    # measured row becomes not requested: refused, unless replace_measured
    planned = {("mnist", "vanilla", "fgsm"): "not requested"}
    with pytest.raises(RunDirError, match="mnist/vanilla/fgsm -> not requested"):
        check_measured_kept(tmp_path, "table3", key, planned)
    check_measured_kept(tmp_path, "table3", key, planned, replace_measured=True)
    # no table there yet: nothing to protect
    check_measured_kept(tmp_path / "none", "table3", key, {})
    # the csv is read when there is no json
    (tmp_path / "table3.json").unlink()
    with pytest.raises(RunDirError, match=r"table3\.csv holds.*mnist/vanilla/fgsm -> dropped"):
        check_measured_kept(tmp_path, "table3", key, {})


def test_unreadable_or_foreign_tables_are_refused(tmp_path: Path) -> None:
    key = ("dataset", "arch", "attack")
    (tmp_path / "table3.json").write_text('{"rows": [{"dataset": "mnist"')  # cut short
    with pytest.raises(RunDirError, match="cannot tell which rows .*--replace-measured"):
        check_measured_kept(tmp_path, "table3", key, {})
    (tmp_path / "table3.json").write_text(json.dumps({"rows": [{"dataset": "mnist", "status": "run"}]}))
    with pytest.raises(RunDirError, match="no column arch, attack"):
        check_measured_kept(tmp_path, "table3", key, {})
    check_measured_kept(tmp_path, "table3", key, {}, replace_measured=True)


# ------------------------------------------------------------------ run folders


def _record(cfg: TrainConfig) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True)
    (out / "record.json").write_text(
        json.dumps(
            {"config": cfg.to_dict(), "status": "completed", "epochs_run": cfg.epochs, "wall_time_s": 1.0}
        )
    )


def test_train_or_reuse_reuses_and_refuses_another_configuration(tmp_path: Path) -> None:
    cfg = TrainConfig(
        dataset="sample", method="winn", epochs=1, device="cpu", out=str(tmp_path / "run"), progress=False
    )
    _record(cfg)
    assert train_or_reuse(cfg, "t")["status"] == "completed"  # same config: reused, no training
    other = TrainConfig(
        dataset="sample",
        method="winn",
        epochs=1,
        device="cpu",
        seed=7,
        out=str(tmp_path / "run"),
        progress=False,
    )
    with pytest.raises(RunDirError, match=r"holds a run with another configuration \(differs in seed\)"):
        train_or_reuse(other, "t")


def test_train_or_reuse_compares_the_device_used_not_its_name(tmp_path: Path) -> None:
    """A run made with --device auto on a CPU machine is the run --device cpu asks for."""
    cfg = TrainConfig(
        dataset="sample", method="winn", epochs=1, device="auto", out=str(tmp_path / "run"), progress=False
    )
    _record(cfg)
    rec_path = tmp_path / "run" / "record.json"
    with pytest.raises(RunDirError, match=r"differs in device"):  # no record of the device used
        train_or_reuse(with_(cfg, device="cpu"), "t")
    rec = json.loads(rec_path.read_text())
    rec_path.write_text(json.dumps({**rec, "device": "cpu"}))
    assert train_or_reuse(with_(cfg, device="cpu"), "t")["status"] == "completed"
    rec_path.write_text(json.dumps({**rec, "device": "cuda:0"}))  # made on a GPU: not this run
    with pytest.raises(RunDirError, match=r"differs in device"):
        train_or_reuse(with_(cfg, device="cpu"), "t")


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        json.dumps({"status": "completed"}),
        json.dumps([1, 2]),
        json.dumps({"config": {"no_such_option": 1}, "status": "completed", "epochs_run": 1}),
    ],
)
def test_train_or_reuse_refuses_an_unreadable_record(tmp_path: Path, text: str) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "record.json").write_text(text)
    cfg = TrainConfig(dataset="sample", epochs=1, device="cpu", out=str(tmp_path / "run"), progress=False)
    with pytest.raises(RunDirError, match="is not a readable robust_winn run record"):
        train_or_reuse(cfg, "t")


# ------------------------------------------------------------------ atomic writes


def test_atomic_write_replaces_whole_files_and_keeps_modes(tmp_path: Path) -> None:
    old = tmp_path / "a.csv"
    old.write_text("old\n")
    old.chmod(0o640)
    write_files_atomically({old: "new\n", tmp_path / "sub" / "b.md": "b\n"})
    assert old.read_text() == "new\n" and (tmp_path / "sub" / "b.md").read_text() == "b\n"
    assert old.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "sub" / "b.md").stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_an_interrupted_write_leaves_the_old_files_and_no_temp_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fail_at: str,
) -> None:
    files = {tmp_path / n: f"old {n}\n" for n in ("t.csv", "t.json", "t.md")}
    for p, text in files.items():
        p.write_text(text)
    real = getattr(os, fail_at)
    calls: list[int] = []

    def interrupt(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(os, fail_at, interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_files_atomically({p: "new\n" for p in files})
    monkeypatch.undo()
    assert not list(tmp_path.glob("*.tmp"))
    for p, text in files.items():  # every file is whole: old, or (renamed before Ctrl-C) new
        assert p.read_text() in (text, "new\n")
    if fail_at == "fsync":  # interrupted while writing: no file has changed
        assert all(p.read_text() == text for p, text in files.items())


def test_an_interrupted_table3_write_leaves_the_old_table(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """All four table files are rendered and written to temp files before any is replaced."""
    out, data, runs = tmp_path / "results", tmp_path / "empty-data", tmp_path / "runs"
    data.mkdir()
    before = _measured_table3(out)
    real, calls = os.fsync, []

    def interrupt(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 4:  # the last of the four files
            raise KeyboardInterrupt
        real(fd)

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _table3(out, data, runs, replace_measured=True)
    monkeypatch.undo()
    assert len(calls) == 4
    assert _snapshot(out) == before and not list(out.glob("*.tmp"))


@pytest.mark.parametrize("attacks", [[], ["fgsm", "fgsm"], ["pgd:alpha=1", "pgd:alpha=1.0"]])
def test_table_attack_lists_are_checked_before_any_work(tmp_path: Path, attacks: list[str]) -> None:
    """An empty list or one attack twice (after canonical labelling) is refused up front."""
    runs = tmp_path / "runs"
    with pytest.raises(BadValueError, match="give each attack once"):
        _table3(tmp_path / "out", tmp_path, runs, attacks=attacks)
    spec = AblationSpec(
        variants=[Variant("tiny", epochs=1)],
        seeds=(0,),
        dataset="sample",
        runs_dir=str(runs),
        device="cpu",
        attacks=attacks,
    )
    with pytest.raises(BadValueError, match="give each attack once"):
        run_ablations(spec, out_dir=tmp_path / "out", command="t")
    assert not runs.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["attacks", "baseline-e15"])
def test_ablations_refuse_a_variant_named_like_a_shared_folder(tmp_path: Path, name: str) -> None:
    """runs/ablations/attacks holds saved attack results and baseline-e<N> the shared baselines."""
    variants = [Variant(name, epochs=1)]
    spec = AblationSpec(variants=variants, seeds=(0,), dataset="sample", runs_dir=str(tmp_path))
    with pytest.raises(BadValueError, match=f"variant name '{name}' is reserved"):
        run_ablations(spec, out_dir=tmp_path / "results", command="t")
    assert not any(tmp_path.iterdir())
