"""The harness's per-batch loop: every attack on every model, scoring, and a shared clean pass.

Paper §5.6, REFERENCE §2; issue 16. The clean pass (clean predictions and the zero pattern of
the input gradient, Carlini et al. 2019 §5.3) is the first pass of FGSM, and of PGD without a
random start: a forward of the clean batch and the gradient of the batch-mean cross-entropy
with respect to it. A pair of hooks on each model (:class:`_Tap`) recognises that forward by its
input being bit for bit the clean batch, keeps its logits and the zero pattern of its input
gradient, and so the harness does not repeat it. APGD and Square start with a forward of the
clean batch without gradient (their clean-accuracy check): that gives the logits only. What no
attack computed on a batch, the harness computes itself: a forward for the predictions, and a
forward + backward for the gradient statistics. The statistics cover every image when one of the
attacks takes the clean gradient (free where its forward is recognised; where it is not, below,
the harness's own pass covers them as before), else only the first ``gradient_sample`` images,
as an extra pass; the record gives the number of images they are over.

Recognition: torchattacks maps the harness's [-1, 1] images to [0, 1] (``x * 0.5 + 0.5``) and
back before each forward (``(u - 0.5) / 0.5``; see registry.py). That round trip is exact for
images on the 8-bit grid, which every dataset robust_winn loads is, so the attack's forward sees
exactly the clean batch. For other float inputs it may not be; the forward is then not
recognised and the harness runs its own clean pass, as it did before this sharing.

The statistic is the zero pattern of the gradient FGSM itself uses, that of the *batch mean* of
the cross-entropy (torchattacks' ``nn.CrossEntropyLoss()``); the harness's own pass computes the
same. Before issue 16 it was the gradient of the *sum*: the same up to float underflow, which
differs on a saturated model, where a per-image gradient below the batch size times the smallest
float rounds to zero in the mean. The mean's zeros are exactly the entries FGSM cannot move at
this batch size (tests/test_harness_sharing.py shows both).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..evaluation.calibration import calibration_terms
from ..models import ModelSpecError
from .registry import AttackSpec, build_attack

log = logging.getLogger(__name__)

__all__ = ["check_outputs", "run_batches", "shares_clean_gradient", "warn"]


def shares_clean_gradient(spec: AttackSpec) -> bool:
    """Whether the attack's first gradient is the harness's clean-pass gradient.

    FGSM's is (batch-mean CE at the clean batch), and so is PGD's without a random start (each
    restart's too). APGD starts at a random point, the targeted and DLR attacks use other losses,
    Square uses no gradient, and an attack registered under another name is not assumed to.
    """
    if spec.name == "fgsm":
        return True
    return spec.name == "pgd" and spec.params.get("random_start") is False


def warn(messages: list[str], new: list[str]) -> None:
    """Log each of ``new`` as a warning and append it to ``messages``."""
    for m in new:
        log.warning(m)
    messages.extend(new)


def check_outputs(name: str, out: Any, batch: int, num_classes: int | None) -> list[str]:
    """Shape, finiteness and 'probabilities instead of logits' checks on one forward pass.

    Raises:
        ModelSpecError: ``out`` is not a finite (batch, K) tensor with K = ``num_classes``.
    """
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != batch:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ModelSpecError(f"{name}: model must return (N, K) logits; got {shape} for N={batch}")
    if num_classes is not None and out.shape[1] != num_classes:
        raise ModelSpecError(
            f"{name}: model gives {out.shape[1]} outputs but the dataset has {num_classes} classes"
        )
    if not torch.isfinite(out).all():
        raise ModelSpecError(f"{name}: model returns non-finite logits on clean test images")
    rows_sum_to_one = torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-3)
    if rows_sum_to_one and out.min() >= 0 and out.max() <= 1:
        return [
            f"{name}: outputs are in [0, 1] and sum to 1 per row: the model looks like it ends "
            f"in softmax. Return logits instead: the attacks' cross-entropy applies its own "
            f"softmax, and a double softmax flattens the gradients"
        ]
    return []


def _zero_counts(grad: Tensor) -> tuple[int, int]:
    """(images whose whole input gradient is zero, zero gradient entries) of one batch."""
    zero = grad.flatten(1) == 0  # (B, C*H*W)
    return int(zero.all(1).sum()), int(zero.sum())


class _Tap:
    """Hooks on one model: count the images it forwards; catch an attack's pass at the clean batch.

    Between :meth:`arm` and the next forward, that forward is examined: if its input is the
    clean batch (same shape, dtype and values), its logits are kept and, when asked and the
    input requires grad, the zero pattern of the gradient that later reaches the input.
    """

    def __init__(self, name: str, model: nn.Module) -> None:
        self.name = name
        self.images = 0  # images forwarded by every pass: harness, attacks, scoring
        self.clean = torch.empty(0)  # the clean batch of the current step
        self.logits: Tensor | None = None  # its logits, once computed (B, K)
        self.zero: tuple[int, int] | None = None  # its gradient's zero counts, once computed
        self.warnings: list[str] = []  # of the output check on the first batch
        self._pending_check = False  # check the next accepted logits (first batch)
        self._num_classes: int | None = None  # the K they must have, when known
        self._armed = False
        self._want_grad = False
        self._hit = False
        self._hooks = [
            model.register_forward_pre_hook(self._pre),
            model.register_forward_hook(self._post),
        ]

    def new_batch(self, x: Tensor, *, check: bool, num_classes: int | None) -> None:
        """Look for ``x`` (B, C, H, W) from now on; check the outputs on it if ``check``."""
        self.clean, self.logits, self.zero = x, None, None
        self._pending_check, self._num_classes = check, num_classes

    def arm(self, *, want_grad: bool) -> None:
        """Examine the next forward only (an attack's first), keeping its gradient if asked."""
        self._armed, self._want_grad = True, want_grad and self.zero is None

    def disarm(self) -> None:
        """Stop looking (the attack made no forward)."""
        self._armed = False

    def accept(self, logits: Any) -> None:
        """Keep the clean batch's logits (B, K), checked on the first batch."""
        if self._pending_check:
            self.warnings = check_outputs(self.name, logits, self.clean.shape[0], self._num_classes)
            self._pending_check = False
        self.logits = logits

    def _pre(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        z = args[0] if args and isinstance(args[0], Tensor) else None
        if z is not None:
            self.images += int(z.shape[0])
        if not self._armed:
            return
        self._armed = False
        c = self.clean
        if z is None or z.shape != c.shape or z.dtype != c.dtype or not torch.equal(z.detach(), c):
            return
        self._hit = True
        if self._want_grad and z.requires_grad:
            z.register_hook(self._keep_grad)

    def _post(self, _module: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
        if self._hit:
            self._hit = False
            if self.logits is None:
                self.accept(out.detach() if isinstance(out, Tensor) else out)

    def _keep_grad(self, grad: Tensor) -> None:
        if self.zero is None:  # the first backward through the clean batch is the attack's own
            self.zero = _zero_counts(grad)

    def close(self) -> None:
        """Remove the hooks."""
        for h in self._hooks:
            h.remove()


def _own_clean_pass(tap: _Tap, m: nn.Module, x: Tensor, y: Tensor, *, gradient: bool) -> None:
    """The clean pass no attack made: a forward, with the input gradient's zeros if asked."""
    if not gradient:
        with torch.inference_mode():
            tap.accept(m(x))  # (B, K)
        return
    xg = x.clone().requires_grad_(True)
    logits = m(xg)  # (B, K)
    tap.accept(logits.detach())
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), xg)  # batch mean, as the attacks
    tap.zero = _zero_counts(grad)


def _num_classes(name: str, m: nn.Module, x: Tensor) -> int:
    """K from one image's forward, for data that does not say (a ``(images, labels)`` pair)."""
    with torch.inference_mode():
        out = m(x[:1])
    check_outputs(name, out, 1, None)
    return int(out.shape[1])


def run_batches(
    named: dict[str, nn.Module],
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    specs: list[AttackSpec],
    eps_list: list[float],
    num_classes: int | None,
    dev: torch.device,
    seed: int,
    warnings: list[str],
    keep_images: bool,
    gradient_sample: int | None,
) -> dict[str, Any]:
    """Attack every model with every (attack, eps > 0) per batch; score each example set once.

    Each adversarial batch is classified by every model in one forward per model; eps = 0 is
    the clean set, whose predictions are the clean pass's (no attack, no extra forward). The
    clean pass is shared with the attacks where they compute it (module docstring). Warnings
    are logged and appended to ``warnings``.

    Returns:
        The raw per-example outcomes and counts that :func:`~.harness.evaluate` summarises;
        ``cost["forward_images"]`` counts every image each model forwarded (the attacks' passes
        included).
    """
    loop = _BatchLoop(named, specs, eps_list, num_classes, seed, warnings, keep_images, gradient_sample)
    try:
        for x, y in batches:
            loop.step(x.to(dev), y.to(dev))
    finally:
        for tap in loop.taps.values():
            tap.close()
    return loop.result()


class _BatchLoop:
    """The accumulators of :func:`run_batches` and its work on one batch."""

    def __init__(
        self,
        named: dict[str, nn.Module],
        specs: list[AttackSpec],
        eps_list: list[float],
        num_classes: int | None,
        seed: int,
        warnings: list[str],
        keep_images: bool,
        gradient_sample: int | None,
    ) -> None:
        self.named, self.specs, self.eps_list, self.seed = named, specs, eps_list, seed
        self.num_classes, self.warnings, self.keep_images = num_classes, warnings, keep_images
        self.attacks = [(s, e) for s in specs for e in eps_list if e > 0]
        # An attack that computes the clean gradient on every image makes full statistics free.
        self.full_stats = gradient_sample is None or any(shares_clean_gradient(s) for s, _ in self.attacks)
        self.gradient_sample = gradient_sample or 0
        self.taps = {n: _Tap(n, m) for n, m in named.items()}
        self.built: dict[tuple[str, str, float], Any] = {}
        self.labels: list[Tensor] = []
        self.clean: dict[str, list[Tensor]] = defaultdict(list)
        self.adv: dict[tuple[str, str, float, str], list[Tensor]] = defaultdict(list)
        # calibration terms per image (evaluation.calibration.calibration_terms), same keys
        self.clean_cal: dict[str, list[Tensor]] = defaultdict(list)
        self.adv_cal: dict[tuple[str, str, float, str], list[Tensor]] = defaultdict(list)
        self.images: dict[tuple[str, str, float], list[Tensor]] = defaultdict(list)
        self.first_clean = torch.empty(0)
        self.zero_img = dict.fromkeys(named, 0)
        self.zero_px = dict.fromkeys(named, 0)
        self.measured = dict.fromkeys(named, 0)  # images the gradient statistics are over
        self.shared = dict.fromkeys(named, 0)  # images whose clean logits an attack's pass gave
        self.times: dict[str, float] = defaultdict(float)  # seconds: clean pass, each attack, scoring
        self.attacked = 0  # adversarial images made (all sources, attacks, eps > 0)
        self.outside = 0.0  # largest distance beyond the eps-ball or [0, 1], [0, 1] units
        self.pixels = 0

    def step(self, x: Tensor, y: Tensor) -> None:
        """One batch: x (B, C, H, W) in [-1, 1], y (B,), both on the device."""
        first = not self.labels
        self.pixels = x[0].numel()
        self.labels.append(y.cpu())
        if self.keep_images and first:
            self.first_clean = ((x[:8] + 1.0) / 2.0).cpu()
        for src, m in self.named.items():
            tap = self.taps[src]
            stats = self.full_stats or self.measured[src] < self.gradient_sample
            tap.new_batch(x, check=first, num_classes=self.num_classes)
            for spec, e in self.attacks:
                self._attack(src, m, spec, e, x, y, want_grad=stats and shares_clean_gradient(spec))
            t = time.perf_counter()
            if tap.logits is not None:
                self.shared[src] += x.shape[0]
            if tap.logits is None or (stats and tap.zero is None):
                _own_clean_pass(tap, m, x, y, gradient=stats and tap.zero is None)
            assert tap.logits is not None  # accepted from an attack's pass or the harness's own
            warn(self.warnings, tap.warnings)
            tap.warnings = []
            self.num_classes = self.num_classes or int(tap.logits.shape[1])
            self.clean[src].append(tap.logits.argmax(1).cpu())
            self.clean_cal[src].append(calibration_terms(tap.logits, y))
            if stats and tap.zero is not None:
                self.measured[src] += x.shape[0]
                self.zero_img[src] += tap.zero[0]
                self.zero_px[src] += tap.zero[1]
            self.times["clean_time_s"] += time.perf_counter() - t

    def _attack(
        self, src: str, m: nn.Module, spec: AttackSpec, e: float, x: Tensor, y: Tensor, *, want_grad: bool
    ) -> None:
        """Make ``src``'s examples of one (attack, eps) and classify them by every model."""
        key = (src, spec.label, e)
        t = time.perf_counter()
        self.attacked += x.shape[0]
        if key not in self.built:
            self.num_classes = self.num_classes or _num_classes(src, m, x)
            self.built[key] = build_attack(
                spec, m, eps=e, num_classes=self.num_classes, image_channels=x.shape[1], seed=self.seed
            )
            self.built[key].set_device(x.device)
        self.taps[src].arm(want_grad=want_grad)
        x_adv = self.built[key](x, y).detach()  # (B, C, H, W) in [-1, 1]
        self.taps[src].disarm()
        # distance in [0, 1] units beyond the ball, or beyond [0, 1]
        dist = ((x_adv - x).abs() / 2).amax().item() - e
        rng = max(x_adv.max().item() - 1.0, -1.0 - x_adv.min().item()) / 2
        self.outside = max(self.outside, dist, rng)
        if self.keep_images:
            self.images[key].append(((x_adv + 1.0) / 2.0).float().cpu())  # [0, 1] units
        t1 = time.perf_counter()
        self.times[f"attack_time_s:{spec.label}"] += t1 - t
        with torch.inference_mode():
            for scorer, ms in self.named.items():
                logits = ms(x_adv)  # (B, K)
                self.adv[(src, spec.label, e, scorer)].append(logits.argmax(1).cpu())
                self.adv_cal[(src, spec.label, e, scorer)].append(calibration_terms(logits, y))
        self.times["score_time_s"] += time.perf_counter() - t1

    def result(self) -> dict[str, Any]:
        """The concatenated outcomes, in test-set order; eps = 0 rows are the clean predictions."""
        if self.outside > 1e-5:
            gap = f"{self.outside:.2e}"
            msg = f"some adversarial examples leave the eps-ball or [0, 1] by {gap} (attack bug)"
            warn(self.warnings, [msg])
        clean = {k: torch.cat(v) for k, v in self.clean.items()}
        clean_cal = {k: torch.cat(v) for k, v in self.clean_cal.items()}
        keys = [
            (src, s.label, e, sc)
            for src in self.named
            for s in self.specs
            for e in self.eps_list
            for sc in self.named
        ]
        # eps = 0 rows are the clean set
        adv = {k: torch.cat(self.adv[k]) if k[2] > 0 else clean[k[3]] for k in keys}
        adv_cal = {k: torch.cat(self.adv_cal[k]) if k[2] > 0 else clean_cal[k[3]] for k in keys}
        cost = {
            **self.times,
            "adversarial_images": self.attacked,
            "clean_shared_images": self.shared,
            "forward_images": {n: t.images for n, t in self.taps.items()},
        }
        return {
            "labels": torch.cat(self.labels),
            "clean": clean,
            "adv": adv,
            "clean_cal": clean_cal,  # (N, 4) per model
            "adv_cal": adv_cal,  # (N, 4) per (source, attack, eps, scorer)
            "images": {k: torch.cat(v) for k, v in self.images.items()},
            "clean_images": self.first_clean,
            "zero_img": self.zero_img,
            "zero_px": self.zero_px,
            "zero_n": self.measured,
            "pixels_per_image": self.pixels,
            "cost": cost,
        }
