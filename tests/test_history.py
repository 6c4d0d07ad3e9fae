"""The record of a run: the parent's compact episode log and the History built from it."""
import numpy as np
import pytest

from asyncrl_lab.history import EPISODE_COLUMNS, Episode, EpisodeLog, History


def rows(n):
    rng = np.random.default_rng(0)
    return [(int(i % 3), 10 * i, 0.5 * i, float(rng.normal()), int(rng.integers(1, 500)))
            for i in range(n)]


def test_the_log_reads_as_the_rows_it_was_given_across_its_chunks():
    log, given = EpisodeLog(), rows(10_000)  # three chunks of 4,096
    for row in given:
        log.append(Episode(*row))
    assert len(log) == 10_000
    assert list(log) == given and log[-1] == given[-1] and log[4094:4098] == given[4094:4098]
    returns = [r[3] for r in given]
    assert log.column("episode_return").tolist() == returns
    for last in (1, 100, 4096, 6000, 20_000):
        assert log.column("episode_return", last=last).tolist() == returns[-last:]
    log.column("episode_return")[0] = 99.0  # a copy: the log keeps its values
    assert log[0] == given[0]
    with pytest.raises(IndexError):
        log[10_000]
    assert EpisodeLog().column("global_step", last=100).tolist() == []


def test_the_log_takes_32_bytes_an_episode_plus_one_chunk():
    log = EpisodeLog()
    for row in rows(9000):
        log.append(Episode(*row))
    allocated = sum(c.nbytes for chunk in log._chunks for c in chunk)
    assert 32 * 9000 <= allocated <= 32 * (9000 + 4096)


def test_a_history_from_the_log_equals_one_from_its_rows():
    log, given = EpisodeLog(), rows(300)
    for row in given:
        log.append(Episode(*row))
    from_log, from_rows = History(log, staleness=[5, 2]), History(given, staleness=[5, 2])
    for name in EPISODE_COLUMNS:
        np.testing.assert_array_equal(getattr(from_log, name), getattr(from_rows, name))
        assert getattr(from_log, name).dtype == getattr(from_rows, name).dtype
    assert from_log.rows() == from_rows.rows() == given


def test_a_resumed_history_continues_the_wall_time_and_adds_the_staleness():
    first, later = History(rows(3), staleness=[4, 1]), History(rows(2), staleness=[2, 0, 1])
    joined = first.followed_by(later, wall_offset=100.0)
    assert joined.rows() == rows(3) + [(w, s, t + 100.0, r, n) for w, s, t, r, n in rows(2)]
    assert joined.staleness.tolist() == [6, 1, 1]
