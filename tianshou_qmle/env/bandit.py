"""The continuous 2D bandit with two modes of QMLE §5.1 (after Metz et al. 2019)."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

GLOBAL_MODE = np.array([0.6, 0.6], dtype=np.float32)
LOCAL_MODE = np.array([-0.5, -0.5], dtype=np.float32)


def bimodal_reward(actions: np.ndarray) -> np.ndarray:
    """Deterministic reward of 2-D actions ``[..., 2]``: two Gaussian bumps.

    The local mode at (−0.5, −0.5) is broad (σ 0.35) with height 0.6; the global mode at (0.6, 0.6)
    is narrow (σ 0.2) with height 1.0. Most of the box slopes toward the local mode, which is what
    traps gradient-following (DPG) and local-sampling learners; the paper does not publish its
    exact surface, only that it is bimodal with deterministic rewards.
    """
    a = np.asarray(actions, dtype=np.float64)
    d_global = np.sum((a - GLOBAL_MODE) ** 2, axis=-1)
    d_local = np.sum((a - LOCAL_MODE) ** 2, axis=-1)
    return 1.0 * np.exp(-d_global / (2 * 0.2**2)) + 0.6 * np.exp(-d_local / (2 * 0.35**2))


class BimodalBanditEnv(gym.Env[np.ndarray, np.ndarray]):
    """One-step episodes: a constant observation, a 2-D action in [-1, 1]², the bimodal reward.

    Every step terminates the episode, so Q(s, a) = r(a) and learning reduces to supervised
    regression of rewards (the point of §5.1).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}  # type: ignore[misc]  # gymnasium: instance attr

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.ones(1, dtype=np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        reward = float(bimodal_reward(action))
        return np.ones(1, dtype=np.float32), reward, True, False, {}
