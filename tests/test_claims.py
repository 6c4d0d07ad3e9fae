"""The claims chapter's measurements on hand-made runs: final scores, the time to a score,
Table 2's ratios, and rliable's aggregates against a brute-force interquartile mean."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from asyncrl_lab.book import claims
from asyncrl_lab.book.experiments import solve_summary
from asyncrl_lab.history import History


def fake_run(returns, steps=None, seconds=None, status="finished"):
    """A run of len(returns) episodes, the i-th ending at steps[i] and seconds[i]."""
    n = len(returns)
    steps = np.arange(1, n + 1) * 100 if steps is None else steps
    seconds = np.arange(1, n + 1) * 0.5 if seconds is None else seconds
    history = History(zip([0] * n, steps, seconds, returns, [10] * n))
    return SimpleNamespace(history=history, status=status, diverged=status == "failed")


def test_final_score_is_the_mean_of_the_last_window_and_nan_when_diverged():
    run = fake_run([10, 20, 30, 40])
    assert claims.final_score(run, window=2) == 35.0
    assert claims.final_score(run, window=100) == 25.0
    assert math.isnan(claims.final_score(fake_run([10, 20], status="failed")))
    assert math.isnan(claims.final_score(fake_run([])))


def test_the_time_to_a_score_is_the_median_over_the_runs_that_reached_it():
    fast = fake_run([0, 10, 10, 10])  # window 2 reaches 10 at the third episode: step 300
    slow = fake_run([0, 0, 0, 10, 10], steps=np.arange(1, 6) * 200, seconds=np.arange(1, 6) * 2.0)
    never = fake_run([0, 0, 0])
    hits = [r.history.first_reaching(10, 2) for r in (fast, slow)]
    assert hits == [(300, 1.5), (1000, 10.0)]
    row = solve_summary([fast, slow, never], 10, window=2)
    assert (row["median_steps"], row["median_seconds"], row["solved"]) == (650.0, 5.75, 2)
    row = solve_summary([never], 10, window=2)
    assert (row["median_steps"], row["median_seconds"], row["solved"]) == (None, None, 0)


def test_speedups_are_one_workers_medians_over_k_workers(monkeypatch):
    monkeypatch.setattr(claims, "solve_summary", lambda runs, score: runs[0])
    runs = {"A3C, 1 worker": [dict(median_steps=1000.0, median_seconds=20.0, solved=3, runs=1)],
            "A3C, 2 workers": [dict(median_steps=800.0, median_seconds=8.0, solved=3, runs=1)],
            "A3C, 4 workers": [dict(median_steps=None, median_seconds=None, solved=0, runs=1)]}
    table = claims.speedups(runs, ["A3C"], (1, 2, 4), score=195)["A3C"]
    assert table[1]["speedup"] == 1.0 and table[1]["data_efficiency"] == 1.0
    assert table[2]["speedup"] == 2.5 and table[2]["data_efficiency"] == 1.25
    assert table[2]["solved"] == 3 and table[2]["runs"] == 1
    assert math.isnan(table[4]["speedup"]) and table[4]["solved"] == 0


def test_share_reaching_counts_a_diverged_run_as_not_reaching():
    assert claims.share_reaching([500, 100, np.nan, 475], 475) == 0.5


def test_normalized_scores_are_runs_by_one_task_with_a_diverged_run_at_zero():
    scores = claims.normalized({"A3C": [500.0, np.nan, 250.0]})
    np.testing.assert_array_equal(scores["A3C"], [[1.0], [0.0], [0.5]])


def brute_iqm(x):
    """The mean of the middle half of the sorted scores (a count divisible by 4)."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    return float(x[len(x) // 4: 3 * len(x) // 4].mean())


@pytest.mark.parametrize("n", [4, 8, 12])
def test_rliables_iqm_is_the_mean_of_the_middle_half_and_its_interval_holds_it(n):
    rng = np.random.default_rng(n)
    scores = {"a": rng.uniform(size=(n, 1)), "b": rng.uniform(size=(n, 1)) * 0.5}
    result = claims.iqm_intervals(scores, reps=300)
    for label, (iqm, lower, upper) in result.items():
        assert iqm == pytest.approx(brute_iqm(scores[label]))
        assert lower <= iqm <= upper
    assert claims.iqm_intervals(scores, reps=300) == result  # the same on every build


def test_a_performance_profile_is_the_share_of_runs_above_each_tau():
    scores = {"a": np.array([[0.1], [0.5], [0.9], [1.0]])}
    profile, lower, upper = claims.performance_profiles(scores, [0.0, 0.5, 0.95], reps=200)["a"]
    np.testing.assert_allclose(profile, [1.0, 0.5, 0.25])  # strictly above tau
    assert np.all(lower <= profile) and np.all(profile <= upper)
