"""An environment wrapper that lets a killed run resume with the episodes it would have had.

A checkpoint cannot hold a simulator's full state in general, but it can hold the environment's
random generator as it was *just before the episode now running was reset*. On resume, the
generator is put back and the environment is reset once more, which draws the same initial state.
So when a checkpoint is taken at the start of an episode (as at the epoch ends of a DMC run, whose
episodes all last 1000 steps), the resumed run sees exactly the episodes of an uninterrupted one.
Mid-episode, the resumed run restarts that episode from its initial state instead.

The wrapper leaves the generator's stream untouched, so wrapped and unwrapped environments produce
identical runs.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from tianshou_qmle.exploration import EPISODE_STEP_KEY

RngState = tuple[str, Any]
"""``(kind, state)``: ``("RandomState", (name, keys, pos, has_gauss, cached))`` or
``("Generator", bit_generator_state_dict)``, in plain Python types."""


def capture_rng(rng: np.random.RandomState | np.random.Generator) -> RngState:
    """A copy of ``rng``'s state in plain Python types (fit for ``torch.load(weights_only=True)``)."""
    if isinstance(rng, np.random.RandomState):
        name, keys, pos, has_gauss, cached = rng.get_state(legacy=True)
        return ("RandomState", (name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)))
    if isinstance(rng, np.random.Generator):
        return ("Generator", _plain(rng.bit_generator.state))
    raise TypeError(f"cannot capture a random generator of type {type(rng).__name__}")


def restore_rng(rng: np.random.RandomState | np.random.Generator, state: RngState) -> None:
    """Put ``state`` (from :func:`capture_rng`) back into ``rng``."""
    kind, value = state
    if kind == "RandomState" and isinstance(rng, np.random.RandomState):
        name, keys, pos, has_gauss, cached = value
        rng.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    elif kind == "Generator" and isinstance(rng, np.random.Generator):
        rng.bit_generator.state = value
    else:
        raise TypeError(f"cannot restore a {kind} state into a {type(rng).__name__}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [int(v) for v in value.ravel()]
    if isinstance(value, np.integer):
        return int(value)
    return value


RESUME_STATE = "tianshou_qmle_resume_state"
"""Attribute of the *unwrapped* env holding ``{"rng": ..., "steps_in_episode": n}`` (Tianshou's
``get_env_attr`` reads attributes of ``env.unwrapped``)."""

RESUME_REQUEST = "tianshou_qmle_resume_request"
"""Attribute of the unwrapped env that, when set to a :data:`RESUME_STATE` value, makes the next
``reset()`` repeat the recorded one (Tianshou's ``set_env_attr`` sets it)."""


class ResumableEpisodes(gym.Wrapper):
    """Records the environment's random generator before every reset (see the module docstring),
    and reports ``info["episode_step"]`` (0 at a reset), which episodic exploration noise reads.

    Through a Tianshou vector env, ``envs.get_env_attr(RESUME_STATE)`` reads each env's record, and
    ``envs.set_env_attr(RESUME_REQUEST, record, id=i)`` asks env ``i`` to repeat it at its next
    reset; both work in-process and in subprocesses.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._record(rng=None, steps=0)

    def _record(self, *, rng: RngState | None, steps: int) -> None:
        setattr(self.env.unwrapped, RESUME_STATE, {"rng": rng, "steps_in_episode": steps})

    def _generator(self) -> np.random.RandomState | np.random.Generator:
        return self.env.unwrapped.np_random

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        unwrapped = self.env.unwrapped
        request = getattr(unwrapped, RESUME_REQUEST, None)
        if request is not None:
            setattr(unwrapped, RESUME_REQUEST, None)
            if request.get("rng") is not None and kwargs.get("seed") is None:
                restore_rng(self._generator(), request["rng"])
        seeded = kwargs.get("seed") is not None
        rng = None if seeded else capture_rng(self._generator())
        obs, info = self.env.reset(**kwargs)
        self._record(rng=rng, steps=0)
        return obs, {**info, EPISODE_STEP_KEY: 0}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        state = getattr(self.env.unwrapped, RESUME_STATE)
        state["steps_in_episode"] += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, EPISODE_STEP_KEY: state["steps_in_episode"]}

    @property
    def tianshou_qmle_resume_state(self) -> dict[str, Any]:
        """The record, also on the wrapper: Tianshou's subprocess workers read attributes of the
        env they hold, its in-process workers those of ``env.unwrapped``."""
        return getattr(self.env.unwrapped, RESUME_STATE)


__all__ = ["RESUME_REQUEST", "RESUME_STATE", "ResumableEpisodes", "RngState", "capture_rng", "restore_rng"]
