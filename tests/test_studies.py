"""Studies: resumable, each run with its provenance, and stale exactly when what its outcome
depends on changed."""
import json
import shutil

import numpy as np
import pytest

import asyncrl_lab.book.studies as studies
from asyncrl_lab.book.studies import Study, Variant, dependencies, load_study, run_study

pytestmark = pytest.mark.slow  # make test-fast leaves it out

TINY = dict(env="CartPole-v1", workers=1, total_steps=600)


DEFINED = {
    "tiny_a3c": Study("tiny_a3c", "a3c", (Variant("A3C", "a3c", TINY),
                                          Variant("A3C, t_max 5", "a3c", dict(TINY, t_max=5))),
                      seeds=(0,)),
    "tiny_nstep": Study("tiny_nstep", "n_step_q", (Variant("n-step Q", "n_step_q", TINY),),
                        seeds=(0, 1)),
}


@pytest.fixture(scope="module")
def studies_run_once(tmp_path_factory):
    """Both tiny studies, trained once for the module."""
    root = tmp_path_factory.mktemp("once") / "studies"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(studies, "STUDIES", DEFINED)
        for name in DEFINED:
            run_study(name, root=root, progress=False)
    return root


@pytest.fixture
def tiny_studies(monkeypatch, tmp_path, studies_run_once):
    """A fresh copy of the tiny studies' results, with their definitions in place."""
    monkeypatch.setattr(studies, "STUDIES", dict(DEFINED))
    shutil.copytree(studies_run_once, tmp_path / "studies")
    return tmp_path / "studies"


def test_a_study_runs_saves_its_provenance_and_loads(tiny_studies):
    result = load_study("tiny_a3c", root=tiny_studies)
    assert result.status == "current"
    assert [len(runs) for runs in result.runs.values()] == [1, 1]
    run = result.runs["A3C, t_max 5"][0]
    assert run.config.t_max == 5 and run.global_step >= 600 and len(run.history) > 0
    assert run.history.staleness.sum() > 0  # one count per update, kept with the history
    record = json.loads((tiny_studies / "tiny_a3c" / "a3c__t_max_5" / "seed_0" / "run.json")
                        .read_text())
    p = record["provenance"]
    assert len(p["commit"]) == 40 and isinstance(p["dirty"], bool)
    assert p["versions"]["torch"] and p["versions"]["asyncrl_lab"]
    assert p["command"] == "make studies ONLY=tiny_a3c" and p["cores"] >= 1 and p["cpu"]
    assert p["device"] == "cpu" and p["date"].startswith("20") and p["wall_time"] > 0
    assert "Study tiny_a3c: 2 runs" in result.caption() and p["commit"][:10] in result.caption()


def test_a_finished_run_is_never_run_again(tiny_studies, monkeypatch):
    import asyncrl_lab.training as training

    def refuse(*args, **kwargs):
        raise AssertionError("a current run was trained again")
    monkeypatch.setattr(training, "train", refuse)
    assert run_study("tiny_nstep", root=tiny_studies, progress=False).status == "current"


def test_a_missing_run_makes_the_study_incomplete_and_only_it_is_run(tiny_studies, monkeypatch):
    (tiny_studies / "tiny_nstep" / "n_step_q" / "seed_1" / "run.json").unlink()
    assert load_study("tiny_nstep", root=tiny_studies).status == "incomplete"
    import asyncrl_lab.training as training

    trained, real = [], training.train
    monkeypatch.setattr(training, "train", lambda algo, seed, **kw: trained.append(seed) or
                        real(algo, seed=seed, **kw))
    assert run_study("tiny_nstep", root=tiny_studies, progress=False).status == "current"
    assert trained == [1]
    assert load_study("tiny_nstep", root=tiny_studies).status == "current"


def test_changing_an_algorithm_makes_only_its_studies_stale(tiny_studies, monkeypatch):
    real = studies._source

    def edited(changed):
        monkeypatch.setattr(studies, "_source", lambda m: real(m) + (b"#" if m == changed else b""))

    edited("asyncrl_lab.algos.a3c")
    a3c, nstep = load_study("tiny_a3c", root=tiny_studies), load_study("tiny_nstep", root=tiny_studies)
    assert a3c.status == "stale" and len(a3c.stale) == 2 and "STALE" in a3c.caption()
    assert nstep.status == "current" and "STALE" not in nstep.caption()
    edited("asyncrl_lab.parallel")  # shared machinery: every study depends on it
    assert load_study("tiny_nstep", root=tiny_studies).status == "stale"
    edited("asyncrl_lab.book.plots")  # the book support changes no outcome
    assert load_study("tiny_a3c", root=tiny_studies).status == "current"


def test_changing_a_variants_settings_makes_it_stale(tiny_studies, monkeypatch):
    changed = Study("tiny_a3c", "a3c", (Variant("A3C", "a3c", dict(TINY, lr=1e-3)),
                                         Variant("A3C, t_max 5", "a3c", dict(TINY, t_max=5))),
                    seeds=(0,))
    monkeypatch.setitem(studies.STUDIES, "tiny_a3c", changed)
    assert load_study("tiny_a3c", root=tiny_studies).stale == [("A3C", 0)]


def test_the_dependencies_of_an_algorithm():
    a3c = dependencies("a3c")
    assert {"asyncrl_lab.algos.a3c", "asyncrl_lab.parallel", "asyncrl_lab.training",
            "asyncrl_lab.config", "asyncrl_lab.nets", "asyncrl_lab.presets"} <= set(a3c)
    assert "asyncrl_lab.algos.acer" not in a3c and "asyncrl_lab.algos" not in a3c
    assert not [m for m in a3c if m.startswith("asyncrl_lab.book")]
    assert "asyncrl_lab.algos.one_step_q" in dependencies("one_step_sarsa")  # it imports its loop
    # the Ray backend only for a run on Ray: changing it leaves the shared-memory studies current
    assert "asyncrl_lab.ray_backend" not in a3c
    assert "asyncrl_lab.ray_backend" in dependencies("a3c", backend="ray")


def test_an_unknown_study_is_named_with_the_known_ones(tiny_studies):
    with pytest.raises(ValueError, match=r"unknown study 'nope'; defined: \['tiny_a3c', 'tiny_nstep'\]"):
        load_study("nope")
    assert studies.main(["nope"]) == 1


def _failing_train(real, cause):
    """train, whose run then fails as a worker raising `cause` would make it fail."""
    from asyncrl_lab.parallel import WorkerError

    def train(algo, seed, **kw):
        run = real(algo, seed=seed, **kw)
        run.status = "failed"
        err = WorkerError("worker 0 raised an exception; the other workers were stopped.", 0,
                          f"Traceback (most recent call last):\n{cause}: at global step 300")
        err.run = run
        raise err
    return train


def test_a_diverged_run_is_kept_as_a_result_and_any_other_failure_stops_the_study(
        tiny_studies, monkeypatch):
    import asyncrl_lab.training as training
    from asyncrl_lab.book.claims import final_score
    from asyncrl_lab.parallel import WorkerError

    seed_1 = tiny_studies / "tiny_nstep" / "n_step_q" / "seed_1" / "run.json"
    real = training.train
    seed_1.unlink()
    monkeypatch.setattr(training, "train", _failing_train(real, "ZeroDivisionError"))
    with pytest.raises(WorkerError, match="worker 0 raised"):
        run_study("tiny_nstep", root=tiny_studies, progress=False)
    assert not seed_1.exists() and load_study("tiny_nstep", root=tiny_studies).status == "incomplete"
    monkeypatch.setattr(training, "train", _failing_train(real, "FloatingPointError"))
    result = run_study("tiny_nstep", root=tiny_studies, progress=False)
    assert result.status == "current"
    kept, diverged = result.runs["n-step Q"]
    assert not kept.diverged and diverged.diverged and diverged.status == "failed"
    assert len(diverged.history) > 0 and np.isnan(final_score(diverged))


def test_every_variant_of_a_study_has_its_own_folder():
    for s in studies.STUDIES.values():
        slugs = [studies._slug(v.label) for v in s.variants]
        assert len(set(slugs)) == len(slugs), s.name
