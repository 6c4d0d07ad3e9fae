"""asyncrl_lab: asynchronous deep reinforcement learning (Mnih et al. 2016 and its family),
the library behind the asyncrl_lab book.

    import asyncrl_lab as lab
    run = lab.train("a3c", env="CartPole-v1", workers=2, total_steps=200_000, seed=0)
    run.plot(); run.evaluate(episodes=10); run.save("runs/a3c"); lab.load("runs/a3c")
"""
import os

# Before torch loads OpenMP (libgomp): its idle threads spin for 30,000 rounds, a tenth of libgomp's
# default, before they sleep. A2C steps ale_py's emulator threads on the same cores right after
# each forward pass, and threads spinning for libgomp's default take those cores from them
# (benchmarks/atari_throughput.py measures both on Pong). Short gaps between small ops are still
# bridged: OMP_WAIT_POLICY=PASSIVE, no spinning at all, about halved A2C's rate on CartPole.
# No effect if torch was imported first or the user set either variable.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "30000")

from .config import A2CConfig, A3CConfig, ACERConfig, AsyncConfig
from .envs import make_env
from .parallel import WorkerDied, WorkerError
from .history import History
from .run import Run, load
from .training import Terminated, train

__all__ = ["A2CConfig", "A3CConfig", "ACERConfig", "AsyncConfig", "History", "Run", "Terminated",
           "WorkerDied", "WorkerError", "load", "make_env", "train"]
__version__ = "0.1.0"
