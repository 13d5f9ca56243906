"""One registry type (robust_winn.registry) behind models, attacks, datasets and positives."""

from __future__ import annotations

import pytest

from robust_winn.attacks import list_attacks, parse_attack
from robust_winn.attacks.registry import _ATTACKS
from robust_winn.data.datasets import _DATASETS, list_datasets, load_dataset, register_dataset
from robust_winn.data.positives import _POSITIVES, UnsupDataset, list_positives, load_positives
from robust_winn.errors import BadValueError, ModelSpecError, UnknownNameError
from robust_winn.models import create_model, list_models, register_model
from robust_winn.models.registry import _MODELS
from robust_winn.registry import Registry, check_kwargs


def _reg() -> Registry[int]:
    reg: Registry[int] = Registry("widget", hint=" (or build one)")
    reg.add("b", 2, "the second")

    @reg.register("a")
    def a() -> int:
        """The first.

        Not this line."""
        return 1

    return reg


def test_lookup_listing_and_descriptions() -> None:
    reg = _reg()
    assert reg["b"] == 2 and reg["a"]() == 1
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and len(reg) == 2
    assert reg.describe() == {"a": "The first.", "b": "the second"}
    assert "a" in reg and "c" not in reg and 3 not in reg and reg.get("c") is None


@pytest.mark.parametrize("name", ["c", "", "A", None])
def test_an_unknown_name_is_a_user_error_listing_the_choices(name: object) -> None:
    with pytest.raises(UnknownNameError, match=r"^unknown widget .*; choose one of: a, b \(or build one\)$"):
        _reg()[name]  # type: ignore[index]


def test_a_name_registers_once_and_can_be_removed() -> None:
    reg = _reg()
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.add("a", 3, "again")
    assert reg["a"]() == 1
    del reg["a"]
    assert reg.names() == ["b"]
    with pytest.raises(UnknownNameError, match="unknown widget 'a'"):
        del reg["a"]


def test_check_kwargs_names_the_valid_keywords() -> None:
    check_kwargs("f", ["x"], {"x": "", "y": ""})
    with pytest.raises(BadValueError, match=r"^f takes no keyword 'z', 'zz'; it takes: x, y \(a number\)$"):
        check_kwargs("f", ["zz", "x", "z"], {"x": "", "y": "a number"})
    with pytest.raises(ModelSpecError, match="^g takes no option q; it takes: none$"):
        check_kwargs("g", ["q"], {}, noun="option", error=ModelSpecError, show=str)


def test_the_four_registries_are_registries() -> None:
    for reg in (_MODELS, _ATTACKS, _DATASETS, _POSITIVES):
        assert isinstance(reg, Registry)
    assert list_models() == _MODELS.describe() and list_attacks() == _ATTACKS.describe()
    assert list_datasets() == _DATASETS.describe() and list_positives() == _POSITIVES.describe()
    assert {"mnist", "fashion-mnist", "svhn", "cifar10", "sample"} == set(list_datasets())
    assert set(_POSITIVES.names()) == {d.value for d in UnsupDataset}  # the Enum is the closed set


def test_unknown_names_keep_their_older_error_types() -> None:
    with pytest.raises(UnknownNameError, match="unknown model 'nope'; choose one of: .*vanilla.*import"):
        create_model("nope")
    with pytest.raises(ModelSpecError):  # as before the shared registry
        create_model("nope")
    with pytest.raises(UnknownNameError, match="unknown unsupervised dataset 'lsun'; choose.*texture"):
        load_positives("lsun")
    with pytest.raises(BadValueError):
        load_positives("lsun")
    with pytest.raises(UnknownNameError, match="unknown dataset 'imagenet'; choose one of: cifar10, "):
        load_dataset("imagenet")
    with pytest.raises(UnknownNameError, match="unknown attack 'fgsn'; choose one of: .*fgsm"):
        parse_attack("fgsn")


def test_a_model_keyword_typo_names_the_valid_keywords() -> None:
    with pytest.raises(ModelSpecError, match="^'vanilla' takes no keyword 'widht'; it takes: .*in_channels"):
        create_model("vanilla", widht=999)
    with pytest.raises(BadValueError, match="^attack 'pgd' takes no parameter stepz; it takes: steps "):
        parse_attack("pgd:stepz=3")


def test_a_registered_model_and_dataset_appear_in_the_lists() -> None:
    from torch import nn

    @register_model("test-registry-model")
    def factory(*, num_classes: int = 3) -> nn.Module:
        """Test only."""
        return nn.Linear(2, num_classes)

    try:
        assert list_models()["test-registry-model"] == "Test only."
        assert create_model("test-registry-model", in_channels=1, num_classes=4).out_features == 4
        with pytest.raises(ValueError, match="already registered"):
            register_model("test-registry-model")(factory)
    finally:
        del _MODELS["test-registry-model"]

    @register_dataset("test-registry-data", num_classes=10, default_val=10, description="test only")
    def loader(root, download):  # noqa: ANN001, ANN202
        return load_dataset("sample", val_size=0).train, load_dataset("sample", val_size=0).test

    try:
        assert list_datasets()["test-registry-data"] == "test only"
        splits = load_dataset("test-registry-data")
        assert len(splits.val) == 10 and splits.num_classes == 10
    finally:
        del _DATASETS["test-registry-data"]
