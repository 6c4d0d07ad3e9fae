"""The registry of algorithms: one module per algorithm, each named once here.

Each exposes `Config` (its settings, `config.py`), `make_network(config, obs_shape, n_actions)`
(the network it learns) and `build_shared(config, obs_shape, n_actions)` (the objects every worker
shares, already in shared memory). An asynchronous method has `worker(ctx)`, the paper's loop that
each worker process runs; the synchronous A2C has `coordinator(ctx)` instead, one loop in the
caller's process (`parallel.run_coordinator`). Both talk to the run through `parallel.Context`."""
from . import a2c, a3c, acer, n_step_q, one_step_q, one_step_sarsa

ALGORITHMS = {"one_step_q": one_step_q, "one_step_sarsa": one_step_sarsa, "n_step_q": n_step_q,
              "a3c": a3c, "a2c": a2c, "acer": acer}


def algorithm(name: str):
    """The module of an algorithm name, or a ValueError listing the known ones."""
    if not isinstance(name, str) or name.lower() not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; available: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name.lower()]


def config_for(name: str) -> type:
    """The config class of an algorithm name."""
    return algorithm(name).Config
