"""One module per algorithm. Each exposes `Config`, `make_network(config, obs_shape, n_actions)`
(the network it learns) and `build_shared(config, obs_shape, n_actions)` (the objects every worker
shares, already in shared memory). An asynchronous method has `worker(ctx)`, the paper's loop that
each worker process runs; the synchronous A2C has `coordinator(ctx)` instead, one loop in the
caller's process (`parallel.run_coordinator`)."""
from . import a2c, a3c, acer, n_step_q, one_step_q, one_step_sarsa

ALGORITHMS = {"one_step_q": one_step_q, "one_step_sarsa": one_step_sarsa, "n_step_q": n_step_q,
              "a3c": a3c, "a2c": a2c, "acer": acer}
