"""Greedy episodes of a trained agent in one environment: shown in a window or written to an MP4."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.algorithm_base import Algorithm
from tianshou.data import Batch

RENDER_PACKAGES = ("Debian/Ubuntu: apt install libegl1 libegl-mesa0 libgl1-mesa-dri (MUJOCO_GL=egl, the "
                   "default here) or libosmesa6 (MUJOCO_GL=osmesa)")
"""What MuJoCo's offscreen rendering needs, for DMC and gymnasium MuJoCo tasks."""


def greedy_action(algorithm: Algorithm, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The policy's greedy action for one observation, mapped to the env's action space."""
    policy = algorithm.policy
    policy.is_within_training_step = False
    with torch.no_grad():
        result = policy(Batch(obs=np.asarray(obs)[None], info=Batch([info])))
    return policy.map_action(result.act)[0]


def render_frame(env: gym.Env) -> np.ndarray:
    try:
        frame = env.render()
    except Exception as err:  # MuJoCo raises several kinds when no GL backend loads
        gl = os.environ.get("MUJOCO_GL", "unset")
        raise SystemExit(
            f"rendering failed with MUJOCO_GL={gl} ({type(err).__name__}: {err}). MuJoCo renders offscreen "
            f"through EGL or OSMesa; install one: {RENDER_PACKAGES}"
        ) from err
    if frame is None:
        raise SystemExit("the environment returned no frame; it needs render_mode='rgb_array' for videos")
    return np.asarray(frame)


def open_video(path: str, fps: int) -> Any:
    try:
        import imageio.v2 as imageio

        return imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=8)
    except ImportError as err:
        raise SystemExit(
            f"writing MP4 needs imageio-ffmpeg: pip install 'tianshou-qmle[video]' ({err})"
        ) from err
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"cannot write an MP4 with imageio ({err}): pip install imageio-ffmpeg") from err


def play_episodes(
    algorithm: Algorithm, env: gym.Env, *, episodes: int, video: str | None = None, fps: int = 30,
    seed: int | None = None, max_steps: int | None = None,
) -> dict[str, Any]:
    """Play ``episodes`` greedy episodes (each cut after ``max_steps`` steps if given); with
    ``video``, write every frame to that MP4 file.

    :return: ``{"returns": [...], "lengths": [...], "frames": n}``.
    """
    writer = open_video(video, fps) if video else None
    returns, lengths, frames = [], [], 0
    try:
        for episode in range(episodes):
            obs, info = env.reset(seed=None if seed is None else seed + episode)
            total, length, done = 0.0, 0, False
            if writer is not None:
                writer.append_data(render_frame(env))
                frames += 1
            while not done:
                obs, reward, terminated, truncated, info = env.step(greedy_action(algorithm, obs, info))
                total, length = total + float(reward), length + 1
                done = terminated or truncated or (max_steps is not None and length >= max_steps)
                if writer is not None:
                    writer.append_data(render_frame(env))
                    frames += 1
            returns.append(total)
            lengths.append(length)
    finally:
        if writer is not None:
            writer.close()
        env.close()
    return {"returns": returns, "lengths": lengths, "frames": frames}


__all__ = ["RENDER_PACKAGES", "play_episodes"]
