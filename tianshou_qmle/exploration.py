"""Exploration noise that knows about episodes.

Tianshou's ``OUNoise`` keeps one process for the whole run: its Collector never calls ``reset``, so
a process started in one episode carries into the next, and one process is shared by every
environment of a vector env. :class:`EpisodicOUNoise` keeps one process per row of the action
batch (one per training env) and restarts a row's process whenever its env starts an episode,
which the env makers of :mod:`tianshou_qmle.env` report as ``info["episode_step"] == 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tianshou.exploration import BaseNoise

EPISODE_STEP_KEY = "episode_step"
"""``info`` key with the number of steps taken in the current episode (0 right after a reset)."""


def episode_starts(info: Any, rows: int) -> np.ndarray | None:
    """A ``[rows]`` bool mask of envs at the start of an episode, from a batch's ``info``; None when
    the info does not say (envs not made by :mod:`tianshou_qmle.env`)."""
    if info is None:
        return None
    try:
        steps = np.asarray(info[EPISODE_STEP_KEY]).reshape(-1)
    except (KeyError, TypeError, IndexError, ValueError, AttributeError):
        return None
    return steps == 0 if steps.shape[0] == rows else None


class EpisodicOUNoise(BaseNoise):
    """An Ornstein-Uhlenbeck process per row, restarted per episode, scaled by ε on its increments.

    x ← x + ε·(θ·(μ − x) + σ·N(0, 1)), as the SAVO authors' code applies its ε schedule (SAVO
    Table 3: θ 0.15, σ 0.2). Scaling the increments rather than the output makes the stationary
    standard deviation grow as √ε: σ·√(ε / (θ(2 − εθ))).

    :param sigma: σ of each increment (0.2 in SAVO's Table 3).
    :param theta: θ, the pull towards μ per step (0.15).
    :param mu: the mean the process reverts to (0).
    """

    def __init__(self, *, sigma: float = 0.2, theta: float = 0.15, mu: float = 0.0) -> None:
        super().__init__()
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be a finite number ≥ 0, got {sigma}")
        if not (np.isfinite(theta) and 0 < theta <= 1):
            raise ValueError(f"theta must be in (0, 1], got {theta}")
        self.sigma, self.theta, self.mu = float(sigma), float(theta), float(mu)
        self._state: np.ndarray | None = None

    def reset(self, rows: np.ndarray | None = None) -> None:
        """Restart every process (None), or those of ``rows`` (a bool mask or indices)."""
        if rows is None or self._state is None:
            self._state = None
        else:
            self._state[rows] = self.mu

    def __call__(self, size: Sequence[int], mu: float | None = None, scale: float = 1.0) -> np.ndarray:
        """The next value of each row's process, shape ``size`` (rows first), after one increment
        scaled by ``scale`` (ε)."""
        if self._state is None or self._state.shape != tuple(size):
            self._state = np.full(size, self.mu if mu is None else mu, dtype=np.float64)
        increment = self.theta * (self.mu - self._state) + self.sigma * np.random.normal(size=size)
        self._state = self._state + scale * increment
        return self._state.copy()

    def stationary_std(self, scale: float = 1.0) -> float:
        """The process's long-run standard deviation under a constant ε = ``scale``."""
        a = scale * self.theta
        return self.sigma * scale / np.sqrt(a * (2.0 - a)) if a > 0 else 0.0


__all__ = ["EPISODE_STEP_KEY", "EpisodicOUNoise", "episode_starts"]
