"""Videos of a policy playing: every frame the env renders, encoded to H.264 in an MP4 file by the
ffmpeg binary that the imageio-ffmpeg wheel ships (nothing is downloaded)."""
from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np

from .envs import is_atari

ATARI_FPS = 60  # the 2600's frame rate: each emulator frame is recorded, the skipped ones too


def frame_rate(env_id: str) -> int:
    """Frames per second at which a recording of `env_id` plays at the game's own speed."""
    if is_atari(env_id):
        return ATARI_FPS
    env = gym.make(env_id)
    try:
        return int(env.metadata.get("render_fps") or 30)
    finally:
        env.close()


class Mp4Writer:
    """Frames (H x W x 3, uint8) in, an MP4 file out; the size is the first frame's. With
    `max_frames`, the frames after that many are left out."""

    def __init__(self, path, fps: int, max_frames: int | None = None):
        self.path, self.fps, self.max_frames = Path(path), fps, max_frames
        self.frames = 0
        self._writer = None

    def __call__(self, frame: np.ndarray):
        if self.max_frames is not None and self.frames >= self.max_frames:
            return
        if self._writer is None:
            import imageio_ffmpeg

            height, width = frame.shape[:2]
            # yuv420p, the format browsers play, needs even sides: macro_block_size 2 pads odd ones
            self._writer = imageio_ffmpeg.write_frames(
                str(self.path), (width, height), fps=self.fps, codec="libx264",
                pix_fmt_out="yuv420p", macro_block_size=2, quality=7,
                ffmpeg_log_level="error")
            self._writer.send(None)  # start ffmpeg
        self._writer.send(np.ascontiguousarray(frame, dtype=np.uint8))
        self.frames += 1

    def close(self):
        if self._writer is not None:
            self._writer.close()


def record(run, path, episodes: int = 1, *, greedy: bool = False, seed: int = 12345,
           seconds: float | None = None) -> dict:
    """`Run.video`: the run's policy plays `episodes` evaluation episodes into `path` (.mp4);
    with `seconds`, the video keeps only their first `seconds` (the episodes still play to
    their ends, for their returns)."""
    path = Path(path)
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not seconds > 0):
        raise ValueError(f"seconds={seconds!r}: must be a number > 0 (or None for everything)")
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{str(path)!r}: a video is written as MP4; give a path ending in .mp4")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: the folder {str(path.parent)!r} does not "
                         "exist")
    # classic control draws with pygame, which needs no screen for frames but complains without one
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    fps = frame_rate(run.config.env)
    writer = Mp4Writer(path, fps, None if seconds is None else max(1, round(seconds * fps)))
    try:
        result = run.evaluate(episodes, greedy=greedy, seed=seed, on_frame=writer)
    except BaseException:
        writer.close()
        path.unlink(missing_ok=True)  # a video cut short is not left looking like a whole one
        raise
    writer.close()
    return {**result, "path": str(path), "frames": writer.frames, "fps": writer.fps}
