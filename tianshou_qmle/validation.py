"""Checks at the boundary between user input and the algorithms, shared by QMLE, SAVO and IQ.

Each raises a ``ValueError`` or ``TypeError`` that names the parameter as the user passes it, the
value given and what is accepted, before any state changes.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int ≥ 1; a ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer ≥ 1, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value}")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    """``value`` as a finite float > 0; a ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{name} must be a number > 0, got {value!r} of type {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def check_observation_batch(obs: torch.Tensor, obs_dim: int, *, name: str = "obs") -> torch.Tensor:
    """A ``[batch, obs_dim]`` view of ``obs``, which must be a batch of finite observations.

    :raises ValueError: for an unbatched observation (one of shape ``[obs_dim]``), a width other
        than ``obs_dim``, or NaN/inf values.
    """
    if obs.dim() == 0 or (obs.dim() == 1 and obs_dim > 1):
        raise ValueError(
            f"{name} must be a batch of observations of shape [batch, {obs_dim}], got an unbatched "
            f"observation of shape {tuple(obs.shape)}; add a batch dimension, e.g. obs[None]"
        )
    flat = obs.reshape(obs.shape[0], -1) if obs.dim() > 1 else obs.reshape(-1, 1)
    if flat.shape[1] != obs_dim:
        raise ValueError(
            f"{name} must be a batch of observations of shape [batch, {obs_dim}] (the network's "
            f"obs_dim), got shape {tuple(obs.shape)}, which flattens to {flat.shape[1]} values each"
        )
    if not bool(torch.isfinite(flat).all()):
        bad = (~torch.isfinite(flat)).nonzero()[:3].tolist()
        raise ValueError(
            f"observations must be finite, but {name} holds NaN or inf at (row, column) {bad}; check "
            f"the environment or its observation wrappers"
        )
    return flat




def check_buffer_can_sample(buffer: Any, sample_size: int | None) -> None:
    """Refuse an update on an empty buffer; warn when the batch is larger than the buffer.

    :raises ValueError: when ``buffer`` holds no transitions.
    """
    size = len(buffer)
    if size == 0:
        raise ValueError(
            "cannot update from an empty replay buffer: collect transitions first, e.g. "
            "collector.collect(n_step=1000, random=True) for a random warm-up"
        )
    if sample_size is not None and sample_size > size:
        warnings.warn(
            f"a batch of {sample_size} from a buffer of {size} transitions repeats them (sampling is "
            f"with replacement); a longer warm-up avoids this",
            stacklevel=3,
        )


class CheckedUpdateMixin:
    """``update`` that refuses an empty buffer and warns (once per algorithm) of batches larger
    than the buffer."""

    _warned_small_buffer = False

    def update(self, buffer: Any, sample_size: int | None) -> Any:
        if len(buffer) == 0 or not self._warned_small_buffer:
            check_buffer_can_sample(buffer, sample_size)
            if sample_size is not None and sample_size > len(buffer):
                self._warned_small_buffer = True
        return super().update(buffer, sample_size)  # type: ignore[misc]


__all__ = [
    "CheckedUpdateMixin",
    "check_buffer_can_sample",
    "check_observation_batch",
    "check_positive_float",
    "check_positive_int",
]
