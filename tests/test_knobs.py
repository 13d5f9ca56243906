"""Each knob is declared once (issue 12 §2): config fields -> CLI options, presets -> experiments.

The ``train`` and ``train-unsupervised`` options are generated from the configuration fields'
``knob`` metadata; these tests pin that the commands really use them (names, defaults, help,
ranges), that a field without help cannot slip in, that CLI defaults build the dataclass
defaults, and that the experiments' budgets are written only in ``experiments/presets.py``.
"""

from __future__ import annotations

import ast
import inspect
import math
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

import click
import pytest
from click.testing import CliRunner

from robust_winn.cli.knobs import Knob, Knobs
from robust_winn.cli.main import TRAIN_KNOBS, main, reproduce, train
from robust_winn.cli.unsup import UNSUP_KNOBS, train_unsupervised_cmd
from robust_winn.config import FastPathConfig, SynthesisConfig, TrainConfig, field_kind, knob
from robust_winn.errors import BadValueError
from robust_winn.experiments import presets
from robust_winn.experiments.ablations import DEFAULT_VARIANTS, AblationSpec, Variant
from robust_winn.experiments.table2 import GridSpec
from robust_winn.experiments.tables34 import Table3Spec, Table4Spec, reproduce_table3, reproduce_table4
from robust_winn.training.unsup_config import Preset, UnsupConfig

PKG = Path(__file__).resolve().parents[1] / "robust_winn"
CONFIGS = (TrainConfig, SynthesisConfig, FastPathConfig, UnsupConfig)


def _leaf_fields(cls: type, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every non-dataclass field of ``cls`` (nested ones by path) with a command-line form."""
    out = {}
    hints = get_type_hints(cls)
    for f in fields(cls):
        if f.metadata.get("cli", True) is False:
            continue
        kind, _ = field_kind(hints[f.name])
        if is_dataclass(kind):
            out.update(_leaf_fields(kind, (*prefix, f.name)))
        else:
            out[(*prefix, f.name)] = f
    return out


def _params(cmd: click.Command) -> dict[str, click.Parameter]:
    return {str(p.name): p for p in cmd.params}


# ------------------------------------------------------------------ every field is a declared knob


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_declares_its_help(cls: type) -> None:
    missing = [f.name for f in fields(cls) if not f.metadata.get("help", "").strip()]
    assert not missing, f"{cls.__name__} fields without knob(help=...): {missing}"


def test_a_field_added_without_help_fails_when_the_options_are_built() -> None:
    @dataclass
    class Careless:
        declared: int = field(default=1, metadata=knob("A declared knob.", low=1))
        forgotten: int = 2

    with pytest.raises(TypeError, match="Careless.forgotten has no help"):
        Knobs(Careless)


def test_two_fields_on_one_flag_fail_when_the_options_are_built() -> None:
    @dataclass
    class Clash:
        a: int = field(default=1, metadata=knob("A.", cli={"flag": "--same"}))
        b: int = field(default=2, metadata=knob("B.", cli={"flag": "--same"}))

    with pytest.raises(TypeError, match="--same"):
        Knobs(Clash)


@pytest.mark.parametrize(
    ("knobs", "command", "cls"),
    [(TRAIN_KNOBS, train, TrainConfig), (UNSUP_KNOBS, train_unsupervised_cmd, UnsupConfig)],
    ids=["train", "train-unsupervised"],
)
def test_generated_options_are_the_fields(knobs: Knobs, command: click.Command, cls: type) -> None:
    """Names, defaults, help and ranges of the command's options equal the fields' declarations."""
    assert {k.path for k in knobs.knobs} == set(_leaf_fields(cls))
    params = _params(command)
    for k in knobs.knobs:
        f, cli = k.field, k.field.metadata["cli"]
        cli = {} if cli is True else cli
        p = params[k.param]
        assert isinstance(p, click.Option)
        flag = cli.get("flag", "--" + f.name.replace("_", "-"))
        assert p.opts[0] == (f"--no-{flag[2:]}" if k.invert and "flag" not in cli else flag), k.path
        assert p.help is not None and p.help.startswith(cli.get("help", f.metadata["help"])), k.path
        default = f.default.value if isinstance(f.default, Enum) else f.default
        if cli.get("required"):
            assert p.required
        elif k.invert:
            assert p.is_flag and default is True  # --no-x, off by default: the field keeps True
        elif "presets" in f.metadata:
            assert p.default is None
            for name, value in f.metadata["presets"].items():
                shown = f"{name} {value:,}" if isinstance(value, int | float) else f"{name} {value}"
                assert shown in str(p.help), (k.path, p.help)
        else:
            assert p.default == default, k.path
        rng = dict(f.metadata.get("range", {}), **({"low": cli["low"]} if "low" in cli else {}))
        if isinstance(p.type, click.IntRange | click.FloatRange):
            assert (p.type.min, p.type.max, p.type.min_open) == (
                rng.get("low"),
                rng.get("high"),
                rng.get("low_open", False),
            ), k.path
        else:
            assert not rng, f"{k.path}: a declared range that the option does not enforce"
        choices = cli.get("choices", f.metadata.get("choices"))
        if choices is not None:
            assert isinstance(p.type, click.Choice) and list(p.type.choices) == list(choices)


def test_train_help_lists_every_train_config_knob_and_mode() -> None:
    r = CliRunner().invoke(main, ["train", "--help"])
    assert r.exit_code == 0, r.output
    for k in TRAIN_KNOBS.knobs:
        assert k.decls[0].split("/")[0] in r.output, k.path
    assert "--mode [supervised|unsupervised]" in r.output
    assert "train-unsupervised" in r.output


def test_train_keeps_its_python_only_fields_off_the_command_line() -> None:
    """A field is off the command line only by an explicit ``cli=False`` (these, today)."""
    off = {
        f"{c.__name__}.{f.name}"
        for c in (TrainConfig, SynthesisConfig, FastPathConfig)
        for f in fields(c)
        if f.metadata["cli"] is False
    }
    assert off == {
        "TrainConfig.beta1",
        "TrainConfig.beta2",
        "TrainConfig.eval_batch_size",
        "SynthesisConfig.lr",
        "SynthesisConfig.beta1",
        "SynthesisConfig.beta2",
        "SynthesisConfig.tol",
        "SynthesisConfig.ce_weight",
        "SynthesisConfig.init_per_class",
    }


# ------------------------------------------------------------------ CLI defaults = dataclass defaults


def _parsed(command: click.Command, args: list[str]) -> dict[str, Any]:
    with command.make_context(command.name, args) as ctx:
        return dict(ctx.params)


def test_train_cli_defaults_build_the_train_config_defaults() -> None:
    kw = _parsed(train, ["--out", "o"])
    assert kw.pop("mode") == "supervised"
    assert {kw.pop(k) for k in ("quiet", "resume", "overwrite")} == {False}
    assert TRAIN_KNOBS.build(kw) == TrainConfig(out="o")


def test_train_cli_values_reach_every_field() -> None:
    """Every option sets its own field, enums and inverted flags included."""
    args = [
        "--out",
        "o",
        "--method",
        "baseline",
        "--stop-rule",
        "per-sample",
        "--precision",
        "bf16",
        "--synth-max-steps",
        "7",
        "--synth-per-class",
        "3",
        "--pool-dtype",
        "uint8",
        "--no-progress",
        "--compile",
        "--no-pin-memory",
        "--val-size",
        "5",
        "--alpha",
        "0.5",
        "--seed",
        "9",
    ]
    cfg = TRAIN_KNOBS.build(
        {k: v for k, v in _parsed(train, args).items() if k not in ("mode", "quiet", "resume", "overwrite")}
    )
    want = TrainConfig(
        out="o",
        method="baseline",
        val_size=5,
        alpha=0.5,
        seed=9,
        progress=False,  # type: ignore[arg-type]
        synthesis=SynthesisConfig(max_steps=7, per_class=3, stop_rule="per-sample", pool_dtype="uint8"),  # type: ignore[arg-type]
        fast=FastPathConfig(precision="bf16", compile=True, pin_memory=False),  # type: ignore[arg-type]
    )
    assert cfg.to_dict() == want.to_dict()
    assert cfg.method.value == "baseline" and cfg.synthesis.stop_rule.value == "per-sample"


QUICK_BUDGET = {
    "cascades": 2,
    "iterations": 3,
    "pos_per_step": 50,
    "ramp_max": 2,
    "k_passes": 1,
    "init_images": 200,
    "new_per_iter": 50,
    "new_last_iter": 100,
    "synth_max_steps": 30,
    "pool_capacity": 2000,
}  # the quick preset as it was before the fields declared it
CPU_BUDGET = {
    "arch": "critic64-half",
    "cascades": 6,
    "iterations": 8,
    "pos_per_step": 100,
    "ramp_max": 2,
    "k_passes": 2,
    "init_images": 500,
    "new_per_iter": 100,
    "new_last_iter": 200,
    "synth_max_steps": 100,
    "synth_lr": 0.02,
    "pool_capacity": 5000,
}  # the cpu preset of issue 15 (results/textures/search.md): a change must be measured again


@pytest.mark.parametrize("preset", [p.value for p in Preset])
def test_unsup_cli_defaults_build_each_preset(preset: str) -> None:
    kw = _parsed(train_unsupervised_cmd, ["--preset", preset, "--dataset", "texture", "--out", "o"])
    assert kw.pop("preset") == preset
    assert {kw.pop(k) for k in ("quiet", "resume", "overwrite")} == {False}
    cfg = UnsupConfig.preset(preset, **UNSUP_KNOBS.values(kw))
    assert cfg == UnsupConfig.preset(preset, dataset="texture", out="o")
    budget = {"quick": QUICK_BUDGET, "cpu": CPU_BUDGET}.get(preset, {})
    assert cfg == replace(UnsupConfig(dataset="texture", out="o"), **budget)


def test_unsup_help_offers_every_preset_and_shows_the_cpu_values() -> None:
    r = CliRunner().invoke(main, ["train", "--mode", "unsupervised", "--help"])
    assert r.exit_code == 0, r.output
    assert "--preset [paper|quick|cpu]" in r.output
    assert "cpu critic64-half, paper critic64" in " ".join(r.output.split())


def test_unsup_default_preset_is_quick_and_options_override_it() -> None:
    kw = _parsed(
        train_unsupervised_cmd,
        ["--dataset", "texture", "--out", "o", "--cascades", "1", "--no-quantize", "--init", "gaussian"],
    )
    cfg = UnsupConfig.preset(kw.pop("preset"), **UNSUP_KNOBS.values(kw))
    assert cfg.cascades == 1 and cfg.iterations == QUICK_BUDGET["iterations"]
    assert cfg.quantize is False and cfg.init.value == "gaussian"


# ------------------------------------------------------------------ NaN and infinities stay refused


def _float_knobs(knobs: Knobs) -> list[Knob]:
    return [k for k in knobs.knobs if isinstance(k.attrs.get("type"), click.FloatRange)]


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_float_options_refuse_non_finite_values(bad: str) -> None:
    assert _float_knobs(TRAIN_KNOBS)
    for k in _float_knobs(TRAIN_KNOBS):
        with pytest.raises(click.BadParameter, match="finite|not in the range"):
            _parsed(train, ["--out", "o", k.decls[0], bad])


@pytest.mark.parametrize("cls", [TrainConfig, UnsupConfig], ids=lambda c: c.__name__)
def test_validate_refuses_non_finite_numbers_in_every_field(cls: type) -> None:
    def numeric(c: type, prefix: str = "") -> list[str]:
        out, hints = [], get_type_hints(c)
        for f in fields(c):
            kind, _ = field_kind(hints[f.name])
            if is_dataclass(kind):
                out += numeric(kind, f"{prefix}{f.name}.")
            elif kind in (int, float):
                out.append(prefix + f.name)
        return out

    names = numeric(cls)
    assert len(names) > 5
    for name in names:
        cfg = cls()
        *outer, leaf = name.split(".")
        target = getattr(cfg, outer[0]) if outer else cfg
        setattr(target, leaf, math.nan)
        with pytest.raises(BadValueError, match=name.replace(".", r"\.")):
            cfg.validate()


# ------------------------------------------------------------------ train --mode


def test_train_mode_is_an_option_and_unsupervised_is_routed(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["train", "--mode", "unsupervised", "--help"])
    assert r.exit_code == 0 and "Usage: main train-unsupervised" in r.output, r.output
    r = CliRunner().invoke(main, ["train", "--mode=supervised", "--help"])
    assert r.exit_code == 0 and "Usage: main train " in r.output, r.output
    r = CliRunner().invoke(train, ["--mode", "unsupervised", "--out", str(tmp_path / "o")])  # no group
    assert r.exit_code == 2 and "train-unsupervised" in r.output and not (tmp_path / "o").exists()


# ------------------------------------------------------------------ experiment presets in one place


def test_reproduce_table3_and_4_take_a_spec() -> None:
    for fn in (reproduce_table3, reproduce_table4):
        assert list(inspect.signature(fn).parameters) == ["spec", "out_dir", "command", "replace_measured"]


def test_experiment_defaults_are_the_presets() -> None:
    b = presets.TABLE_BUDGET
    assert (b.epochs, b.synth_max_steps, b.alpha, b.seeds) == (15, 200, TrainConfig().alpha, (0, 1, 2))
    for spec in (GridSpec(), Table3Spec(), Table4Spec()):
        assert (tuple(spec.seeds), spec.epochs) == (b.seeds, b.epochs)
        assert spec.synth_max_steps == b.synth_max_steps
        assert (spec.runs_dir, spec.data_dir) == (presets.RUNS_DIR, presets.DATA_DIR)
    assert tuple(GridSpec().rows) == presets.TABLE2_ROWS and tuple(Table4Spec().rows) == presets.TABLE4_ROWS
    assert tuple(Table3Spec().rows) == tuple((presets.TABLE3_DATASET, a) for a in presets.TABLE3_ARCHS)
    assert (Table3Spec().eps, tuple(Table3Spec().attacks)) == (presets.MNIST_EPS, presets.TABLE3_ATTACKS)
    assert (Table4Spec().eps, tuple(Table4Spec().attacks)) == (presets.SVHN_EPS, presets.TABLE4_ATTACKS)
    assert tuple(AblationSpec().seeds) == b.seeds and AblationSpec().runs_dir == presets.RUNS_ROOT
    assert Variant("x").is_default() and DEFAULT_VARIANTS[0].is_default()
    assert [v.name for v in DEFAULT_VARIANTS] == ["default", "alpha0.1", "cap1000", "epochs30"]


@pytest.mark.parametrize("table", ["table2", "table3", "table4", "ablations"])
def test_reproduce_options_default_to_the_presets(table: str) -> None:
    b, params = presets.TABLE_BUDGET, _params(reproduce.commands[table])
    assert params["seeds"].default == b.seeds_text == "0,1,2"
    assert params["out_dir"].default == presets.RESULTS_DIR and params["data_dir"].default == presets.DATA_DIR
    if table != "ablations":
        assert (params["epochs"].default, params["synth_max_steps"].default) == (b.epochs, b.synth_max_steps)
        assert params["runs_dir"].default == presets.RUNS_DIR


# Numbers that are the experiments' budgets and defaults; outside presets.py they may appear in
# experiments/ and cli/ only as text (help, table notes), never as a value in code.
BUDGET_NUMBERS = {15, 200, 0.01, 0.125, 0.005, 500}
ALLOWED = {("cli/unsup.py", 200, "--patches-per-step")}  # any-size generation, not a budget


def _literal_numbers(path: Path) -> list[tuple[int, Any, str]]:
    """(line, value, the line's text) of every budget number or seed list written as code."""
    src = path.read_text()
    lines = src.splitlines()
    found = []
    for node in ast.walk(ast.parse(src)):
        value: Any = None
        const = node.value if isinstance(node, ast.Constant) else None
        if type(const) in (int, float) and const in BUDGET_NUMBERS:
            value = const
        elif isinstance(const, str) and const.replace(" ", "") == "0,1,2":
            value = const
        elif isinstance(node, ast.Tuple) and [getattr(e, "value", None) for e in node.elts] == [0, 1, 2]:
            value = (0, 1, 2)
        if value is not None:
            found.append((node.lineno, value, lines[node.lineno - 1]))
    return found


def test_budget_numbers_are_written_only_in_presets() -> None:
    stray = []
    for path in sorted([*(PKG / "experiments").glob("*.py"), *(PKG / "cli").glob("*.py")]):
        if path.name == "presets.py":
            continue
        rel = str(path.relative_to(PKG))
        for line, value, text in _literal_numbers(path):
            if not any(rel == f and value == v and s in text for f, v, s in ALLOWED):
                stray.append(f"{rel}:{line}: {value!r}: {text.strip()}")
    assert not stray, "write these in robust_winn/experiments/presets.py:\n" + "\n".join(stray)
    assert _literal_numbers(PKG / "experiments" / "presets.py"), "the check finds the presets' own numbers"
