"""Studies: the book's multi-seed experiments as reproducible results.

A study is defined once here (its variants, seeds and budget) and run by one command,

    python -m asyncrl_lab.book.studies [NAME ...]      # make studies [ONLY=NAME]
    python -m asyncrl_lab.book.studies --list

or `run_study(name)` from Python. Each run is written under `results/studies/<name>/` as soon as
it ends (its history and config), with its provenance and the digest of what its outcome depends
on, so an interrupted study resumes where it stopped and a finished run is never run again.
A chapter loads a study with `load_study(name)` and says under each figure where it came from.

The staleness rule: a run's digest hashes the study's definition (the variant's algorithm and
settings, its seed, the run options) and the source of every package module the algorithm's
outcome can depend on: the algorithm's module and every module it imports, transitively, with
the modules `train` runs it through (training, run, parallel, presets, config, ...). The registry
(`asyncrl_lab/algos/__init__.py`), the figure style (`figstyle`, which only draws) and the book
support are left out, so a change to one
algorithm's file makes only the studies of that algorithm (and of any algorithm importing it)
stale; a change to shared machinery makes every study stale. A study is "current" when every run
is there with the digest of today's code, "stale" when some run's digest differs, "incomplete"
when some run is missing, "missing" when none is there. `run_study` re-runs exactly the runs
that are missing or stale.

A run whose loss becomes non-finite (a learning rate too high diverges) is kept as the result of
its settings, with status "failed" (`StudyRun.diverged`); any other failure stops the study.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import provenance as prov
from ..algos import algorithm
from ..history import History, atomic_path

PACKAGE = Path(__file__).resolve().parent.parent
RESULTS = PACKAGE.parent / "results" / "studies"
_MACHINERY = "asyncrl_lab.training"  # what runs every algorithm: train and all it imports
# the package's and the registry's __init__, and the figure style, which draws and never trains
_NOT_FOLLOWED = {"asyncrl_lab", "asyncrl_lab.algos", "asyncrl_lab.figstyle"}
_RAY = "asyncrl_lab.ray_backend"  # followed only for the variants that train on Ray


@dataclass(frozen=True)
class Variant:
    """One setting of a study: a label for the figure, the algorithm and its `train` options."""

    label: str
    algo: str
    settings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    """Every variant trained once per seed, with the same run options."""

    name: str
    chapter: str  # the chapter that interprets it
    variants: tuple
    seeds: tuple
    options: dict = field(default_factory=dict)  # train() options shared by every run
    evaluate: int = 0  # episodes of `Run.evaluate` (sampled and greedy) recorded after each run

    def runs(self):
        """(variant, seed) for every run, in the order they are run."""
        return [(variant, seed) for variant in self.variants for seed in self.seeds]


def _cartpole(label: str, algo: str, steps: int, workers: int = 2, **settings) -> Variant:
    """A variant on CartPole-v1, from the package's tuned preset (`train`'s default)."""
    return Variant(label, algo, dict(env="CartPole-v1", workers=workers, total_steps=steps,
                                     **settings))


def _a3c(label: str, **settings) -> Variant:
    return _cartpole(label, "a3c", 250_000, **settings)


_FOUR = {"one-step Q": "one_step_q", "one-step Sarsa": "one_step_sarsa", "n-step Q": "n_step_q",
         "A3C": "a3c"}
# The robustness experiment's learning rates: 6 drawn log-uniformly from [3e-4, 3e-2] (seed 0),
# rounded to 3 digits so that the labels name them exactly
_RMSPROP_LRS = tuple(float(f"{lr:.3g}") for lr in np.sort(np.exp(
    np.random.default_rng(0).uniform(np.log(3e-4), np.log(3e-2), size=6))))
# Every method of the book on CartPole, each from its tuned preset: the summary's one study
_METHODS = {"one-step Q": "one_step_q", "one-step Sarsa": "one_step_sarsa", "n-step Q": "n_step_q",
            "A3C": "a3c", "A2C": "a2c", "ACER": "acer"}
# The paper's claims, measured (chapter "claims"). Figure 2's learning rates: 50 drawn from
# LogUniform(1e-4, 1e-2), as the paper draws them, rounded to 4 digits so that labels name them
CLAIM_LRS = tuple(float(f"{lr:.4g}") for lr in np.sort(np.exp(
    np.random.default_rng(2016).uniform(np.log(1e-4), np.log(1e-2), size=50))))
# Table 2's score: a mean training return of 195 over 100 episodes (CartPole-v0's old threshold),
# reached by every method's preset with 1 or 2 workers within the budget
SPEEDUP_SCORE = 195
SPEEDUP_WORKERS = (1, 2, 4)
# Every method on one harness: each preset, A3C's also with 128 LSTM cells, the same budget
_SEVEN = dict(_METHODS, **{"A3C LSTM": "a3c"})
_PAPER_DRAW = dict(final_epsilons=(0.1, 0.01, 0.5), final_epsilon_probs=(0.4, 0.3, 0.3))


def _no_velocities(label: str, algo: str, lstm_cells: int) -> Variant:
    """A variant on CartPoleNoVel-v1 from its preset (128 LSTM cells and its budget: 1M steps for
    A3C, 2M for A2C), with `lstm_cells` instead."""
    return Variant(label, algo, dict(env="CartPoleNoVel-v1", lstm_cells=lstm_cells))


STUDIES = {study.name: study for study in [
    Study("a3c_cartpole", "a3c", (_a3c("A3C, 2 workers"),), seeds=tuple(range(5)), evaluate=20),
    Study("a3c_t_max", "a3c", tuple(_a3c(f"t_max = {t}", t_max=t) for t in (5, 20, 50)),
          seeds=(0, 1, 2)),
    Study("a3c_entropy", "a3c", tuple(_a3c(f"beta = {b}", entropy_beta=b) for b in (0.0, 0.01, 0.1)),
          seeds=(0, 1, 2)),
    Study("q_vs_sarsa", "one_step_q",
          (_cartpole("one-step Q", "one_step_q", 200_000),
           _cartpole("one-step Sarsa", "one_step_sarsa", 200_000)), seeds=(0, 1, 2), evaluate=20),
    Study("q_paper_exploration", "one_step_q",
          (_cartpole("one-step Q, the paper's epsilons", "one_step_q", 200_000, workers=3,
                     **_PAPER_DRAW),), seeds=(0,), evaluate=20),
    Study("q_target_interval", "one_step_q",
          tuple(_cartpole(f"I_target = {i}", "one_step_q", 60_000, target_update_interval=i)
                for i in (1, 250, 5000)), seeds=(0, 1)),
    Study("a2c_vs_a3c", "a2c",
          (_cartpole("A3C, 2 workers", "a3c", 200_000),
           Variant("A2C, 16 envs", "a2c", dict(env="CartPole-v1", total_steps=200_000))),
          seeds=(0, 1, 2)),
    Study("acer_vs_a3c", "acer",
          (_cartpole("A3C", "a3c", 150_000), _cartpole("ACER", "acer", 150_000)), seeds=(0, 1, 2),
          options=dict(stop_at_return=475)),
    Study("acer_ablation", "acer",
          tuple(_cartpole(label, "acer", 30_000, **change) for label, change in (
              ("ACER (λ = 8)", {}), ("no trust region", dict(trust_region=False)),
              ("no bias correction", dict(bias_correction=False)),
              ("λ = 4", dict(replay_ratio=4.0)), ("λ = 1", dict(replay_ratio=1.0)),
              ("λ = 0", dict(replay_ratio=0.0)))), seeds=(0, 1)),
    Study("shared_rmsprop", "parallel_pytorch",
          tuple(_cartpole(f"{'shared' if shared else 'per-worker'} statistics, lr {lr:g}", "a3c",
                          150_000, lr=lr, shared_optimizer_stats=shared)
                for shared in (True, False) for lr in _RMSPROP_LRS), seeds=(0,)),
    Study("four_methods", "n_step_q",
          tuple(_cartpole(label, algo, 150_000) for label, algo in _FOUR.items()),
          seeds=(0, 1, 2), evaluate=20),
    Study("methods_cartpole", "methods",
          tuple(Variant(label, algo, dict(env="CartPole-v1", total_steps=300_000))
                for label, algo in _METHODS.items()),
          seeds=tuple(range(5)), options=dict(stop_at_return=475)),
    Study("memory_cartpole", "a3c_lstm",
          tuple(_no_velocities(f"{name}, {'LSTM' if cells else 'feed-forward'}", algo, cells)
                for name, algo in (("A3C", "a3c"), ("A2C", "a2c")) for cells in (0, 128)),
          seeds=(0, 1, 2), options=dict(stop_at_return=475)),
    Study("four_methods_one_worker", "n_step_q",
          tuple(_cartpole(label, algo, 150_000, workers=1) for label, algo in _FOUR.items()),
          seeds=(0, 1, 2), options=dict(stop_at_return=150)),
    Study("claims_speedup", "claims",
          tuple(_cartpole(f"{label}, {w} worker{'s' * (w > 1)}", algo, 300_000, workers=w)
                for label, algo in _FOUR.items() for w in SPEEDUP_WORKERS),
          seeds=tuple(range(5)), options=dict(stop_at_return=SPEEDUP_SCORE)),
    Study("claims_learning_rates", "claims",
          tuple(_cartpole(f"{label}, lr {lr:g}", algo, steps, lr=lr)
                for label, algo, steps in (("A3C", "a3c", 150_000),
                                           ("n-step Q", "n_step_q", 200_000))
                for lr in CLAIM_LRS), seeds=(0, 1)),
    # shared RMSProp is claims_learning_rates' A3C: the same runs
    Study("claims_optimizers", "claims",
          tuple(_cartpole(f"{name}, lr {lr:g}", "a3c", 150_000, lr=lr, shared_optimizer_stats=False,
                          **settings)
                for name, settings in (("per-worker RMSProp", {}),
                                       ("momentum SGD", dict(optimizer="momentum")))
                for lr in CLAIM_LRS), seeds=(0, 1)),
    # the same A3C on the shared-memory runtime and on a local Ray (the chapter "Scaling out")
    Study("scaling_out", "scaling_out",
          tuple(_cartpole(label, "a3c", 300_000, backend=backend)
                for label, backend in (("shared memory", "processes"), ("Ray", "ray"))),
          seeds=tuple(range(5)), options=dict(stop_at_return=475)),
    Study("claims_methods", "claims",
          tuple(Variant(label, algo, dict(env="CartPole-v1", total_steps=300_000,
                                          **({"lstm_cells": 128} if "LSTM" in label else {})))
                for label, algo in _SEVEN.items()), seeds=tuple(range(5))),
]}


def module_file(module: str) -> Path:
    parts = module.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported_modules(module: str) -> set[str]:
    """The asyncrl_lab modules `module` imports, wherever its import statements are (function-local
    ones included)."""
    path = module_file(module)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("asyncrl_lab")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            elif node.module and node.module.startswith("asyncrl_lab"):
                target = node.module
            else:
                continue
            for alias in node.names:  # `from . import algos` names a module, `from .x import f` not
                candidate = f"{target}.{alias.name}"
                found.add(candidate if module_file(candidate).exists() else target)
    return found - {module}


def dependencies(algo: str, backend: str = "processes") -> list[str]:
    """The modules an algorithm's outcome depends on: its own, the machinery `train` runs it
    through, and all they import, transitively; never the registry or the book support, and the
    Ray backend only for a run on Ray."""
    seen, todo = set(), [f"asyncrl_lab.algos.{algo}", _MACHINERY]
    skipped = _NOT_FOLLOWED | ({_RAY} if backend != "ray" else set())
    while todo:
        module = todo.pop()
        if module in seen or module in skipped or module.startswith("asyncrl_lab.book"):
            continue
        seen.add(module)
        todo.extend(imported_modules(module))
    return sorted(seen)


def digest(study: Study, variant: Variant, seed: int) -> str:
    """What a run's outcome depends on, hashed: its definition and its code."""
    algorithm(variant.algo)  # an unknown name fails here, with the known ones
    h = hashlib.sha256()
    definition = {"algo": variant.algo, "settings": variant.settings, "seed": seed,
                  "options": study.options, "evaluate": study.evaluate}
    h.update(json.dumps(definition, sort_keys=True, default=repr).encode())
    for module in dependencies(variant.algo, variant.settings.get("backend", "processes")):
        h.update(module.encode() + b"\0" + _source(module) + b"\0")
    return h.hexdigest()[:16]


def _source(module: str) -> bytes:
    return module_file(module).read_bytes()


def _slug(label: str) -> str:
    """A folder name for a label, in ASCII: a Greek letter by its name (λ -> lamda)."""
    def ascii_of(c: str) -> str:
        if c.isascii():
            return c if c.isalnum() else "_"
        return unicodedata.name(c, "_").split()[-1].lower() if c.isalpha() else "_"
    return "".join(ascii_of(c) for c in label.lower()).strip("_")


def _run_dir(study: Study, variant: Variant, seed: int, root: Path) -> Path:
    return root / study.name / _slug(variant.label) / f"seed_{seed}"


@dataclass
class StudyRun:
    """One finished run of a study, as a chapter reads it: what a Run offers but the networks."""

    algo: str
    config: object
    history: History
    status: str
    global_step: int
    wall_time: float
    record: dict  # the digest, the provenance and the evaluation it was made with

    @property
    def diverged(self) -> bool:
        """The loss became non-finite: the only failure a study keeps as a result."""
        return self.status == "failed"

    def plot(self, window: int = 100):
        from ..curves import plot_learning_curves

        return plot_learning_curves(self, window=window)


@dataclass
class StudyResult:
    study: Study
    runs: dict  # variant label -> [StudyRun per seed that is there]
    status: str  # "current", "stale", "incomplete" or "missing"
    stale: list  # (label, seed) of the runs whose digest is not today's

    def caption(self) -> str:
        """One line for under the study's figure: where its runs came from, and whether they
        are still current."""
        records = [r.record for runs in self.runs.values() for r in runs]
        if not records:
            return f"Study {self.study.name}: not run yet (make studies ONLY={self.study.name})."
        latest = max(records, key=lambda r: r["provenance"]["date"])["provenance"]
        commits = sorted({(r["provenance"]["commit"] or "none")[:10] for r in records})
        dirty = " (dirty tree)" if any(r["provenance"]["dirty"] for r in records) else ""
        minutes = sum(r["provenance"]["wall_time"] or 0 for r in records) / 60
        text = (f"Study {self.study.name}: {len(records)} runs ({minutes:.1f} min of training) at "
                f"commit {', '.join(commits)}{dirty}, {latest['date'][:10]}, on "
                f"{latest['cores']} cores ({latest['cpu']}); reproduce with "
                f"make studies ONLY={self.study.name}.")
        if self.status == "stale":
            text += (f" STALE: the code or settings of {len(self.stale)} of its runs changed since "
                     "they were made; the figure shows the old runs until the study is re-run.")
        elif self.status == "incomplete":
            text += " INCOMPLETE: some of its runs are missing."
        return text


def study(name: str) -> Study:
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; defined: {sorted(STUDIES)}")
    return STUDIES[name]


def load_study(name: str, root: Path = RESULTS) -> StudyResult:
    """The study's runs as they are on disk, with its status."""
    from ..algos import config_for

    s = study(name)
    runs, stale, missing = {v.label: [] for v in s.variants}, [], 0
    for variant, seed in s.runs():
        path = _run_dir(s, variant, seed, root)
        if not (path / "run.json").exists():
            missing += 1
            continue
        record = json.loads((path / "run.json").read_text())
        meta = json.loads((path / "config.json").read_text())
        runs[variant.label].append(StudyRun(
            meta["algo"], config_for(meta["algo"]).from_dict(meta["config"]),
            # runs saved before studies kept the staleness have none (until they are re-run)
            History.from_csv(path / "history.csv", meta.get("staleness")), meta["status"],
            meta["global_step"],
            meta["wall_time"], record))
        if record["digest"] != digest(s, variant, seed):
            stale.append((variant.label, seed))
    total = len(s.runs())
    status = ("missing" if missing == total else "incomplete" if missing else
              "stale" if stale else "current")
    return StudyResult(s, runs, status, stale)


def _needed(s: Study, root: Path):
    return [(v, seed) for v, seed in s.runs()
            if not (_run_dir(s, v, seed, root) / "run.json").exists()
            or json.loads((_run_dir(s, v, seed, root) / "run.json").read_text())["digest"]
            != digest(s, v, seed)]


def run_study(name: str, *, root: Path = RESULTS, progress: bool = True) -> StudyResult:
    """Train every run of the study that is missing or stale, saving each as it ends; returns the
    study as loaded afterwards. A run that fails or is interrupted is not saved (and is run again
    next time); Ctrl-C stops the study there, keeping the runs already saved."""
    from tqdm.auto import tqdm

    from ..parallel import WorkerError
    from ..training import train

    s = study(name)
    needed = _needed(s, root)
    bar = tqdm(total=len(s.runs()), initial=len(s.runs()) - len(needed), unit="run",
               desc=name, disable=not progress)
    try:
        for variant, seed in needed:
            bar.set_postfix_str(f"{variant.label}, seed {seed}")
            t0 = time.time()
            try:
                run = train(variant.algo, seed=seed, progress=False,
                            **{**s.options, **variant.settings})
            except WorkerError as err:
                if "FloatingPointError" not in str(err.traceback):
                    raise
                run = err.run  # diverged: an outcome of its settings, kept as the result it is
            if run.status == "interrupted":  # Ctrl-C: the study stops, the saved runs stay
                raise KeyboardInterrupt
            _save(s, variant, seed, run, time.time() - t0, root)
            bar.update()
    finally:
        bar.close()
    return load_study(name, root)


def _save(s: Study, variant: Variant, seed: int, run, seconds: float, root: Path):
    path = _run_dir(s, variant, seed, root)
    path.mkdir(parents=True, exist_ok=True)
    meta = {"algo": run.algo, "status": run.status, "global_step": run.global_step,
            "wall_time": run.wall_time, "message": run.message, "config": run.config.to_dict(),
            "staleness": run.history.staleness.tolist()}
    record = {"study": s.name, "variant": variant.label, "seed": seed,
              "digest": digest(s, variant, seed),
              "provenance": prov.provenance(f"make studies ONLY={s.name}", wall_time=seconds)}
    if s.evaluate and run.status != "failed":
        record["evaluation"] = {"sampled": run.evaluate(s.evaluate),
                                "greedy": run.evaluate(s.evaluate, greedy=True)}
    # run.json last: a run counts as done only once its history and config are complete
    with atomic_path(path / "history.csv") as tmp:
        run.history._write_csv(tmp)
    for name, content in (("config.json", meta), ("run.json", record)):
        with atomic_path(path / name) as tmp, open(tmp, "w") as f:
            json.dump(content, f, indent=1)


def studies_table(root: Path = RESULTS) -> list[dict]:
    """Every study with its chapter, status, runs, commits and dates (the build report's table)."""
    rows = []
    for name, s in STUDIES.items():
        result = load_study(name, root)
        records = [r.record["provenance"] for runs in result.runs.values() for r in runs]
        rows.append({"study": name, "chapter": s.chapter, "status": result.status,
                     "runs": f"{len(records)} of {len(s.runs())}",
                     "commit": ", ".join(sorted({(r["commit"] or "none")[:10] for r in records})),
                     "date": max((r["date"][:10] for r in records), default=""),
                     "minutes": round(sum(r["wall_time"] or 0 for r in records) / 60, 1)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asyncrl_lab.book.studies",
                                     description="Run the book's studies that are missing, "
                                                 "incomplete or stale (all of them, or those named).")
    parser.add_argument("names", nargs="*", metavar="NAME", help="studies to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the studies and their status")
    args = parser.parse_args(argv)
    try:
        names = [study(n).name for n in args.names] or list(STUDIES)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.list:
        for row in studies_table():
            print(f"{row['study']:<24} {row['status']:<10} {row['runs']:>9} runs  "
                  f"{row['chapter']:<18} {row['commit']} {row['date']}")
        return 0
    t0 = time.time()
    for name in names:
        result = run_study(name)
        print(f"{name}: {result.status}", flush=True)
    print(f"studies done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
