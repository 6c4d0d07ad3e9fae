"""asyncrl_lab: asynchronous deep reinforcement learning (Mnih et al. 2016 and its family),
the library behind the asyncrl_lab book.

    import asyncrl_lab as lab
    run = lab.train("a3c", env="CartPole-v1", workers=2, total_steps=200_000, seed=0)
    run.plot(); run.evaluate(episodes=10); run.save("runs/a3c"); lab.load("runs/a3c")
"""
import os

# Before torch loads OpenMP: its threads then sleep between parallel regions instead of spinning.
# A2C steps ale_py's emulator threads on the same cores right after each forward pass, and spinning
# threads take those cores from them (Pong, 16 envs, 2 cores: 1,650 -> 2,040 env steps/s; the A2C
# chapter measures it). No effect if torch was imported first, or if the variable is already set.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import A2CConfig, A3CConfig, ACERConfig, AsyncConfig
from .envs import make_env
from .parallel import WorkerDied, WorkerError
from .run import History, Run, load, train

__all__ = ["A2CConfig", "A3CConfig", "ACERConfig", "AsyncConfig", "History", "Run", "WorkerDied", "WorkerError",
           "load", "make_env", "train"]
__version__ = "0.1.0"
