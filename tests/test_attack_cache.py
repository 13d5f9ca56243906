"""experiments/attack_cache.py: a saved result is reused only under an equal key."""

from __future__ import annotations

from pathlib import Path

import pytest

from robust_winn.experiments.attack_cache import cached, checkpoint_sha256, runtime_key


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, object]:
        self.calls += 1
        return {"rows": [self.calls], "warnings": []}


def test_equal_key_reuses_other_key_recomputes(tmp_path: Path) -> None:
    compute = Counter()
    key = {"eps": (0.1, 0.3), "seed": 0}  # a tuple: saved as a list, still equal
    first, reused1 = cached(tmp_path, "run", key, compute)
    again, reused2 = cached(tmp_path, "run", dict(key), compute)
    other, reused3 = cached(tmp_path, "run", {**key, "seed": 1}, compute)
    assert (reused1, reused2, reused3) == (False, True, False)
    assert first == again == {"rows": [1], "warnings": []} and other["rows"] == [2]
    assert compute.calls == 2 and len(list(tmp_path.glob("run-*.json"))) == 2


def test_a_broken_file_is_recomputed_and_replaced(tmp_path: Path) -> None:
    compute = Counter()
    cached(tmp_path, "run", {"seed": 0}, compute)
    (path,) = tmp_path.glob("run-*.json")
    path.write_text('{"key": ')
    value, reused = cached(tmp_path, "run", {"seed": 0}, compute)
    assert not reused and value["rows"] == [2]
    assert cached(tmp_path, "run", {"seed": 0}, compute) == (value, True)


def test_a_value_may_not_shadow_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key"):
        cached(tmp_path, "run", {"seed": 0}, lambda: {"key": 1})


def test_key_parts_name_what_changes_numbers(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert checkpoint_sha256(a) != checkpoint_sha256(b) and len(checkpoint_sha256(a)) == 64
    assert set(runtime_key("cpu")) == {"device", "torch", "torch_threads"}
    assert runtime_key("cpu")["device"] == "cpu"
