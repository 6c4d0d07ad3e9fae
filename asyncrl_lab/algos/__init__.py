"""One module per algorithm. Each exposes `Config`, `make_network(config, obs_shape, n_actions)`
(the network it learns), `build_shared(config, obs_shape, n_actions)` (the objects every worker
shares, already in shared memory) and `worker(ctx)` (the paper's loop)."""
from . import a3c, n_step_q, one_step_q, one_step_sarsa

ALGORITHMS = {"one_step_q": one_step_q, "one_step_sarsa": one_step_sarsa, "n_step_q": n_step_q,
              "a3c": a3c}
