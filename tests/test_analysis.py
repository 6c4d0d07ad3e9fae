"""The book's measurements: effective sample size, autocorrelation, curves over seeds, quick mode."""
import numpy as np
import pytest

from asyncrl_lab.book.analysis import (actor_batches, autocorrelation, collect_streams,
                                       effective_sample_size, replay_batches)
from asyncrl_lab import figstyle
from asyncrl_lab.book.experiments import (budget, methods_summary, quick_mode, score_at,
                                          solve_summary,
                                          steady_rate)
from asyncrl_lab.book.plots import plot_seed_curves, plot_steps_and_time
from asyncrl_lab.config import A3CConfig
from asyncrl_lab.curves import curves_on_grid
from asyncrl_lab.history import History
from asyncrl_lab.run import Run


def test_independent_samples_are_worth_the_batch_size():
    rng = np.random.default_rng(0)
    batches = rng.normal(size=(20_000, 32, 3))
    assert effective_sample_size(batches) == pytest.approx(32, rel=0.05)


def test_copies_of_one_sample_are_worth_one():
    rng = np.random.default_rng(0)
    batches = np.repeat(rng.normal(size=(5_000, 1, 2)), 16, axis=1)
    assert effective_sample_size(batches) == pytest.approx(1.0, rel=1e-9)


def ar1_streams(rho, actors, steps, rng):
    x = np.zeros((actors, steps))
    x[:, 0] = rng.normal(size=actors)
    noise = rng.normal(size=(actors, steps)) * np.sqrt(1 - rho**2)
    for t in range(1, steps):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x[..., None]


def test_ess_of_an_ar1_stream_matches_its_closed_form():
    rho, B = 0.8, 16
    rng = np.random.default_rng(1)
    streams = ar1_streams(rho, actors=16, steps=20_000, rng=rng)
    exact = B**2 / (B + 2 * sum((B - k) * rho**k for k in range(1, B)))  # = 2.12 for these values
    one = effective_sample_size(actor_batches(streams, 1, B, 20_000, rng), np.ones(1))
    assert one == pytest.approx(exact, rel=0.05)
    # 16 actors, one sample each: independent, as uniform replay
    assert effective_sample_size(actor_batches(streams, 16, B, 20_000, rng), np.ones(1)) \
        == pytest.approx(B, rel=0.05)
    assert effective_sample_size(replay_batches(streams, B, 20_000, rng), np.ones(1)) \
        == pytest.approx(B, rel=0.05)


def test_autocorrelation_of_an_ar1_stream_is_rho_to_the_lag():
    streams = ar1_streams(0.7, actors=8, steps=50_000, rng=np.random.default_rng(2))
    acf = autocorrelation(streams, max_lag=3)[:, 0]
    np.testing.assert_allclose(acf, [1, 0.7, 0.49, 0.343], atol=0.01)


def test_actor_batches_take_consecutive_states_from_distinct_actors():
    # stream value = actor * 1000 + time, so a batch shows where each state came from
    streams = (np.arange(4)[:, None] * 1000 + np.arange(100)[None, :]).astype(float)[..., None]
    batch = actor_batches(streams, 4, 8, 1, np.random.default_rng(0))[0, :, 0]
    runs = batch.reshape(4, 2)
    assert len(set(runs[:, 0] // 1000)) == 4
    np.testing.assert_array_equal(np.diff(runs, axis=1), 1)
    with pytest.raises(ValueError, match="multiple of n_actors"):
        actor_batches(streams, 3, 8, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_actors must be between 1 and the 4"):
        actor_batches(streams, 5, 10, 1, np.random.default_rng(0))


def test_collect_streams_records_real_cartpole_states():
    streams = collect_streams("CartPole-v1", n_actors=2, steps=300, seed=0)
    assert streams.shape == (2, 300, 4)
    assert not np.allclose(streams[0], streams[1])
    assert np.all(np.abs(streams[:, :, 2]) < 0.25)  # the pole angle never exceeds the fall limit


def fake_run(rows):
    return Run("a3c", A3CConfig(), None, History(rows))


def test_curves_on_grid_steps_through_the_rolling_mean():
    run = fake_run([(0, 10, 1.0, 2.0, 1), (0, 20, 2.0, 4.0, 1), (1, 30, 3.0, 9.0, 1)])
    curves = curves_on_grid([run], [5, 10, 15, 20, 30, 31], x="global_step", window=2)
    np.testing.assert_array_equal(curves[0], [np.nan, 2.0, 2.0, 3.0, 6.5, np.nan])
    by_time = curves_on_grid([run], [2.5], x="wall_time", window=2)
    assert by_time[0, 0] == 3.0
    with pytest.raises(ValueError, match="global_step' or 'wall_time"):
        curves_on_grid([run], [1], x="episodes")


def test_solve_summary_counts_the_runs_that_reached_the_threshold():
    solved_late = fake_run([(0, 10 * k, k, 2.0 * k, 1) for k in range(1, 6)])  # 6 at T=30
    solved_early = fake_run([(0, 10 * k, k, 10.0, 1) for k in range(1, 6)])  # 10 from T=10
    never = fake_run([(0, 10 * k, k, 1.0, 1) for k in range(1, 6)])
    summary = solve_summary([solved_late, solved_early, never], threshold=6.0, window=1)
    assert summary == {"solved": 2, "runs": 3, "median_steps": 20.0, "median_seconds": 2.0,
                       "median_final": 10.0}
    nobody = solve_summary([never], threshold=6.0, window=1)
    assert nobody["solved"] == 0 and nobody["median_steps"] is None


def test_score_at_a_step_or_a_second_reads_the_episodes_ended_by_then():
    run = fake_run([(0, 100 * k, 0.5 * k, 10.0 * k, 1) for k in range(1, 5)])  # 10, 20, 30, 40
    assert score_at(run, 250, window=2) == 15.0  # the episodes ended at 100 and 200
    assert score_at(run, 1.0, x="wall_time", window=3) == 15.0
    assert np.isnan(score_at(run, 99))
    assert score_at(run, 10_000, window=2) == 35.0  # ended before: keeps its last score


def test_the_two_panel_figure_is_steps_then_time():
    import matplotlib
    matplotlib.use("Agg")
    run = fake_run([(0, 10 * k, 0.5 * k, float(k), 1) for k in range(1, 6)])
    fig = plot_steps_and_time({"A3C": [run]}, threshold=4, title="t", window=1)
    left, right = fig.axes
    assert left.get_xlabel() == "global step T" and right.get_xlabel() == "wall time (s)"
    np.testing.assert_array_equal(left.lines[0].get_ydata()[-1:], [5.0])
    assert right.get_xlim()[1] < 10 and fig.legends[0].get_title().get_text() == "t"


def test_the_seed_median_is_drawn_only_where_every_seed_has_data():
    import matplotlib
    matplotlib.use("Agg")
    short = fake_run([(0, 10 * k, 0.1 * k, 1.0, 1) for k in range(1, 6)])  # ends at T = 50
    long = fake_run([(0, 10 * k, 0.1 * k, 3.0, 1) for k in range(1, 11)])  # ends at T = 100
    ax = plot_seed_curves({"two seeds": [short, long]}, window=1, points=101)
    median, *tails = ax.lines
    assert median.get_xdata().max() <= 50 and set(median.get_ydata()) == {2.0}
    # past the short seed's end, only the long seed, drawn alone, at its own value
    assert len(tails) == 1 and tails[0].get_xdata().max() == 100
    assert set(tails[0].get_ydata()) == {3.0}


def test_step_ticks_read_in_k_and_m():
    assert [figstyle.STEPS(x, 0) for x in (0, 999, 1_000, 150_000, 1_500_000, 2e6)] == [
        "0", "999", "1k", "150k", "1.5M", "2M"]


def test_methods_summary_adds_the_median_rate_to_the_solve_summary():
    fast = fake_run([(0, 100 * k, 0.01 * k, 10.0, 1) for k in range(1, 4)])  # 10,000 steps/s
    slow = fake_run([(0, 100 * k, 0.1 * k, 1.0, 1) for k in range(1, 4)])  # 1,000 steps/s
    middle = fake_run([(0, 100 * k, 0.05 * k, 1.0, 1) for k in range(1, 4)])  # 2,000 steps/s
    for run in (fast, slow, middle):
        run.global_step, run.wall_time = int(run.history.global_step[-1]), run.history.wall_time[-1]
    row = methods_summary({"m": [fast, slow, middle]}, threshold=5.0)["m"]
    assert row.pop("steps_per_second") == pytest.approx(2_000.0)
    assert row == solve_summary([fast, slow, middle], threshold=5.0)


def test_steady_rate_leaves_out_start_up():
    run = fake_run([(0, 1_000, 5.0, 1.0, 1), (0, 11_000, 7.0, 1.0, 1)])
    assert steady_rate(run) == 5_000.0
    with pytest.raises(ValueError, match="fewer than two episodes"):
        steady_rate(fake_run([]))


@pytest.mark.parametrize("value, quick", [("", False), ("0", False), ("no", False),
                                          ("1", True), ("yes", True)])
def test_quick_mode_reads_the_environment(monkeypatch, value, quick):
    monkeypatch.setenv("ASYNCRL_QUICK", value)
    assert quick_mode() is quick
    assert budget(100, 5) == (5 if quick else 100)
