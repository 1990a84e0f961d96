"""Replay buffers that store an arg max prior per transition (QMLE Principle 2, Algorithm 1).

Each transition ``(s_t, a_t, r_{t+1}, s_{t+1})`` carries ``act_max``: the best arg max approximation
found so far for its *next* state ``s_{t+1}``. It is initialised to the taken action ``a_t`` when the
transition is added (Algorithm 1) and overwritten by :class:`~tianshou_qmle.QMLE` with the refined
arg max every time the transition is sampled. Priors are kept in the same convention as ``act``:
the policy's normalised action box [-1, 1]^d, before ``map_action``.

Besides the prior, these buffers fix three Tianshou 2.0.1 limitations:

* ``hasnull()`` is answered in O(1) from a flag maintained as transitions are added, instead of a
  scan of the whole buffer after every collect step;
* the vector versions keep the extra key (Tianshou's managers drop unknown keys) and seed their
  own sub-buffer sampler from ``random_seed`` (Tianshou's is always seeded with 42);
* after unpickling or ``load_hdf5`` the vector versions' sub-buffers share the manager's storage
  again, so episode boundaries stay right for data added afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # a dependency of Tianshou's Batch
from tianshou.data import (
    Batch,
    PrioritizedReplayBuffer,
    PrioritizedReplayBufferManager,
    ReplayBuffer,
    ReplayBufferManager,
)
from tianshou.data.batch import BatchProtocol
from tianshou.data.types import RolloutBatchProtocol

ARGMAX_PRIOR_KEY = "act_max"
"""Name of the buffer field that holds the arg max prior of each transition's next state."""


def with_argmax_prior(batch: RolloutBatchProtocol) -> RolloutBatchProtocol:
    """A shallow copy of ``batch`` whose arg max prior is initialised to the taken action.

    A prior already present (e.g. when moving data between buffers) is kept.
    """
    new_batch = Batch()
    for key in batch.get_keys():
        new_batch.__dict__[key] = batch[key]
    if ARGMAX_PRIOR_KEY not in new_batch.get_keys():
        new_batch.__dict__[ARGMAX_PRIOR_KEY] = np.array(batch.act, dtype=np.float32, copy=True)
    return new_batch


def restore_python_scalars(obj: Any) -> None:
    """Turn the NumPy scalars HDF5 gives back for Python numbers into Python numbers again.

    ``save_hdf5`` stores a Python float such as ``_alpha`` or ``_max_prio`` as a float64 attribute
    and loads it as ``np.float64``. Under NumPy's promotion rules ``float32_array ** np.float64`` is
    computed in float64 but ``float32_array ** float`` in float32, so a loaded prioritized buffer
    would compute slightly different priorities than the one saved, and a resumed run would drift
    from the uninterrupted one. No attribute of these buffers is an ``np.float64`` or ``np.int64``
    scalar otherwise.
    """
    for name, value in list(vars(obj).items()):
        if isinstance(value, np.float64):
            setattr(obj, name, float(value))
        elif isinstance(value, np.int64):
            setattr(obj, name, int(value))
        elif isinstance(value, np.bool_):
            setattr(obj, name, bool(value))


def batch_has_null(batch: BatchProtocol) -> bool:
    """``batch.hasnull()``, leaf by leaf: whether any value of ``batch`` or of its nested batches is
    NaN or None (``pandas.isnull``, as Tianshou's).

    Tianshou's ``Batch.hasnull`` deep-copies the batch twice (once for ``isnull``, once for the
    ``any``); for the one-step batch of a collect step that was about 1.5 ms, as much as the
    DMC physics step. This walk copies nothing and stops at the first missing value.
    """
    for value in batch.__dict__.values():
        if isinstance(value, Batch):
            if batch_has_null(value):
                return True
        elif np.any(pd.isnull(value)):
            return True
    return False


class _FastNullCheckMixin:
    """An O(1) ``hasnull`` for a Tianshou buffer: the answer is kept up to date by ``add``."""

    _null_seen: bool | None = False
    """Whether a transition with a missing (NaN/None) value was added since the last reset; None
    when data arrived by another route and the answer must be computed once."""

    def add(
        self,
        batch: RolloutBatchProtocol,
        buffer_ids: np.ndarray | list[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._null_seen is False and batch_has_null(batch):
            self._null_seen = True
        return super().add(batch, buffer_ids)  # type: ignore[misc]

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        restore_python_scalars(self)

    def hasnull(self) -> bool:
        """Whether any stored transition holds a NaN or None, in O(1).

        Tianshou scans the whole buffer here, after every collect step; we record the answer as
        transitions are added. Data that bypasses ``add`` (``set_batch``, ``update``) costs one
        full scan at the next call.
        """
        if self._null_seen is None:
            buffer = cast(ReplayBuffer, self)  # the mixin is only ever combined with a ReplayBuffer
            self._null_seen = len(buffer) > 0 and batch_has_null(buffer[:])
        return bool(self._null_seen)

    def reset(self, keep_statistics: bool = False) -> None:
        super().reset(keep_statistics=keep_statistics)  # type: ignore[misc]
        self._null_seen = False

    def set_batch(self, batch: RolloutBatchProtocol) -> None:
        super().set_batch(batch)  # type: ignore[misc]
        self._null_seen = None

    def update(self, buffer: ReplayBuffer) -> np.ndarray:
        indices = super().update(buffer)  # type: ignore[misc]
        self._null_seen = None
        return indices


@dataclass(frozen=True)
class InternalActions:
    """What QMLE's internal actions of one space look like, for checking what enters a buffer."""

    width: int
    low: float
    high: float
    integral: bool
    description: str

    @classmethod
    def of(cls, action_space: gym.Space) -> InternalActions:
        """Box and MultiDiscrete: points of the normalised box [-1, 1]^d; Discrete(n): item indices."""
        if isinstance(action_space, gym.spaces.Discrete):
            n = int(action_space.n)
            return cls(1, 0.0, n - 1.0, True, f"item indices 0 … {n - 1} of {action_space!r}")
        if isinstance(action_space, gym.spaces.Box | gym.spaces.MultiDiscrete):
            d = gym.spaces.flatdim(action_space) if isinstance(action_space, gym.spaces.Box) else len(
                np.asarray(action_space.nvec).reshape(-1))
            return cls(d, -1.0, 1.0, False,
                       f"QMLE's normalised box [-1, 1]^{d} for {action_space!r} (the policy's actions "
                       f"before map_action; policy.map_action_inverse converts env actions)")
        raise TypeError(f"no QMLE action convention for {action_space!r}")

    def check(self, act: Any) -> None:
        values = np.asarray(act, dtype=np.float64)
        flat = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
        if flat.shape[1] != self.width:
            raise ValueError(f"act must have {self.width} values per transition ({self.description}), "
                             f"got shape {values.shape}")
        outside = ~np.isfinite(flat) | (flat < self.low - 1e-6) | (flat > self.high + 1e-6)
        if self.integral:
            outside |= np.abs(flat - np.round(flat)) > 1e-6
        if outside.any():
            row, col = map(int, np.argwhere(outside)[0])
            raise ValueError(f"act must be {self.description}; got {flat[row, col]} at (row, column) "
                             f"({row}, {col})")


class _ArgmaxPriorMixin(_FastNullCheckMixin):
    """Adds the ``act_max`` field (and the O(1) ``hasnull``) to a Tianshou buffer class, and, when
    built with an ``action_space``, refuses actions outside QMLE's convention for it."""

    # Any: tianshou's tuple of exactly nine keys would make this longer tuple an incompatible override
    _reserved_keys: Any = (*ReplayBuffer._reserved_keys, ARGMAX_PRIOR_KEY)
    _internal_actions: InternalActions | None = None

    def set_action_space(self, action_space: gym.Space | None) -> None:
        """Check every added ``act`` (and prior) against QMLE's convention for ``action_space``."""
        self._internal_actions = None if action_space is None else InternalActions.of(action_space)

    def add(
        self,
        batch: RolloutBatchProtocol,
        buffer_ids: np.ndarray | list[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._internal_actions is not None:
            self._internal_actions.check(batch.act)
            if ARGMAX_PRIOR_KEY in batch.get_keys():
                self._internal_actions.check(batch[ARGMAX_PRIOR_KEY])
        return super().add(with_argmax_prior(batch), buffer_ids)

    def write_argmax_prior(self, indices: np.ndarray, priors: np.ndarray) -> None:
        """Overwrite the stored priors at ``indices`` (duplicates: the last write wins)."""
        self._meta[ARGMAX_PRIOR_KEY][indices] = priors  # type: ignore[attr-defined]


class ArgmaxPriorReplayBuffer(_ArgmaxPriorMixin, ReplayBuffer):
    """Uniform replay buffer with an arg max prior per transition (Algorithm 1's memory ``B``).

    Arguments are those of :class:`tianshou.data.ReplayBuffer`; pass the run's seed as
    ``random_seed`` so that different seeds sample different indices.
    """


class PrioritizedArgmaxPriorReplayBuffer(_ArgmaxPriorMixin, PrioritizedReplayBuffer):
    """Prioritized replay (Schaul et al. 2016) with an arg max prior per transition (App. B).

    Importance weights, as Tianshou computes them: ``w_j = (p_j / p_min)^(-αβ)``, normalised by
    the largest weight *in the sampled batch*, where Schaul et al. (and the QMLE paper) normalise
    by the largest weight in the whole buffer, ``(p_j / p_min,buffer)^(-αβ)``. Within a batch the
    two differ by one common factor, ``(p_min,batch / p_min,buffer)^(αβ)`` ≥ 1: the direction of
    every gradient step is the same, and its size is larger by that factor. With Table 1's α 0.6
    and β 0.2 (αβ = 0.12), a batch whose smallest priority is 100 times the buffer's smallest
    steps 1.74 times further. We keep Tianshou's normalisation.

    :param size: capacity (10⁶ in Table 1).
    :param alpha: priority exponent (0.6 in Table 1).
    :param beta: importance-sampling exponent (0.2 in Table 1; ``set_beta`` anneals it).

    Other arguments are those of :class:`tianshou.data.PrioritizedReplayBuffer`.
    """

    def __init__(self, size: int, alpha: float = 0.6, beta: float = 0.2, **kwargs: Any) -> None:
        super().__init__(size, alpha=alpha, beta=beta, **kwargs)


def _sub_buffer_size(total_size: int, buffer_num: int) -> int:
    if buffer_num < 1:
        raise ValueError(f"buffer_num (the number of training envs) must be ≥ 1, got {buffer_num}")
    if total_size < buffer_num:
        raise ValueError(f"the buffer size ({total_size}) must be at least the number of training "
                         f"envs ({buffer_num})")
    return int(np.ceil(total_size / buffer_num))


class _VectorBufferMixin:
    """Construction and loading shared by our buffer managers (one child buffer per env)."""

    def _init_children(
        self, child_cls: type, total_size: int, buffer_num: int, random_seed: int, **child_kwargs: Any
    ) -> None:
        size = _sub_buffer_size(total_size, buffer_num)
        children = [
            child_cls(size, random_seed=random_seed + 1 + i, **child_kwargs) for i in range(buffer_num)
        ]
        super().__init__(children)  # type: ignore[call-arg]
        # Tianshou's managers seed their own sub-buffer choice with a fixed 42
        self._random_state = np.random.RandomState(random_seed)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling and ``load_hdf5`` give the children copies of the manager's arrays; point
        them back at its storage, or the children's ``done`` (read by ``unfinished_index``) and
        the manager's would drift apart as new transitions arrive."""
        super().__setstate__(state)  # type: ignore[misc]
        for child in getattr(self, "buffers", []):
            restore_python_scalars(child)
        if len(self._meta.get_keys()) > 0:  # type: ignore[attr-defined]
            self._set_batch_for_children()  # type: ignore[attr-defined]


class ArgmaxPriorVectorReplayBuffer(_VectorBufferMixin, _ArgmaxPriorMixin, ReplayBufferManager):
    """:class:`ArgmaxPriorReplayBuffer` for ``buffer_num`` parallel environments.

    Drop-in for :class:`tianshou.data.VectorReplayBuffer`.

    :param total_size: capacity summed over all sub-buffers.
    :param buffer_num: number of sub-buffers, one per training environment.
    :param random_seed: seeds both the choice of sub-buffer and each sub-buffer's sampler.
    """

    def __init__(
        self, total_size: int, buffer_num: int, random_seed: int = 42, **kwargs: Any
    ) -> None:
        self._init_children(ArgmaxPriorReplayBuffer, total_size, buffer_num, random_seed, **kwargs)


class PrioritizedArgmaxPriorVectorReplayBuffer(
    _VectorBufferMixin, _ArgmaxPriorMixin, PrioritizedReplayBufferManager
):
    """:class:`PrioritizedArgmaxPriorReplayBuffer` for ``buffer_num`` parallel environments.

    Drop-in for :class:`tianshou.data.PrioritizedVectorReplayBuffer`. Prioritized sampling draws
    from NumPy's global generator, as in Tianshou: seed it with ``np.random.seed``.

    :param total_size: capacity summed over all sub-buffers.
    :param buffer_num: number of sub-buffers, one per training environment.
    :param alpha: priority exponent (0.6 in Table 1).
    :param beta: importance-sampling exponent (0.2 in Table 1).
    """

    def __init__(
        self,
        total_size: int,
        buffer_num: int,
        alpha: float = 0.6,
        beta: float = 0.2,
        random_seed: int = 42,
        **kwargs: Any,
    ) -> None:
        self._init_children(
            PrioritizedArgmaxPriorReplayBuffer, total_size, buffer_num, random_seed,
            alpha=alpha, beta=beta, **kwargs,
        )

    def set_beta(self, beta: float) -> None:
        """Set the importance-sampling exponent (the manager's own ``_beta`` is the one used)."""
        super().set_beta(beta)
        for buffer in self.buffers:
            buffer.set_beta(beta)


class FastNullCheckReplayBuffer(_FastNullCheckMixin, ReplayBuffer):
    """Tianshou's :class:`~tianshou.data.ReplayBuffer` with an O(1) ``hasnull`` and nothing else.

    For baselines (TD3, SAC, DDPG) compared against QMLE, so that both get the same buffer-side fix.
    """


class FastNullCheckVectorReplayBuffer(_VectorBufferMixin, _FastNullCheckMixin, ReplayBufferManager):
    """Tianshou's :class:`~tianshou.data.VectorReplayBuffer` with an O(1) ``hasnull``, seeded."""

    def __init__(self, total_size: int, buffer_num: int, random_seed: int = 42, **kwargs: Any) -> None:
        self._init_children(FastNullCheckReplayBuffer, total_size, buffer_num, random_seed, **kwargs)


ARGMAX_PRIOR_BUFFER_TYPES = (
    ArgmaxPriorReplayBuffer,
    PrioritizedArgmaxPriorReplayBuffer,
    ArgmaxPriorVectorReplayBuffer,
    PrioritizedArgmaxPriorVectorReplayBuffer,
)


def make_replay_buffer(
    *,
    size: int,
    num_envs: int,
    prioritized: bool = True,
    alpha: float = 0.6,
    beta: float = 0.2,
    seed: int = 0,
    action_space: gym.Space | None = None,
    ignore_obs_next: bool = False,
) -> ReplayBuffer:
    """The arg max prior buffer that fits a collector over ``num_envs`` environments.

    Memory: the buffer allocates all ``size`` slots when the first transition arrives, obs and
    obs_next each as ``size × obs_dim`` float32 (10⁶ × 223 values on dog-walk: about 3.3 GB of
    resident memory in all). ``ignore_obs_next=True`` stores each observation once and reads the
    next one from the following slot, which nearly halves that.

    :param size: total capacity (10⁶ in Table 1).
    :param num_envs: the number of training environments (1 gives the vector version too, which is
        what Tianshou's collector expects of a vector env).
    :param prioritized: prioritized replay as in App. B (True) or uniform as in Algorithm 1.
    :param alpha: priority exponent.
    :param beta: importance-sampling exponent.
    :param seed: the run's seed, for the buffer's sampler.
    :param action_space: the environment's action space; when given, every added action must be in
        QMLE's internal convention for it (see :class:`InternalActions`), or ``add`` raises.
    :param ignore_obs_next: store observations once (see above).
    """
    check_buffer_size(size, num_envs)
    buffer: ReplayBuffer
    if prioritized:
        buffer = PrioritizedArgmaxPriorVectorReplayBuffer(
            size, num_envs, alpha=alpha, beta=beta, random_seed=seed, ignore_obs_next=ignore_obs_next
        )
    else:
        buffer = ArgmaxPriorVectorReplayBuffer(size, num_envs, random_seed=seed,
                                               ignore_obs_next=ignore_obs_next)
    buffer.set_action_space(action_space)
    return buffer


def check_buffer_size(size: int, num_envs: int) -> None:
    """``size`` (the capacity over all envs) must be an integer ≥ ``num_envs`` ≥ 1."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer ≥ 1, got {num_envs!r}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < num_envs:
        raise ValueError(f"size must be an integer ≥ num_envs ({num_envs}): one slot per env at least; "
                         f"got {size!r}")
