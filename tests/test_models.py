import pytest
import torch

from robust_winn.models import (
    Introspective,
    ModelSpecError,
    build_classifier,
    create_model,
    list_models,
)
from robust_winn.models.init_nets import DCGANInitGenerator


@pytest.mark.parametrize("name", sorted(list_models()))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_model_gives_finite_logits_and_grads_everywhere(name, shape):
    torch.manual_seed(0)
    clf = build_classifier(name, image_shape=shape, num_classes=10)
    model = Introspective(clf, 10)
    x = torch.rand(4, *shape) * 2 - 1
    logits, f = model.logits_and_critic(x)
    assert logits.shape == (4, 10) and f.shape == (4,)
    assert torch.isfinite(logits).all() and torch.isfinite(f).all()
    (logits.logsumexp(1).sum() + f.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


def test_resnet32_has_32_weighted_layers():
    clf = create_model("resnet32", in_channels=1, num_classes=10)
    n = sum(isinstance(m, torch.nn.Conv2d | torch.nn.Linear) for m in clf.modules())
    assert n == 32


def test_unknown_model_lists_choices():
    with pytest.raises(ModelSpecError, match="vanilla"):
        create_model("nope")


def test_user_factory_by_import_string():
    m = build_classifier("user_models:tiny", image_shape=(1, 28, 28), num_classes=10)
    assert m(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ModelSpecError, match=r"\(N, 10\) logits; got \(2, 7\)"):
        build_classifier("user_models:wrong_shape", image_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ModelSpecError, match="not a torch.nn.Module"):
        build_classifier("user_models:not_a_module", image_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ModelSpecError, match="cannot import"):
        build_classifier("no_such_pkg.mod:f", image_shape=(1, 28, 28), num_classes=10)


def test_critic_head_is_linear_on_logits():
    model = Introspective(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3)
    x = torch.randn(5, 1, 2, 2)
    logits, f = model.logits_and_critic(x)
    expected = logits @ model.critic_head.weight.T + model.critic_head.bias
    torch.testing.assert_close(f, expected.squeeze(1))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_init_generator_range_and_determinism(shape):
    g1 = DCGANInitGenerator(shape, generator=torch.Generator().manual_seed(3))
    g2 = DCGANInitGenerator(shape, generator=torch.Generator().manual_seed(3))
    a = g1.sample(8, generator=torch.Generator().manual_seed(0))
    b = g2.sample(8, generator=torch.Generator().manual_seed(0))
    assert a.shape == (8, *shape)
    assert a.abs().max() <= 1 and a.std() > 0.05
    torch.testing.assert_close(a, b)
    assert not any(p.requires_grad for p in g1.parameters())
