import pickle
from pathlib import Path

import pytest
import torch

from robust_winn.runtime.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/robust_winn_pwned"),))


def test_round_trip_and_format(tmp_path: Path):
    save_checkpoint({"x": torch.arange(3), "meta": {"a": 1}}, tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(state["x"], torch.arange(3)) and state["meta"] == {"a": 1}
    assert list(tmp_path.iterdir()) == [tmp_path / "c.pt"]  # no temp files left behind


def test_a_checkpoint_cannot_run_code(tmp_path: Path):
    target = Path("/tmp/robust_winn_pwned")
    target.unlink(missing_ok=True)
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": "robust_winn.runtime.checkpoint/1", "x": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not target.exists()


def test_garbage_and_foreign_files_are_rejected(tmp_path: Path):
    (tmp_path / "g.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "g.pt")
    torch.save({"state_dict": {}}, tmp_path / "f.pt")
    with pytest.raises(CheckpointError, match="not a robust_winn checkpoint"):
        load_checkpoint(tmp_path / "f.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_interrupted_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "c.pt"
    save_checkpoint({"v": 1}, path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"v": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["v"] == 1
    assert list(tmp_path.iterdir()) == [path]
