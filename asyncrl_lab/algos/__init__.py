"""One module per algorithm. Each exposes `Config`, `build_shared(config, obs_shape, n_actions)`
(the objects every worker shares, already in shared memory) and `worker(ctx)` (the paper's loop)."""
from . import a3c

ALGORITHMS = {"a3c": a3c}
