"""Hostile attack parameters (issue 11): every parameter of every attack is checked up front.

Table-driven over :func:`list_attacks`: bad values are generated from each parameter's declared
:class:`Param` (wrong type, non-finite, just outside the range, not a choice), so an attack
registered later is covered without editing this file, and a numeric parameter registered
without a range fails :func:`test_every_parameter_has_a_range_or_choices`.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from robust_winn.attacks import AttackSpec, build_attack, evaluate, list_attacks, parse_attack
from robust_winn.attacks.registry import _ATTACKS, Param, attack_params, check_eps
from robust_winn.cli.main import main
from robust_winn.errors import BadValueError, UnknownNameError

ATTACKS = sorted(list_attacks())
PARAMS = [(name, key, p) for name in ATTACKS for key, p in attack_params(name).items()]


def _text(x: float, kind: type) -> str:
    return str(int(x)) if kind is int else repr(float(x))


def _bad_values(p: Param) -> list[str]:
    """Texts that ``p`` must refuse: wrong type, non-finite, outside the range, no choice."""
    bad = ["abc", ""]
    if p.kind is int:
        bad += ["1.5", "1e3", "nan", "inf", "true"]
    elif p.kind is float:
        bad += ["nan", "inf", "-inf", "true"]
    elif p.kind is bool:
        bad += ["2", "1", "nan", "yes"]
    elif p.kind is str:
        bad += ["1", "true"]
    if p.choices is not None:
        bad.append("bogus")
    if p.low is not None:
        bad.append(_text(p.low, p.kind) if p.low_open else _text(p.low - 1, p.kind))
        bad.append(_text(-1e6, p.kind))
    if p.high is not None:
        bad.append(_text(p.high, p.kind) if p.high_open else _text(p.high + 1, p.kind))
    return bad


def _good_values(p: Param) -> list[str]:
    """Texts that ``p`` must accept: the closed ends of its range, its choices."""
    if p.kind is bool:
        return ["true", "false", "True"]
    if p.choices is not None:
        return list(p.choices)
    good = []
    if p.low is not None and not p.low_open:
        good.append(_text(p.low, p.kind))
    if p.high is not None and not p.high_open:
        good.append(_text(p.high, p.kind))
    return good


BAD_CASES = [(n, k, v) for n, k, p in PARAMS for v in _bad_values(p)]


def test_the_registry_holds_the_documented_attacks_and_parameters() -> None:
    assert {"fgsm", "pgd", "apgd", "square", "autoattack"} <= set(ATTACKS)
    assert set(attack_params("pgd")) == {"steps", "alpha", "random_start", "restarts"}
    assert attack_params("fgsm") == {}
    assert len(BAD_CASES) >= 4 * len(PARAMS) and len(PARAMS) >= 8


@pytest.mark.parametrize("name", ATTACKS)
def test_schema_matches_the_factory_signature(name: str) -> None:
    """Every keyword-only factory parameter is a checked user parameter, and nothing else is."""
    sig = inspect.signature(_ATTACKS[name].factory)
    kw = {
        k
        for k, v in sig.parameters.items()
        if v.kind is inspect.Parameter.KEYWORD_ONLY and k not in ("eps", "num_classes", "seed")
    }
    assert set(attack_params(name)) == kw
    for key in kw:  # the factory's own default passes its schema
        default = sig.parameters[key].default
        assert parse_attack(AttackSpec(name, {key: default})).params[key] == default


@pytest.mark.parametrize(("name", "key", "param"), PARAMS, ids=[f"{n}.{k}" for n, k, _ in PARAMS])
def test_every_parameter_has_a_range_or_choices(name: str, key: str, param: Param) -> None:
    assert param.kind in (int, float, bool, str), f"{name}.{key} has no declared type"
    if param.kind in (int, float):
        assert param.low is not None and param.high is not None, f"{name}.{key} has no range"
    if param.kind is str:
        assert param.choices, f"{name}.{key} takes any text"


@pytest.mark.parametrize(("name", "key", "value"), BAD_CASES, ids=[f"{n}.{k}={v!r}" for n, k, v in BAD_CASES])
def test_bad_values_are_refused_naming_attack_and_parameter(name: str, key: str, value: str) -> None:
    with pytest.raises(BadValueError, match=rf"^{name}: {key} ") as info:
        parse_attack(f"{name}:{key}={value}")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("name", "key", "param"), PARAMS, ids=[f"{n}.{k}" for n, k, _ in PARAMS])
def test_values_at_the_closed_ends_of_the_range_are_accepted(name: str, key: str, param: Param) -> None:
    good = _good_values(param)
    assert good
    for text in good:
        value = parse_attack(f"{name}:{key}={text}").params[key]
        assert isinstance(value, param.kind)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pgd:alpha=-0.01", "pgd: alpha must be > 0, got -0.01"),
        ("pgd:alpha=0", "pgd: alpha must be > 0, got 0"),
        ("pgd:alpha=nan", "pgd: alpha must be a finite number, got nan"),
        ("pgd:steps=abc", "pgd: steps must be an integer, got 'abc'"),
        ("pgd:steps=0", "pgd: steps must be >= 1, got 0"),
        ("pgd:restarts=0", "pgd: restarts must be >= 1, got 0"),
        ("pgd:random_start=yes", "pgd: random_start must be true or false, got 'yes'"),
        ("square:queries=-5", "square: queries must be >= 1, got -5"),
        ("apgd:steps=2.5", "apgd: steps must be an integer, got 2.5"),
        ("autoattack:version=fast", "autoattack: version must be one of standard, plus, rand, got 'fast'"),
    ],
)
def test_the_audits_examples_give_exact_messages(text: str, message: str) -> None:
    with pytest.raises(BadValueError) as info:
        parse_attack(text)
    assert str(info.value) == message


def test_good_text_is_converted_and_labelled_canonically() -> None:
    spec = parse_attack(" pgd : steps = 40 , alpha = 1 , random_start = False ")
    assert spec.params == {"steps": 40, "alpha": 1.0, "random_start": False}
    assert isinstance(spec.params["alpha"], float)
    assert spec.label == "pgd:alpha=1.0,random_start=False,steps=40"
    assert parse_attack("pgd:steps=40,alpha=0.01").label == "pgd:alpha=0.01,steps=40"


@pytest.mark.parametrize("name", ATTACKS)
def test_unknown_keys_are_refused_listing_the_valid_ones(name: str) -> None:
    with pytest.raises(BadValueError, match="takes no parameter bogus_key") as info:
        parse_attack(f"{name}:bogus_key=1")
    for key in attack_params(name):
        assert key in str(info.value)
    if not attack_params(name):
        assert "it takes: none" in str(info.value)


@pytest.mark.parametrize("text", ["fgsn", "PGD", "", ":steps=3", "pgd2:steps=3"])
def test_unknown_names_list_the_choices(text: str) -> None:
    with pytest.raises(UnknownNameError, match="unknown attack") as info:
        parse_attack(text)
    assert all(name in str(info.value) for name in ATTACKS)
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize(
    ("text", "match"),
    [("pgd:steps", "key=value"), ("pgd:=3", "key=value"), ("pgd:steps=3,steps=4", "steps is given twice")],
)
def test_malformed_text_is_refused(text: str, match: str) -> None:
    with pytest.raises(BadValueError, match=match):
        parse_attack(text)


class _Untouchable(nn.Module):
    """A model that fails the test if an attack is ever built on it."""

    def __getattr__(self, name: str):  # noqa: ANN204 (nn.Module's own signature)
        if name.startswith("_"):
            return super().__getattr__(name)
        raise AssertionError(f"the model was used ({name}) before the parameters were checked")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the model was called")


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("pgd", "alpha", -0.01),
        ("pgd", "alpha", math.nan),
        ("pgd", "steps", "40"),
        ("pgd", "steps", True),
        ("apgd", "restarts", 0),
        ("square", "queries", 2.0),
        ("autoattack", "version", None),
    ],
)
def test_build_attack_checks_a_spec_object_before_touching_the_model(
    name: str,
    key: str,
    value: object,
) -> None:
    with pytest.raises(BadValueError, match=rf"^{name}: {key} "):
        build_attack(
            AttackSpec(name, {key: value}), _Untouchable(), eps=0.1, num_classes=10, image_channels=1
        )


def test_build_attack_uses_the_checked_values() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    atk = build_attack("pgd:steps=2,alpha=1", model, eps=0.1, num_classes=3, image_channels=1)
    assert atk.alpha == 1.0 and atk.steps == 2
    atk = build_attack("pgd:steps=4", model, eps=0.1, num_classes=3, image_channels=1)
    assert atk.alpha == pytest.approx(2.5 * 0.1 / 4)  # alpha=None: the factory's default step


@pytest.mark.parametrize("eps", [math.nan, math.inf, -math.inf, -0.01, 1.01, "abc", None, True, "1e400"])
def test_bad_eps_is_refused(eps: object) -> None:
    with pytest.raises(BadValueError, match="eps must be"):
        check_eps(eps)  # type: ignore[arg-type]
    with pytest.raises(BadValueError, match="eps must be"):
        build_attack("fgsm", _Untouchable(), eps=eps, num_classes=10, image_channels=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("eps", "expected"), [(0, 0.0), (0.125, 0.125), (1, 1.0), ("0.5", 0.5), (-0.0, 0.0)])
def test_good_eps_is_a_float(eps: object, expected: float) -> None:
    value = check_eps(eps)  # type: ignore[arg-type]
    assert isinstance(value, float) and value == expected and math.copysign(1, value) == 1


def test_evaluate_refuses_bad_parameters_before_any_work() -> None:
    x, y = torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)
    with pytest.raises(BadValueError, match="pgd: alpha must be > 0"):
        evaluate(_Untouchable(), dataset=(x, y), attacks=["pgd:alpha=-0.01"], eps=[0.1])


@pytest.mark.parametrize(
    ("attack", "line"),
    [
        ("pgd:alpha=-0.01", "Error: pgd: alpha must be > 0, got -0.01"),
        ("pgd:steps=abc", "Error: pgd: steps must be an integer, got 'abc'"),
        ("fgsn", "Error: unknown attack 'fgsn'"),
    ],
)
def test_cli_reports_one_line_and_exit_2_before_loading_the_model(
    tmp_path: Path,
    attack: str,
    line: str,
) -> None:
    """The checkpoint does not exist: the attack text is refused before it would be read."""
    r = CliRunner().invoke(
        main,
        [
            "attack",
            "--model",
            str(tmp_path / "missing.pt"),
            "--attack",
            attack,
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert r.exit_code == 2, r.output
    assert line in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_a_plugin_attack_without_a_schema_gets_types_from_its_signature() -> None:
    """register_attack without ``params``: annotations (or defaults) give the checked types."""
    from robust_winn.attacks import AttackKind, register_attack

    def factory(
        model: nn.Module,
        *,
        eps: float,
        num_classes: int,
        seed: int,
        steps: int = 3,
        scale: float | None = None,
        flag: bool = False,
        mode="a",
    ):  # noqa: ANN001, ANN202
        raise AssertionError("not built here")

    register_attack("test-plugin", kind=AttackKind.ITERATIVE, description="test only")(factory)
    try:
        assert parse_attack("test-plugin:steps=4,scale=2,flag=true,mode=b").params == {
            "steps": 4,
            "scale": 2.0,
            "flag": True,
            "mode": "b",
        }
        for text, match in [
            ("steps=abc", "steps must be an integer"),
            ("scale=nan", "scale must be a finite"),
            ("flag=1", "flag must be true or false"),
            ("mode=1", "mode must be text"),
        ]:
            with pytest.raises(BadValueError, match=f"^test-plugin: {match}"):
                parse_attack(f"test-plugin:{text}")
        assert parse_attack(AttackSpec("test-plugin", {"scale": None})).params == {"scale": None}
    finally:
        del _ATTACKS["test-plugin"]
    with pytest.raises(ValueError, match="not keyword-only parameters"):
        register_attack(
            "test-plugin-2",
            kind=AttackKind.ITERATIVE,
            description="x",
            params={"nope": Param(int, low=1, high=2)},
        )(factory)
    assert "test-plugin-2" not in _ATTACKS
