"""The shared optimizers compute exactly torch's RMSprop and Adam updates."""
import pytest
import torch

from asyncrl_lab.optim import SharedAdam, SharedRMSprop


def _pair(seed=0):
    torch.manual_seed(seed)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    return a, b


def _grads(model, k):
    torch.manual_seed(100 + k)
    return [torch.randn_like(p) for p in model.parameters()]


@pytest.mark.parametrize("ours_cls, ref_cls, kwargs", [
    (SharedRMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.99, eps=0.1)),
    (SharedAdam, torch.optim.Adam, dict(lr=0.01, eps=1e-8)),
])
def test_shared_optimizer_equals_torchs(ours_cls, ref_cls, kwargs):
    ours, ref = _pair()
    opt = ours_cls(ours.parameters(), **kwargs).share_memory()
    ref_opt = ref_cls(ref.parameters(), **kwargs)
    for k in range(5):
        grads = _grads(ours, k)
        opt.step(grads)
        for p, g in zip(ref.parameters(), grads):
            p.grad = g.clone()
        ref_opt.step()
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


def test_share_memory_puts_statistics_in_shared_memory_and_reset_makes_them_private():
    model = torch.nn.Linear(3, 2)
    opt = SharedRMSprop(model.parameters()).share_memory()
    assert all(t.is_shared() for t in opt.state["square_avg"])
    opt.reset_statistics()
    assert not any(t.is_shared() for t in opt.state["square_avg"])


def test_missing_gradient_is_an_error():
    model = torch.nn.Linear(3, 2)
    opt = SharedRMSprop(model.parameters())
    try:
        opt.step([torch.ones(2, 3), None])
    except ValueError as err:
        assert "gradient" in str(err)
    else:
        raise AssertionError("a None gradient was accepted")
