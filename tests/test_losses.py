import torch

from robust_winn.objectives.losses import gradient_penalty, wasserstein_loss, winn_supervised_loss


def _linear_critic(w: torch.Tensor):
    return lambda x: x.flatten(1) @ w


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, generator=g)
    w = w / w.norm()
    xp, xn = torch.randn(6, 3, 2, 2, generator=g), torch.randn(6, 3, 2, 2, generator=g)
    gp = gradient_penalty(_linear_critic(w), xp, xn, generator=g)
    assert gp.abs() < 1e-10


def test_gradient_penalty_positive_and_exact_for_other_norms():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, generator=g)
    w = 3 * w / w.norm()
    xp, xn = torch.randn(6, 3, 2, 2, generator=g), torch.randn(6, 3, 2, 2, generator=g)
    gp = gradient_penalty(_linear_critic(w), xp, xn, generator=g)
    torch.testing.assert_close(gp, torch.tensor(4.0))  # (3 - 1)^2


def test_gradient_penalty_is_per_sample_and_differentiable():
    # a critic whose gradient norm depends on the point: GP must be a mean of per-sample terms
    g = torch.Generator().manual_seed(1)
    xp, xn = torch.randn(4, 1, 2, 2, generator=g), torch.randn(4, 1, 2, 2, generator=g)
    w = torch.ones(4, requires_grad=True)
    gp = gradient_penalty(lambda x: (x.flatten(1) ** 2) @ w, xp, xn, generator=g)
    gp.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_winn_loss_composition():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    f_pos, f_neg, gp = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0]), torch.tensor(0.5)
    out = winn_supervised_loss(logits, f_pos, f_neg, gp, y, alpha=0.1, gp_lambda=10.0)
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert wasserstein_loss(f_pos, f_neg) == -3.0
    torch.testing.assert_close(out.total, ce + 0.1 * (-3.0 + 10.0 * 0.5))
