"""Discretised control: any bounded ``Box`` task as a ``MultiDiscrete`` one (QMLE App. D.3).

:class:`DiscretizedActions` gives each of the d action dimensions K evenly spaced values between its
bounds, so K = 3 is the bang-off-bang scheme of Seyde et al. (2021) that the paper uses for its
discretised DeepMind Control tasks (Fig. 10): {low, centre, high} per dimension and 3^d joint
actions (3³⁸ ≈ 1.35·10¹⁸ for Dog). :class:`JointDiscreteActions` then enumerates the joint actions as
one ``Discrete(∏K)`` space, which is what an action-out learner such as DQN needs, and refuses
when that set is too large to enumerate.

Both are environments in their own right that hold the inner one, not ``gym.Wrapper``s: Tianshou's
vector envs read ``action_space`` from ``env.unwrapped``, which would skip a wrapper's new space
and make the collector's random warm-up sample the inner Box.
"""

from __future__ import annotations

import math
from typing import Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium.core import RenderFrame

from tianshou_qmle.net.action_codec import check_flat_bounded_box, check_num_bins

MAX_JOINT_ACTIONS = 100_000
"""Largest joint action set :class:`JointDiscreteActions` enumerates by default."""


class ActionTransformEnv(gym.Env):
    """An environment that exposes a new action space over an inner one; subclasses define
    :meth:`action`, the map from their actions to the inner env's."""

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.observation_space = env.observation_space
        self.metadata = env.metadata
        self.render_mode = env.render_mode
        self.spec = env.spec

    def action(self, action: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[object, dict]:
        if seed is not None:
            self.action_space.seed(seed)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> tuple[object, SupportsFloat, bool, bool, dict[str, Any]]:
        return self.env.step(self.action(action))

    def render(self) -> RenderFrame | list[RenderFrame] | None:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


class DiscretizedActions(ActionTransformEnv):
    """Turn a bounded ``Box(d)`` action space into ``MultiDiscrete([K] * d)``.

    Bin k of dimension j is ``low[j] + k·(high[j] − low[j])/(K − 1)``, so bins 0 and K − 1 are the
    bounds and, for odd K on a symmetric box, the middle bin is 0.

    :param env: an environment with a flat, bounded ``Box`` action space.
    :param num_bins: K ≥ 2, values per dimension; 3 is bang-off-bang (App. D.3).
    """

    def __init__(self, env: gym.Env, *, num_bins: int = 3) -> None:
        if not isinstance(env.action_space, gym.spaces.Box):
            raise TypeError(f"action_space must be a flat gymnasium.spaces.Box, got {env.action_space!r}")
        box = check_flat_bounded_box(env.action_space)
        super().__init__(env)
        self.num_bins = check_num_bins(num_bins)
        self.box = box
        self.bin_values = np.linspace(box.low, box.high, self.num_bins, dtype=box.dtype).T  # [d, K]
        self.action_space = gym.spaces.MultiDiscrete(np.full(box.shape[0], self.num_bins, dtype=np.int64))

    def action(self, action: np.ndarray) -> np.ndarray:
        indices = np.asarray(action, dtype=np.int64).reshape(self.box.shape)
        if indices.min() < 0 or indices.max() >= self.num_bins:
            raise ValueError(
                f"discretised actions are bin indices in [0, {self.num_bins - 1}], got {indices.tolist()}"
            )
        return self.bin_values[np.arange(indices.size), indices]


class JointDiscreteActions(ActionTransformEnv):
    """Enumerate a ``MultiDiscrete`` space's joint actions as one ``Discrete(∏ nvec)`` space.

    Joint index i decodes to per-dimension indices in mixed radix, last dimension fastest. Meant for
    action-out baselines (DQN) on discretised tasks; the product grows as K^d, so it refuses sets
    above ``max_actions`` (App. D.3: DQN runs out of memory beyond moderate d).

    :param env: an environment with a flat ``MultiDiscrete`` action space.
    :param max_actions: the largest joint action set to enumerate.
    """

    def __init__(self, env: gym.Env, *, max_actions: int = MAX_JOINT_ACTIONS) -> None:
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, gym.spaces.MultiDiscrete) or space.nvec.ndim != 1:
            raise TypeError(f"JointDiscreteActions needs a flat MultiDiscrete action space, got {space!r}")
        self.nvec = space.nvec.astype(np.int64)
        num_joint = math.prod(int(k) for k in self.nvec)
        if num_joint > max_actions:
            raise ValueError(
                f"the joint action set has {num_joint} actions (nvec={self.nvec.tolist()}), more than "
                f"max_actions={max_actions}; action-out methods cannot enumerate it, use QMLE's "
                f"MultiDiscrete support instead"
            )
        self.action_space = gym.spaces.Discrete(num_joint)

    def action(self, action: int | np.integer | np.ndarray) -> np.ndarray:
        joint = int(np.asarray(action).reshape(()))
        space = cast(gym.spaces.Discrete, self.action_space)  # set in __init__
        if not 0 <= joint < space.n:
            raise ValueError(f"joint action must be in [0, {space.n - 1}], got {joint}")
        return np.array(np.unravel_index(joint, tuple(self.nvec)), dtype=np.int64)
