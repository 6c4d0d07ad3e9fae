"""Optimizers that apply a worker's gradients to the shared parameters, Hogwild-style.

The paper's "shared RMSProp" keeps the running average of squared gradients g in shared memory,
so every actor-learner's step is scaled by statistics gathered from all of them:

    g <- alpha * g + (1 - alpha) * grad^2
    theta <- theta - lr * grad / (sqrt(g) + eps)

This is torch's form, with eps outside the square root; the paper's TensorFlow-era code used
sqrt(g + eps). With `share_memory()` not called, every worker keeps its own statistics
("per-worker RMSProp"), the paper's point of comparison. Its other one is momentum SGD, each
thread with its own momentum, in the same exponential-average form:

    m <- alpha * m + (1 - alpha) * grad
    theta <- theta - lr * m

The gradients are passed in explicitly (`step(grads, lr)`) rather than planted in the shared
parameters' `.grad`: nothing depends on `zero_grad()` semantics, which changed in PyTorch 2.0 and
silently broke gradient-copy tricks written for older versions. Updates are lock-free: workers
write the shared tensors in place without synchronisation (Recht et al. 2011).
"""
from __future__ import annotations

import torch


class _SharedOptimizer:
    state_names: tuple[str, ...] = ()

    def __init__(self, params, lr: float, slots: int = 1):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimizer got no parameters")
        self.lr = lr
        self.state = {name: [torch.zeros_like(p, memory_format=torch.preserve_format).detach()
                             for p in self.params] for name in self.state_names}
        # Updates applied so far (Adam's bias correction uses it), one slot per worker, each
        # written by its worker alone: `+= 1` on one shared number loses increments when two
        # workers interleave its read and write (the parallel chapter's lost updates).
        self.steps = torch.zeros(slots)
        self.slot = 0

    def share_memory(self):
        """Move the statistics to shared memory, so that every worker reads and writes them."""
        for tensors in self.state.values():
            for t in tensors:
                t.share_memory_()
        self.steps.share_memory_()
        return self

    def reset_statistics(self):
        """Fresh, private statistics for this process: the per-worker variant."""
        for name, tensors in self.state.items():
            self.state[name] = [torch.zeros_like(t) for t in tensors]
        self.steps = torch.zeros_like(self.steps)
        return self

    def use_slot(self, slot: int):
        """Count this process's updates in slot `slot` (its worker's rank)."""
        if not 0 <= slot < len(self.steps):
            raise ValueError(f"slot {slot} of an optimizer with {len(self.steps)} slots")
        self.slot = slot
        return self

    @property
    def updates(self) -> int:
        """Updates applied so far, by every worker that shares the statistics."""
        return int(self.steps.sum().item())

    def state_dict(self) -> dict:
        return {"steps": self.steps.sum().reshape(1),
                **{name: [t.clone() for t in tensors] for name, tensors in self.state.items()}}

    def load_state_dict(self, state: dict):
        self.steps.zero_()
        self.steps[0] = state["steps"].sum()  # as T: the resumed count sits in the first slot
        for name, tensors in self.state.items():
            for t, saved in zip(tensors, state[name], strict=True):
                t.copy_(saved)

    @torch.no_grad()
    def step(self, grads, lr: float | None = None):
        """Apply one update from `grads` (one tensor per parameter) to the shared parameters."""
        grads = list(grads)
        if len(grads) != len(self.params) or any(g is None for g in grads):
            raise ValueError(f"expected a gradient for each of the {len(self.params)} parameters")
        self.steps[self.slot] += 1
        self._update(grads, self.lr if lr is None else lr)


class SharedRMSprop(_SharedOptimizer):
    state_names = ("square_avg",)

    def __init__(self, params, lr: float = 7e-4, alpha: float = 0.99, eps: float = 0.1,
                 slots: int = 1):
        super().__init__(params, lr, slots)
        self.alpha, self.eps = alpha, eps

    def _update(self, grads, lr):
        square_avg = self.state["square_avg"]
        torch._foreach_mul_(square_avg, self.alpha)
        torch._foreach_addcmul_(square_avg, grads, grads, value=1 - self.alpha)
        denom = torch._foreach_sqrt(square_avg)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, grads, denom, value=-lr)


class SharedMomentumSGD(_SharedOptimizer):
    state_names = ("momentum",)

    def __init__(self, params, lr: float = 7e-4, alpha: float = 0.9, slots: int = 1):
        super().__init__(params, lr, slots)
        self.alpha = alpha

    def _update(self, grads, lr):
        momentum = self.state["momentum"]
        torch._foreach_lerp_(momentum, grads, 1 - self.alpha)
        torch._foreach_add_(self.params, momentum, alpha=-lr)


class SharedAdam(_SharedOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 slots: int = 1):
        super().__init__(params, lr, slots)
        self.betas, self.eps = betas, eps

    def _update(self, grads, lr):
        beta1, beta2 = self.betas
        t = float(self.updates)
        step_size = lr * (1 - beta2 ** t) ** 0.5 / (1 - beta1 ** t)
        exp_avg, exp_avg_sq = self.state["exp_avg"], self.state["exp_avg_sq"]
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, exp_avg, denom, value=-step_size)


def make_optimizer(config, params) -> _SharedOptimizer:
    """The optimizer a config names, its statistics in shared memory unless asked otherwise."""
    slots = getattr(config, "workers", 1)
    if config.optimizer == "rmsprop":
        opt = SharedRMSprop(params, lr=config.lr, alpha=config.rmsprop_alpha,
                            eps=config.optimizer_eps, slots=slots)
    elif config.optimizer == "momentum":
        opt = SharedMomentumSGD(params, lr=config.lr, alpha=config.momentum, slots=slots)
    else:
        opt = SharedAdam(params, lr=config.lr, eps=config.optimizer_eps, slots=slots)
    shared = getattr(config, "shared_optimizer_stats", False)  # A2C has one learner: nothing to share
    return opt.share_memory() if shared else opt


def annealed_lr(config, global_step: int) -> float:
    """The learning rate at global step T: annealed linearly from config.lr to 0 at total_steps."""
    if not config.lr_anneal:
        return config.lr
    return config.lr * max(0.0, 1.0 - global_step / config.total_steps)


def gradient_update(ctx, model: torch.nn.Module, loss: torch.Tensor, global_step: int,
                    terms: dict):
    """One update of the shared parameters from a loss: backpropagate it into `model` and apply the
    gradient (norm-clipped) through the optimizer at the annealed learning rate. Every method
    updates with this: for a worker of an asynchronous method it is the paper's "perform
    asynchronous update of theta using d theta" (`model` is the worker's local copy); for A2C's
    coordinator, the one synchronous update per batch. `terms`, the loss's parts as means over the
    update's steps, go with the learning rate and the gradient's norm to the run's diagnostics.

    A non-finite loss stops the run with an error that names it and the global step, before the
    shared parameters are touched.
    """
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{ctx.name}: the loss is {loss.item()} at global step "
                                 f"{global_step}; lower the learning rate or check the rewards")
    model.zero_grad(set_to_none=True)
    loss.backward()
    lr = annealed_lr(ctx.config, global_step)
    grad_norm = ctx.apply_gradients(model, lr)
    ctx.diagnose(global_step, lr, grad_norm, terms)
