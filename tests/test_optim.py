"""The shared optimizers compute exactly torch's RMSprop and Adam updates, and a worker applies
its gradient clipped to max_grad_norm."""
import multiprocessing
import os
import time

import pytest
import torch

from asyncrl_lab.config import A3CConfig
from asyncrl_lab.optim import SharedAdam, SharedMomentumSGD, SharedRMSprop, make_optimizer
from asyncrl_lab.parallel import WorkerContext


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


def test_momentum_sgd_by_hand_and_without_momentum_torchs_sgd():
    theta = torch.nn.Parameter(torch.tensor([1.0]))
    opt = SharedMomentumSGD([theta], lr=0.5, alpha=0.9)
    opt.step([torch.tensor([2.0])])  # m = 0.1 * 2 = 0.2, theta = 1 - 0.5 * 0.2
    torch.testing.assert_close(theta.data, torch.tensor([0.9]))
    opt.step([torch.tensor([-1.0])])  # m = 0.9 * 0.2 + 0.1 * -1 = 0.08, theta = 0.9 - 0.04
    torch.testing.assert_close(theta.data, torch.tensor([0.86]))
    ours, ref = _pair()
    opt = SharedMomentumSGD(ours.parameters(), lr=0.01, alpha=0.0)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.01)
    for k in range(3):
        grads = _grads(ours, k)
        opt.step(grads)
        for p, g in zip(ref.parameters(), grads):
            p.grad = g.clone()
        ref_opt.step()
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


def test_the_config_names_the_optimizer_and_whether_its_statistics_are_shared():
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(A3CConfig(optimizer="momentum", momentum=0.5, workers=3), model.parameters())
    assert isinstance(opt, SharedMomentumSGD) and opt.alpha == 0.5
    assert all(t.is_shared() for t in opt.state["momentum"])
    opt = make_optimizer(A3CConfig(optimizer="momentum", shared_optimizer_stats=False),
                         model.parameters())
    assert not any(t.is_shared() for t in opt.state["momentum"])


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


def test_a_worker_applies_its_gradient_clipped_to_max_grad_norm():
    config = A3CConfig(max_grad_norm=1.0, lr=0.1)
    shared_model, reference = _pair()
    shared = {"model": shared_model, "optimizer": SharedRMSprop(shared_model.parameters(), lr=0.1)}
    counters = (torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64),
                torch.zeros(1, dtype=torch.uint8))
    reader, writer = multiprocessing.Pipe(duplex=False)
    ctx = WorkerContext(0, 0, config, shared, counters, writer, os.getppid(), time.time())
    local = torch.nn.Linear(3, 2)
    ctx.sync(local)
    big = [10 * g for g in _grads(local, 0)]
    for p, g in zip(local.parameters(), big):
        p.grad = g.clone()
    ctx.apply_gradients(local, 0.1)
    norm = torch.sqrt(sum((g ** 2).sum() for g in big))
    SharedRMSprop(reference.parameters(), lr=0.1).step([g / norm for g in big])
    for got, want in zip(shared_model.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert int(counters[1][0]) == 1  # the update was counted
    reader.close()
    writer.close()


def _apply_updates(optimizer, slot, n):
    optimizer.use_slot(slot)
    grads = [torch.zeros_like(p) for p in optimizer.params]
    for _ in range(n):
        optimizer.step(grads)


def test_two_processes_updating_at_once_lose_no_count_of_their_updates():
    # one shared `steps += 1` lost an update now and then (a resume test caught 773 for 774)
    optimizer = SharedRMSprop(torch.nn.Linear(1, 1).share_memory().parameters(), slots=2)
    optimizer.share_memory()
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_apply_updates, args=(optimizer, slot, 20_000))
             for slot in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert optimizer.updates == 40_000
    # a checkpoint keeps the total; loading puts it in the first slot, as T's resumed count
    state = optimizer.state_dict()
    assert state["steps"].tolist() == [40_000.0]
    fresh = SharedRMSprop(torch.nn.Linear(1, 1).parameters(), slots=3)
    fresh.load_state_dict(state)
    assert fresh.updates == 40_000 and fresh.steps.tolist() == [40_000.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="slot 3 of an optimizer with 3 slots"):
        fresh.use_slot(3)
