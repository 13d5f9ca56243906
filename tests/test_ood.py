"""OOD metrics against hand-computed cases, OOD set loaders on tiny files and their errors (issue 14 §5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robust_winn.data.ood_sets import (
    conform_images,
    list_synthetic_sets,
    load_image_folder,
    load_npz_images,
    synthetic_set,
)
from robust_winn.errors import BadValueError, DataUnavailableError, UnknownNameError, UserError
from robust_winn.evaluation.ood_inputs import SetKind, parse_ood, parse_scores
from robust_winn.evaluation.ood_scores import Score, critic_status, ood_metrics, score_images
from robust_winn.models import Introspective

MNIST = (1, 28, 28)


# ------------------------------------------------------------------ metrics


def test_perfect_score_gives_auroc_1_and_fpr95_0() -> None:
    m = ood_metrics([0.9, 0.8, 0.7], [0.1, 0.2])
    assert m == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}


def test_constant_score_gives_auroc_half_and_fpr95_1() -> None:
    m = ood_metrics(np.ones(5), np.ones(7))
    assert m["auroc"] == 0.5
    assert m["fpr95"] == 1.0  # every OOD image ties with the threshold that keeps 95% TPR
    assert m["aupr"] == pytest.approx(5 / 12)  # the share of positives


def test_hand_computed_case() -> None:
    # pairs (in > out): 0.9>0.5, 0.9>0.1, 0.8>0.5, 0.8>0.1, 0.4>0.1 = 5 of 6; keeping every
    # in-distribution image (TPR >= 95%) needs threshold 0.4, above which one of two OOD scores lies
    m = ood_metrics([0.9, 0.8, 0.4], [0.5, 0.1])
    assert m["auroc"] == pytest.approx(5 / 6)
    assert m["fpr95"] == 0.5
    # AUPR-In = average precision: recalls 1/3, 2/3 at precision 1, recall 1 at precision 3/4
    assert m["aupr"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert ood_metrics([0.1, 0.2], [0.8, 0.9])["auroc"] == 0.0  # the sign matters


def test_metrics_refuse_empty_and_non_finite() -> None:
    with pytest.raises(ValueError):
        ood_metrics([], [1.0])
    with pytest.raises(ValueError):
        ood_metrics([1.0, float("nan")], [0.0])


def test_scores_follow_their_definitions() -> None:
    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    model = Introspective(clf, 3)
    x = torch.rand(6, 1, 2, 2) * 2 - 1
    scores, logits = score_images(model, x, scores=list(Score), batch_size=4)
    with torch.no_grad():
        ref = clf(x)
    assert torch.allclose(logits, ref, atol=1e-6)
    assert np.allclose(scores[Score.MSP], ref.softmax(1).amax(1).numpy(), atol=1e-6)
    assert np.allclose(scores[Score.ENERGY], ref.logsumexp(1).numpy(), atol=1e-5)
    assert np.allclose(scores[Score.CRITIC], model.critic(x).detach().numpy(), atol=1e-6)
    # f is affine in x here: its gradient is the same for every image, and the score is minus its norm
    w = (model.critic_head.weight @ clf[1].weight).norm().item()
    assert np.allclose(scores[Score.CRITIC_GRAD], -w, atol=1e-5)
    assert not any(p.grad is not None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # restored


def test_critic_applies_only_to_winn_trained_checkpoints() -> None:
    assert critic_status({"method": "winn", "config": {"alpha": 0.01}}) is None
    assert critic_status({"method": "winn-at", "config": {"alpha": 0.01}}) is None
    for method in ("baseline", "pgd-at", "trades", None):
        reason = critic_status({"method": method, "config": {"alpha": 0.01}})
        assert reason is not None and "not trained" in reason and str(method) in reason
    assert "alpha 0" in str(critic_status({"method": "winn", "config": {"alpha": 0.0}}))


# ------------------------------------------------------------------ names


def test_parse_ood_names() -> None:
    assert parse_ood("fashion-mnist").kind is SetKind.DATASET
    assert parse_ood("uniform-noise").kind is SetKind.SYNTHETIC
    assert parse_ood("folder:/x/y").target == "/x/y"
    assert parse_ood("npz:a.npz").kind is SetKind.NPZ
    adv = parse_ood("adv:fgsm:0.125")
    assert (adv.kind, adv.target, adv.eps, adv.name) == (SetKind.ADV, "fgsm", 0.125, "adv:fgsm:0.125")
    pgd = parse_ood("adv:pgd:steps=5,alpha=0.01:0.1")
    assert (pgd.target, pgd.eps) == ("pgd:alpha=0.01,steps=5", 0.1)


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("svhn-typo", UnknownNameError, "choose a dataset"),
        ("adv:fgsm", BadValueError, "adv:ATTACK:EPS"),
        ("adv:fgsm:2", BadValueError, "eps"),
        ("adv:fgsm:0", BadValueError, "clean test images"),
        ("adv:nope:0.1", UnknownNameError, "attack"),
        ("folder:", BadValueError, "give a path"),
    ],
)
def test_bad_ood_names(name: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        parse_ood(name)


def test_parse_scores() -> None:
    assert parse_scores(["msp", "critic-grad"]) == (Score.MSP, Score.CRITIC_GRAD)
    with pytest.raises(UnknownNameError, match="msp, critic"):
        parse_scores(["mps"])
    with pytest.raises(BadValueError):
        parse_scores(["msp", "msp"])


# ------------------------------------------------------------------ synthetic sets


def _reference(n: int = 4) -> torch.Tensor:
    return torch.randint(0, 256, (n, *MNIST), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_synthetic_sets_are_seeded_images_of_the_reference_shape() -> None:
    ref = _reference()
    assert set(list_synthetic_sets()) == {
        "uniform-noise",
        "gaussian-noise",
        "constant",
        "permuted",
        "inverted",
    }
    for name in list_synthetic_sets():
        a, b = synthetic_set(name, ref, seed=3), synthetic_set(name, ref, seed=3)
        assert a.dtype == torch.uint8 and a.shape == ref.shape
        assert torch.equal(a, b)
    assert torch.equal(synthetic_set("inverted", ref), 255 - ref)
    const = synthetic_set("constant", ref)
    assert (const == const[:, :, :1, :1]).all()
    perm = synthetic_set("permuted", ref)
    assert torch.equal(perm.flatten(1).sort(1).values, ref.flatten(1).sort(1).values)  # same pixels
    assert not torch.equal(perm, ref)
    assert not torch.equal(
        synthetic_set("uniform-noise", ref, seed=0), synthetic_set("uniform-noise", ref, seed=1)
    )
    with pytest.raises(UnknownNameError, match="uniform-noise"):
        synthetic_set("pink-noise", ref)


# ------------------------------------------------------------------ folders and npz files


def _png(path: Path, size: tuple[int, int], color: tuple[int, ...] | int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_folder_images_are_converted_and_resized(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", (40, 32), (255, 0, 0))  # RGB, another size
    _png(tmp_path / "sub" / "b.png", (28, 28), 200, mode="L")  # sub-folders are read
    (tmp_path / ".DS_Store").write_bytes(b"junk")  # hidden files are skipped
    x = load_image_folder(tmp_path, MNIST)
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.uint8
    assert int(x[0].float().mean().round()) == 76  # PIL luminance of pure red: 299/1000 * 255
    assert (x[1] == 200).all()
    rgb = load_image_folder(tmp_path, (3, 16, 16), limit=1)
    assert rgb.shape == (1, 3, 16, 16) and rgb[0, 0].float().mean() == 255 and rgb[0, 1].max() == 0


def test_npz_layouts_and_ranges(tmp_path: Path) -> None:
    nhwc = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    np.savez(tmp_path / "f.npz", images=nhwc, labels=np.zeros(3))
    x = load_npz_images(tmp_path / "f.npz", MNIST)
    assert torch.equal(x, torch.from_numpy(np.rint(nhwc * 255).astype(np.uint8)).permute(0, 3, 1, 2))
    nchw = (np.arange(2 * 3 * 8 * 8) % 256).astype(np.uint8).reshape(2, 3, 8, 8)
    np.savez(tmp_path / "c.npz", nchw)  # the only array, any name
    assert load_npz_images(tmp_path / "c.npz", (3, 8, 8)).equal(torch.from_numpy(nchw))
    assert load_npz_images(tmp_path / "c.npz", MNIST, limit=1).shape == (1, 1, 28, 28)
    np.savez(tmp_path / "g.npz", images=np.full((2, 28, 28), 7, dtype=np.int64))  # (N, H, W) integers
    assert (load_npz_images(tmp_path / "g.npz", MNIST) == 7).all()


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.full((2, 28, 28), 1.5, dtype=np.float32), r"float images must lie in \[0, 1\]"),
        (np.full((2, 28, 28), 300, dtype=np.int32), "0..255"),
        (np.zeros((2, 3, 28, 3), dtype=np.uint8), "NHWC or NCHW"),
        (np.zeros((2, 28, 28, 2), dtype=np.uint8), "2 channels cannot be converted"),
        (np.zeros((2, 2, 28, 28), dtype=np.uint8), "2 channels cannot be converted"),
        (np.zeros((0, 28, 28), dtype=np.uint8), "no images"),
        (np.zeros((28, 28), dtype=np.uint8), "is not images"),
        (np.array([[[float("nan")]]], dtype=np.float32), "NaN"),
    ],
)
def test_bad_npz_arrays(tmp_path: Path, array: np.ndarray, words: str) -> None:
    np.savez(tmp_path / "bad.npz", images=array)
    with pytest.raises(BadValueError, match=words):
        load_npz_images(tmp_path / "bad.npz", MNIST)


def test_bad_npz_files(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 28, 28)), b=np.zeros((1, 28, 28)))
    with pytest.raises(BadValueError, match="name the images 'images'"):
        load_npz_images(tmp_path / "two.npz", MNIST)
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28)))
    with pytest.raises(BadValueError, match="not a .npz archive"):
        load_npz_images(tmp_path / "x.npy", MNIST)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataUnavailableError, match="cannot read"):
        load_npz_images(tmp_path / "junk.npz", MNIST)
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_npz_images(tmp_path / "missing.npz", MNIST)


def test_bad_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadValueError, match="holds no image files"):
        load_image_folder(empty, MNIST)
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_image_folder(tmp_path / "missing", MNIST)
    mixed = tmp_path / "mixed"
    _png(mixed / "a.png", (28, 28), 0, mode="L")
    (mixed / "notes.txt").write_text("hello")
    with pytest.raises(BadValueError, match="notes.txt is not an image file"):
        load_image_folder(mixed, MNIST)
    sizes = tmp_path / "sizes"
    _png(sizes / "a.png", (28, 28), 0, mode="L")
    _png(sizes / "b.png", (32, 32), 0, mode="L")
    assert load_image_folder(sizes, MNIST).shape == (2, 1, 28, 28)  # resized by default
    with pytest.raises(BadValueError, match="b.png: image is 32x32 but the model takes 28x28"):
        load_image_folder(sizes, MNIST, resize=False)
    with pytest.raises(BadValueError, match="2-channel images"):
        load_image_folder(sizes, (2, 28, 28))
    deep = tmp_path / "deep"
    deep.mkdir()
    Image.fromarray(np.zeros((28, 28), dtype=np.uint16)).save(deep / "d.png")
    with pytest.raises(BadValueError, match="16-bit"):
        load_image_folder(deep, MNIST)


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    """Every loader error is a UserError whose message fits the CLI's one ``Error:`` line."""
    with pytest.raises(UserError) as info:
        conform_images(np.zeros((1, 5, 4, 4), dtype=np.uint8), MNIST, where="npz:x")
    assert "\n" not in str(info.value)
