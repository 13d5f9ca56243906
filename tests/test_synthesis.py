import pytest
import torch

from robust_winn.config import StopRule
from robust_winn.models import Introspective, build_classifier
from robust_winn.synthesis import NegativePool, PseudoNegativeSampler


def _model() -> Introspective:
    """An untrained vanilla CNN whose critic head is scaled up so that f responds visibly."""
    torch.manual_seed(0)
    m = Introspective(build_classifier("vanilla", image_shape=(1, 28, 28), num_classes=10), 10)
    with torch.no_grad():
        m.critic_head.weight.mul_(50)
    return m


@pytest.mark.parametrize("rule", list(StopRule))
def test_synthesis_moves_f_towards_tau_and_stays_in_range(rule):
    model = _model()
    x0 = torch.rand(40, 1, 28, 28) * 2 - 1
    targets = torch.arange(40) % 4
    with torch.no_grad():
        f0 = model.critic(x0)
    taus = torch.full((4,), float(f0.mean()) + 0.5)  # above every group's start
    sampler = PseudoNegativeSampler(max_steps=30, tol=1e-3, stop_rule=rule)
    x, stats = sampler.synthesize(model, x0, targets, targets, taus)
    with torch.no_grad():
        f1 = model.critic(x)
    if rule is StopRule.BATCH_MEAN:  # the rule's own quantity: each group's mean f
        f0, f1 = f0.view(10, 4).mean(0), f1.view(10, 4).mean(0)
    gap0 = (f0 - taus[0]).abs().mean()
    gap1 = (f1 - taus[0]).abs().mean()
    assert gap1 < 0.5 * gap0, (gap0, gap1)
    assert x.min() >= -1 and x.max() <= 1
    assert stats.steps >= 1 and stats.image_steps > 0


def test_synthesis_ce_term_pushes_towards_target_class():
    model = _model()
    x0 = torch.rand(30, 1, 28, 28) * 2 - 1
    targets = torch.full((30,), 7)
    with torch.no_grad():
        p0 = model(x0).softmax(1)[:, 7].mean()
        taus = model.critic(x0).mean().view(1)
    x, _ = PseudoNegativeSampler(max_steps=20, tol=-1, ce_weight=5.0).synthesize(
        model, x0, targets, torch.zeros(30, dtype=torch.long), taus
    )
    with torch.no_grad():
        assert model(x).softmax(1)[:, 7].mean() > p0 + 0.2


def test_batch_mean_early_stop_freezes_finished_groups():
    model = _model()
    x0 = torch.rand(20, 1, 28, 28) * 2 - 1
    groups = torch.arange(20) // 10  # 2 groups
    with torch.no_grad():
        f0 = model.critic(x0)
    m0 = f0[:10].mean()
    taus = torch.stack([m0, m0 + 1.0])  # group 0 already at its tau: frozen at step 1
    x, stats = PseudoNegativeSampler(max_steps=10, tol=1e-3, ce_weight=0.0).synthesize(
        model, x0, groups, groups, taus
    )
    torch.testing.assert_close(x[:10], x0[:10])
    assert not torch.equal(x[10:], x0[10:])
    assert stats.image_steps == 10 * stats.steps


def test_synthesis_restores_model_mode_and_grad_flags():
    model = _model().train()
    x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    t = torch.zeros(4, dtype=torch.long)
    PseudoNegativeSampler(max_steps=2).synthesize(model, x0, t, t, torch.zeros(1))
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_pool_capacity_fifo_and_round_trip(dtype):
    pool = NegativePool(3, capacity=5, dtype=dtype)
    for step in range(4):  # 4 x 3 images per class; capacity 5 -> oldest evicted
        labels = torch.arange(3).repeat_interleave(3)
        imgs = torch.full((9, 1, 2, 2), step / 4.0)
        pool.add(imgs, labels)
    assert [pool.count(c) for c in range(3)] == [5, 5, 5]
    assert len(pool) == 15
    g = torch.Generator().manual_seed(0)
    sample = pool.sample(torch.tensor([0] * 50 + [2] * 50), generator=g)
    vals = set(sample.flatten().round(decimals=2).tolist())
    assert vals <= {0.5, 0.75}  # steps 0 (and most of 1) were evicted; values of step 2, 3 remain
    clone = NegativePool(3, capacity=1)
    clone.load_state_dict(pool.state_dict())
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1, 2, 2, 1])
    torch.testing.assert_close(pool.sample(labels, generator=g1), clone.sample(labels, generator=g2))
    assert clone.capacity == 5


def test_pool_sample_is_class_matched():
    pool = NegativePool(4, capacity=100)
    labels = torch.arange(4).repeat(10)
    pool.add(labels.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2) / 4, labels)
    want = torch.tensor([3, 0, 2, 2, 1])
    got = pool.sample(want, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got[:, 0, 0, 0], want.float() / 4)


def test_pool_rejects_empty_class():
    pool = NegativePool(2, capacity=3)
    pool.add(torch.zeros(1, 1, 2, 2), torch.tensor([0]))
    with pytest.raises(RuntimeError, match="class 1"):
        pool.sample(torch.tensor([1]))
