"""The command line:

    python -m asyncrl_lab train a3c --env CartPole-v1 --workers 2 --steps 200000 --out runs/x
    python -m asyncrl_lab evaluate runs/x --episodes 10

Every field of the algorithm's config is an option (--t-max, --entropy-beta, --lr, ...).
`train` writes history.csv, config.json and checkpoint.pt into --out, also when interrupted.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from .config import CONFIGS
from .parallel import WorkerError


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_config_options(parser: argparse.ArgumentParser, config_cls):
    for f in dataclasses.fields(config_cls):
        flag = "--steps" if f.name == "total_steps" else "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            kind = _parse_bool
        elif isinstance(default, tuple):
            parser.add_argument(flag, dest=f.name, type=int, nargs="+", default=argparse.SUPPRESS,
                                help=f"(default: {' '.join(map(str, default))})")
            continue
        else:
            kind = type(default)
        parser.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS,
                            help=f"(default: {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asyncrl_lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train an algorithm and save the run")
    algos = train.add_subparsers(dest="algo", required=True, metavar="ALGO")
    for name, config_cls in CONFIGS.items():
        sub = algos.add_parser(name, help=config_cls.__doc__)
        sub.add_argument("--out", required=True, help="directory to write the run into")
        sub.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        _add_config_options(sub, config_cls)
    evaluate = commands.add_parser("evaluate", help="print the mean return of a saved run")
    evaluate.add_argument("run", help="directory written by `train --out`")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--greedy", action="store_true", help="take the most likely action")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from . import load, train  # after parsing, so --help is fast

    try:
        if args.command == "train":
            options = {k: v for k, v in vars(args).items()
                       if k not in ("command", "algo", "out", "no_progress")}
            try:
                run = train(args.algo, progress=not args.no_progress, **options)
            except WorkerError as err:
                if getattr(err, "run", None) is not None:
                    err.run.save(args.out)
                    print(f"partial run saved to {args.out}", file=sys.stderr)
                raise
            run.save(args.out)
            print(f"{run.status}: {run.global_step} steps, {len(run.history)} episodes in "
                  f"{run.wall_time:.1f} s; saved to {args.out}")
        else:
            run = load(args.run)
            result = run.evaluate(args.episodes, greedy=args.greedy)
            print(f"mean return over {args.episodes} episodes: {result['mean']:.2f} "
                  f"(std {result['std']:.2f})")
    except (ValueError, FileNotFoundError, WorkerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
