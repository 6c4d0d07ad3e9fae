"""Videos of a policy playing: every rendered frame at its full size, read back from the MP4 file
with the same ffmpeg; the command line; bad paths refused."""
import subprocess
import sys

import numpy as np
import pytest

import asyncrl_lab as lab
from asyncrl_lab.video import ATARI_FPS

from helpers import ROOT, subprocess_env


def read_video(path):
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return meta, [np.frombuffer(frame, np.uint8) for frame in reader]


@pytest.fixture(scope="module")
def cartpole_run():
    return lab.train("a3c", env="CartPole-v1", workers=2, total_steps=20_000, seed=0,
                     progress=False)


def test_a_cartpole_video_holds_every_step_of_each_episode(cartpole_run, tmp_path):
    result = cartpole_run.video(tmp_path / "cartpole.mp4", episodes=2, seed=3)
    meta, frames = read_video(tmp_path / "cartpole.mp4")
    assert tuple(meta["size"]) == (600, 400) and meta["fps"] == 50
    # a frame at each reset and one after each step
    assert len(frames) == result["frames"] == sum(result["returns"]) + 2
    assert result["returns"] == cartpole_run.evaluate(2, seed=3)["returns"]  # the same play
    assert len({frame.tobytes() for frame in frames[:20]}) > 10  # the pole moves


def test_an_atari_video_has_every_emulator_frame_at_full_size(tmp_path):
    untrained = lab.train("a2c", env="ALE/Pong-v5", total_steps=16, n_envs=16, progress=False)
    result = untrained.video(tmp_path / "pong.mp4")
    meta, frames = read_video(tmp_path / "pong.mp4")
    assert tuple(meta["size"]) == (160, 210) and meta["fps"] == ATARI_FPS
    assert len(frames) == result["frames"]
    assert result["returns"][0] <= -15  # an untrained agent loses
    # a game of 21 points or more, four emulator frames to each of its steps
    assert result["frames"] > 4 * 21 * 30


def test_a_video_cut_to_seconds_keeps_that_many_frames_and_the_whole_games_returns(
        cartpole_run, tmp_path):
    result = cartpole_run.video(tmp_path / "short.mp4", episodes=2, seed=3, seconds=0.5)
    _, frames = read_video(tmp_path / "short.mp4")
    assert len(frames) == result["frames"] == 25  # 0.5 s at 50 fps
    assert result["returns"] == cartpole_run.evaluate(2, seed=3)["returns"]


def test_the_command_line_records_a_saved_run(cartpole_run, tmp_path):
    cartpole_run.save(tmp_path / "run")
    done = subprocess.run([sys.executable, "-m", "asyncrl_lab", "video", str(tmp_path / "run"),
                           "--out", str(tmp_path / "v.mp4"), "--episodes", "1", "--greedy"],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "at 50 fps" in done.stdout
    _, frames = read_video(tmp_path / "v.mp4")
    assert len(frames) > 1
    assert "XDG_RUNTIME_DIR" not in done.stderr  # no complaint about a missing screen


def test_bad_video_paths_are_refused_naming_the_problem(cartpole_run, tmp_path):
    with pytest.raises(ValueError, match="MP4"):
        cartpole_run.video(tmp_path / "v.avi")
    with pytest.raises(ValueError, match="does not exist"):
        cartpole_run.video(tmp_path / "missing" / "v.mp4")
    with pytest.raises(ValueError, match="seconds=0"):
        cartpole_run.video(tmp_path / "v.mp4", seconds=0)
    with pytest.raises(ValueError, match="episodes=0"):
        cartpole_run.video(tmp_path / "v.mp4", episodes=0)
    assert not (tmp_path / "v.mp4").exists()  # nothing half-written is left
