"""Inception-score formula, Inception weight handling, and the digit score (paper §5.5)."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from robust_winn.evaluation.scores import (
    INCEPTION_FILE,
    InceptionWeightsMissing,
    digit_score,
    inception_score,
    inception_weights_path,
    score_from_probs,
)
from robust_winn.models import Introspective, build_classifier
from robust_winn.runtime.checkpoint import save_checkpoint


def test_score_formula_known_cases():
    mean, std = score_from_probs(torch.full((40, 7), 1 / 7), splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)
    one_hot = torch.eye(5).repeat(8, 1)  # every split holds each class twice
    mean, std = score_from_probs(one_hot, splits=4)
    assert mean == pytest.approx(5.0) and std == pytest.approx(0.0, abs=1e-9)
    # by hand: p(y) = (0.75, 0.25); KL = log(4/3) and 0.5 log(2/3) + 0.5 log 2
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    kl = (math.log(4 / 3) + 0.5 * math.log(2 / 3) + 0.5 * math.log(2)) / 2
    assert score_from_probs(p, splits=1)[0] == pytest.approx(math.exp(kl))
    # splits: two halves scoring 1 and 2 -> mean 1.5, std 0.5
    halves = torch.cat([torch.full((4, 2), 0.5), torch.eye(2).repeat(2, 1)])
    assert score_from_probs(halves, splits=2) == pytest.approx((1.5, 0.5))
    with pytest.raises(ValueError, match="splits"):
        score_from_probs(p, splits=3)


def test_missing_inception_weights_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(InceptionWeightsMissing) as info:
        inception_weights_path()
    msg = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / INCEPTION_FILE) in msg and "--inception-weights" in msg
    with pytest.raises(InceptionWeightsMissing, match="does not exist"):
        inception_score(torch.zeros(2, 3, 8, 8), weights=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(InceptionWeightsMissing, match="cannot load"):
        inception_score(torch.zeros(2, 3, 8, 8), weights=bad)


def test_inception_score_runs_on_local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)  # random stand-in weights
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(net.state_dict(), hub / "checkpoints" / INCEPTION_FILE)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    x = torch.rand(2, 1, 16, 16) * 2 - 1  # grey, small: expanded to 3 channels and resized to 299
    mean, std = inception_score(x, splits=1)
    assert 1.0 <= mean <= 2.0 and std == 0.0


def test_digit_score_uses_the_classifier(tmp_path: Path):
    torch.manual_seed(0)
    clf = build_classifier("vanilla", image_shape=(1, 28, 28), num_classes=10)
    model = Introspective(clf, 10)
    path = tmp_path / "clf.pt"
    meta = {"arch": "vanilla", "kwargs": {}, "image_shape": [1, 28, 28], "num_classes": 10}
    save_checkpoint({"model": meta, "model_state": model.state_dict()}, path)
    x = torch.rand(20, 3, 16, 16) * 2 - 1  # RGB 16x16 -> grey 28x28 for the classifier
    got = digit_score(x, path, splits=2)
    model.eval()
    with torch.no_grad():
        adapted = F.interpolate(x.mean(1, keepdim=True), size=(28, 28), mode="bilinear", align_corners=False)
        want = score_from_probs(F.softmax(model(adapted), 1), splits=2)
    assert got == pytest.approx(want) and 1.0 <= got[0] <= 10.0
