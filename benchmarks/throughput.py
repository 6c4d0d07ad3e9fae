"""A3C's env steps/s with 1 and 2 worker processes, against the raw env stepping rate, feed-forward
and with an LSTM.

    .venv/bin/python benchmarks/throughput.py [--steps 200000] [--t-max 5 20] [--lstm-cells 0 128]

Steady-state rate: global steps between the first and the last finished episode, over the wall
time between them (process start-up excluded); the overall rate includes start-up.
"""
from __future__ import annotations

import argparse

import asyncrl_lab as lab
from asyncrl_lab.book.experiments import env_steps_per_second, steady_rate


def a3c_rates(workers: int, steps: int, t_max: int, lstm_cells: int) -> tuple[float, float]:
    run = lab.train("a3c", env="CartPole-v1", workers=workers, total_steps=steps, seed=0,
                    t_max=t_max, lstm_cells=lstm_cells, progress=False)
    return steady_rate(run), run.global_step / run.wall_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--t-max", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--lstm-cells", type=int, nargs="+", default=[0, 128],
                        help="0: feed-forward")
    args = parser.parse_args()
    raw = env_steps_per_second("CartPole-v1", steps=100_000)
    print(f"raw CartPole-v1, one env, random actions: {raw:,.0f} steps/s")
    for cells in args.lstm_cells:
        for t_max in args.t_max:
            one, one_all = a3c_rates(1, args.steps, t_max, cells)
            two, two_all = a3c_rates(2, args.steps, t_max, cells)
            net = f"LSTM {cells}" if cells else "feed-forward"
            print(f"A3C {net}, t_max={t_max:>2}: 1 worker {one:,.0f} steps/s ({one / raw:.0%} of raw; "
                  f"{one_all:,.0f} with start-up), 2 workers {two:,.0f} steps/s ({two_all:,.0f} "
                  f"with start-up); 2 vs 1 workers: {two / one:.2f}x")


if __name__ == "__main__":
    main()
