"""The command line:

    python -m asyncrl_lab train a3c --env CartPole-v1 --workers 2 --steps 200000 --out runs/x \
        --checkpoint-every 50000
    python -m asyncrl_lab train n_step_q --env CartPole-v1 --steps 200000 --out runs/q \
        --final-epsilons 0.1 0.01 0.5 --final-epsilon-probs 0.4 0.3 0.3
    python -m asyncrl_lab train a2c --env ALE/Pong-v5 --n-envs 16 --steps 1000000 --out runs/pong
    python -m asyncrl_lab train --resume runs/x --steps 400000
    python -m asyncrl_lab evaluate runs/x --episodes 10 --json runs/x/evaluation.json
    python -m asyncrl_lab video runs/pong --out pong.mp4 --episodes 1
    python -m asyncrl_lab grade submissions/ --timeout 300 --csv grades.csv

Algorithms: one_step_q, one_step_sarsa, n_step_q, a3c, a2c, acer. Every field of the algorithm's config
is an option (--t-max, --entropy-beta, --target-update-interval, --lr, --n-envs, --device, ...).
`train` writes history.csv, config.json and checkpoint.pt into --out, every --checkpoint-every
global steps and when training ends, however it ends (finished, interrupted, failed), and
appends the command's provenance (steps made, wall time, commit, versions, machine) to
provenance.json there.
`--resume` continues a saved run: its global step, learning-rate schedule, optimizer statistics
and history (only --steps, --workers, --backend and --ray-address, for A2C --n-envs, may
change).
`grade` runs each submission notebook (or each .ipynb in a folder) in its own kernel, contained
(asyncrl_lab/grading.py says how), and prints what the book's checks found; exit status 0 when
every check of every submission passed, 1 otherwise, 2 for bad input.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from .algos import ALGORITHMS
from .presets import PRESET_NAMES, PRESETS
from .parallel import WorkerError


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _add_config_options(parser: argparse.ArgumentParser, config_cls):
    """One option per config field, its help the field's own sentence (config.option)."""
    for f in dataclasses.fields(config_cls):
        flag = "--steps" if f.name == "total_steps" else "--" + f.name.replace("_", "-")
        default, doc = f.default, f.metadata["doc"].replace("%", "%%")
        if isinstance(default, tuple):
            parser.add_argument(flag, dest=f.name, type=type(default[0]), nargs="+",
                                default=argparse.SUPPRESS,
                                help=f"{doc} (default: {' '.join(map(str, default))})")
            continue
        kind = _parse_bool if isinstance(default, bool) else type(default)
        parser.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS,
                            help=f"{doc} (default: {default})")


def _add_run_options(parser: argparse.ArgumentParser, required_out: bool):
    parser.add_argument("--out", required=required_out, default=argparse.SUPPRESS,
                        help="directory to write the run into")
    parser.add_argument("--checkpoint-every", type=int, default=argparse.SUPPRESS, metavar="N",
                        help="also save the run every N global steps")
    parser.add_argument("--stop-at-return", type=float, default=argparse.SUPPRESS, metavar="R",
                        help="end early once the mean return of the last 100 episodes reaches R")
    parser.add_argument("--tensorboard", metavar="DIR", default=argparse.SUPPRESS,
                        help="also write the episodes and diagnostics for TensorBoard into DIR")
    parser.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                        help="hide the progress bar")


def _add_preset_option(parser: argparse.ArgumentParser):
    parser.add_argument("--preset", choices=PRESET_NAMES, default=argparse.SUPPRESS,
                        help="start from the tuned settings for this algorithm and env where the "
                             "package has them (tuned, the default), or from the paper's "
                             "defaults (paper); the options given override either")


def _presets_of(algo: str) -> str:
    tuned = [f"{env}: " + " ".join(f"{k}={v}" for k, v in preset.settings.items())
             for (name, env), preset in PRESETS.items() if name == algo]
    return ("The defaults shown are the paper's. With --preset tuned (the default) these envs "
            "start from tuned settings instead: " + "; ".join(tuned) + ".") if tuned else ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asyncrl_lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train an algorithm and save the run")
    _add_run_options(train, required_out=False)
    train.add_argument("--resume", metavar="RUN", help="continue the run saved in this directory")
    train.add_argument("--steps", dest="total_steps", type=int, default=argparse.SUPPRESS,
                       help="with --resume: the new total of global steps")
    train.add_argument("--workers", type=int, default=argparse.SUPPRESS,
                       help="with --resume: the number of worker processes")
    train.add_argument("--n-envs", dest="n_envs", type=int, default=argparse.SUPPRESS,
                       help="with --resume: A2C's number of environments")
    algos = train.add_subparsers(dest="algo", metavar="ALGO")
    for name, module in ALGORITHMS.items():
        summary = module.Config.__doc__.splitlines()[0]
        sub = algos.add_parser(name, help=summary, description=summary, epilog=_presets_of(name))
        _add_run_options(sub, required_out=True)
        _add_preset_option(sub)
        _add_config_options(sub, module.Config)
    evaluate = commands.add_parser("evaluate", help="print the mean return of a saved run")
    evaluate.add_argument("run", help="directory written by `train --out`")
    evaluate.add_argument("--episodes", type=int, default=10,
                          help="episodes to play (default: 10)")
    evaluate.add_argument("--greedy", action="store_true", help="take the most likely action")
    evaluate.add_argument("--seed", type=int, default=12345,
                          help="seed of the evaluation env and the policy's draws (default: 12345)")
    evaluate.add_argument("--json", metavar="FILE",
                          help="also write the returns, the protocol and the provenance to FILE")
    video = commands.add_parser("video", help="record a saved run's policy playing, as MP4")
    video.add_argument("run", help="directory written by `train --out`")
    video.add_argument("--out", required=True, metavar="FILE.mp4", help="the video file to write")
    video.add_argument("--episodes", type=int, default=1, help="episodes to play (default: 1)")
    video.add_argument("--greedy", action="store_true", help="take the most likely action")
    video.add_argument("--seconds", type=_positive_float, default=None, metavar="S",
                       help="keep only the first S seconds of video (default: everything)")
    grade = commands.add_parser("grade", help="run a class's notebooks, each contained, and "
                                              "report what the exercises' checks found")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                       help="a submitted .ipynb, or a folder of them")
    grade.add_argument("--timeout", type=_positive_float, default=600.0, metavar="S",
                       help="wall-clock limit for each submission, in seconds (default: 600)")
    grade.add_argument("--memory", type=int, default=4096, metavar="MB",
                       help="address-space limit of each submission's kernel and of each "
                            "process it starts, in MiB; a kernel that imports torch takes over "
                            "1024 of it (default: 4096)")
    grade.add_argument("--csv", metavar="FILE",
                       help="also write one row per (submission, check) to FILE")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "grade":
        return _grade(args)
    from . import load, train  # after parsing, so --help is fast
    from .provenance import provenance
    from .training import Terminated

    try:
        if args.command == "train":
            if args.algo is None and not getattr(args, "resume", None):
                raise ValueError(f"name the algorithm to train ({', '.join(ALGORITHMS)}) or "
                                 "pass --resume RUN")
            options = {k: v for k, v in vars(args).items()
                       if k not in ("command", "algo", "no_progress", "resume")}
            out = options.get("out", args.resume)
            before = _saved_state(out)
            # the commit, the tree and the date are the ones training starts from
            started = provenance(" ".join(["python -m asyncrl_lab", *sys.argv[1:]]))
            try:
                run = train(args.algo, progress=not getattr(args, "no_progress", False),
                            resume=args.resume, **options)
            except (WorkerError, Terminated) as err:
                _record_segment(out, before, started, getattr(err, "run", None))
                raise
            _record_segment(out, before, started, run)
            print(f"{run.status}: {run.global_step} steps, {len(run.history)} episodes in "
                  f"{run.wall_time:.1f} s; saved to {options.get('out', args.resume)}")
        elif args.command == "video":
            result = load(args.run).video(args.out, args.episodes, greedy=args.greedy,
                                          seconds=args.seconds)
            print(f"wrote {result['path']}: {result['frames']} frames at {result['fps']} fps, "
                  f"returns {', '.join(f'{r:g}' for r in result['returns'])}")
        else:
            run = load(args.run)
            started = time.time()
            result = run.evaluate(args.episodes, greedy=args.greedy, seed=args.seed)
            print(f"mean return over {args.episodes} episodes: {result['mean']:.2f} "
                  f"(std {result['std']:.2f})")
            if args.json:
                _write_evaluation(args, run, result, time.time() - started)
    except (ValueError, OSError, WorkerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _write_evaluation(args, run, result: dict, seconds: float):
    import json
    from pathlib import Path

    from .envs import is_atari
    from .provenance import provenance

    protocol = {"episodes": args.episodes, "policy": "greedy" if args.greedy else "sampled",
                "seed": args.seed, "rewards": "raw (unclipped), whole games",
                "sticky_actions": run.config.sticky_actions}
    if is_atari(run.config.env):
        protocol["starts"] = "up to 30 no-op actions, a random number"
    record = {**result, "run": str(args.run), "global_step": run.global_step,
              "protocol": protocol,
              "provenance": provenance(" ".join(["python -m asyncrl_lab", *sys.argv[1:]]),
                                       wall_time=seconds)}
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")


def _saved_state(out) -> tuple[int, float]:
    """The global step and wall time of the run saved in `out` ((0, 0.0) for a new run)."""
    from .run import load

    try:
        run = load(out)
    except (TypeError, FileNotFoundError, ValueError):
        return 0, 0.0
    return run.global_step, run.wall_time


def _record_segment(out, before: tuple[int, float], started: dict, run) -> None:
    """Append this command's provenance (`started`: taken as it started) to
    `out`/provenance.json: a long run resumed several times keeps one record per segment (the
    steps it made, its wall time, commit, machine)."""
    if out is None or run is None:
        return
    import json
    from pathlib import Path

    file = Path(out) / "provenance.json"
    if not (file.parent / "checkpoint.pt").exists():  # the run could not be saved; train said why
        return
    segments = json.loads(file.read_text())["segments"] if file.exists() else []
    segments.append({"from_step": before[0], "to_step": run.global_step, "status": run.status,
                     **started, "wall_time": run.wall_time - before[1]})
    file.write_text(json.dumps({"segments": segments}, indent=2) + "\n")


def _grade(args) -> int:
    from .book.grading import grade

    try:
        graded = grade(args.submissions, timeout=args.timeout, memory_mb=args.memory,
                       csv_path=args.csv)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    passed = sum(g.passed for g in graded)
    print(f"{passed} of {len(graded)} submissions passed every check")
    return 0 if passed == len(graded) else 1


if __name__ == "__main__":
    sys.exit(main())
