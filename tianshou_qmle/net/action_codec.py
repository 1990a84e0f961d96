"""How QMLE represents actions of each gymnasium space, without ever enumerating the action set.

QMLE keeps every action in an internal form and feeds the action-in critic a *representation* of
it (QMLE §4: Q is action-in, so no output unit per action is needed). A codec converts between the
three views and samples uniform candidates:

=====================  ===========================  ===========================  ==================
space                  internal form (buffer, ``act``)  Q's action input            env action
=====================  ===========================  ===========================  ==================
``Box``                normalised box [-1, 1]^d     the same coordinates         scaled by the policy
``Box`` + grid         grid points of [-1, 1]^d     the same coordinates         scaled by the policy
``MultiDiscrete``      bin coordinates in [-1, 1]^d the same coordinates         bin indices
``Discrete(n)``        item index, as float ``[1]``  one-hot or item embedding    item index
=====================  ===========================  ===========================  ==================

Why bin *coordinates* for ``MultiDiscrete`` rather than a per-dimension one-hot: bins of a
discretised control task are ordered points of an interval, and the coordinate tells Q that bin 0
and bin 1 are neighbours, so values generalise across bins (the sample-efficiency argument of App.
D.3); the input stays d wide instead of ΣK; and it is the same input a continuous Box uses, so a
curriculum from a coarse grid to the continuous box (App. E.3) keeps the critic, the predictors and
every stored action valid. A one-hot would have none of the three.

The codec is an ``nn.Module`` so that its tables (bin values, item embeddings) move with the
network and are saved in checkpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from tianshou_qmle.search.nearest import nearest_neighbours, squared_norms

MAX_ONE_HOT_ITEMS = 4096
"""Largest ``Discrete(n)`` represented by one-hot vectors; larger sets need item embeddings."""

SUPPORTED_SPACES = "gymnasium.spaces.Box (flat, bounded), MultiDiscrete (flat) and Discrete"


class ActionCodec(nn.Module, ABC):
    """Converts QMLE's internal actions to Q inputs and env actions, and samples uniform candidates.

    :param action_dim: width of the internal form (d for boxes and bins, 1 for an item index).
    :param representation_dim: width of the critic's action input.
    """

    anchor: torch.Tensor  # a registered buffer (subclasses register it); follows the module's device

    def __init__(self, *, action_dim: int, representation_dim: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.representation_dim = representation_dim

    @property
    def device(self) -> torch.device:
        return self.anchor.device

    @abstractmethod
    def uniform(self, batch_size: int, n: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``n`` uniform candidates per state in internal form, ``[batch, n, action_dim]`` (ρ0)."""

    @abstractmethod
    def represent(self, actions: torch.Tensor) -> torch.Tensor:
        """Q's action input for internal actions ``[..., action_dim]`` → ``[..., representation_dim]``."""

    @abstractmethod
    def snap(self, points: torch.Tensor) -> torch.Tensor:
        """The valid action nearest to each point of representation space, in internal form."""

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Internal actions ``[batch, action_dim]`` → what the environment's ``step`` takes."""
        return actions

    def from_env(self, actions: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_env`, for the collector's random warm-up actions."""
        return actions

    @property
    def is_continuous(self) -> bool:
        """True when predictors may propose any point of the box (no snapping to a finite set)."""
        return False


class BoxCodec(ActionCodec):
    """The normalised box [-1, 1]^d, optionally restricted to a K-point grid per dimension.

    :param act_dim: d.
    :param grid_bins: None for the continuous box; K ≥ 2 restricts every candidate and every
        exploratory action to ``linspace(-1, 1, K)`` per dimension (K = 3 is bang-off-bang). Change
        it during training with :meth:`set_grid_bins` for the discrete→continuous curriculum of
        App. E.3: grid points are points of the box, so stored actions stay valid.
    """

    def __init__(self, *, act_dim: int, grid_bins: int | None = None) -> None:
        super().__init__(action_dim=act_dim, representation_dim=act_dim)
        self.register_buffer("anchor", torch.zeros(()), persistent=False)
        self.grid_bins: int | None = None
        self.set_grid_bins(grid_bins)

    def set_grid_bins(self, grid_bins: int | None) -> None:
        if grid_bins is not None:
            grid_bins = check_num_bins(grid_bins, name="grid_bins")
        self.grid_bins = grid_bins

    @property
    def is_continuous(self) -> bool:
        return self.grid_bins is None

    def uniform(self, batch_size: int, n: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if self.grid_bins is None:
            return torch.rand(batch_size, n, self.action_dim, device=device, dtype=dtype).mul_(2.0).sub_(1.0)
        bins = torch.randint(self.grid_bins, (batch_size, n, self.action_dim), device=device)
        return bins.to(dtype).mul_(2.0 / (self.grid_bins - 1)).sub_(1.0)

    def represent(self, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def snap(self, points: torch.Tensor) -> torch.Tensor:
        points = points.clamp(-1.0, 1.0)
        if self.grid_bins is None:
            return points
        half_steps = 0.5 * (self.grid_bins - 1)
        return ((points + 1.0) * half_steps).round_().div_(half_steps).sub_(1.0)


class MultiDiscreteCodec(ActionCodec):
    """Factored discrete actions, dimension j with ``nvec[j]`` bins at ``linspace(-1, 1, nvec[j])``.

    Memory and time scale with d and max K, never with the ∏K joint actions.

    :param nvec: bins per dimension, each ≥ 2.
    """

    nvec: torch.Tensor  # registered buffer

    def __init__(self, *, nvec: np.ndarray) -> None:
        nvec = np.asarray(nvec, dtype=np.int64)
        if nvec.ndim != 1 or nvec.size == 0:
            raise ValueError(f"MultiDiscrete nvec must be a non-empty flat vector, got shape {nvec.shape}")
        if (nvec < 2).any():
            raise ValueError(f"every MultiDiscrete dimension needs ≥ 2 bins, got nvec={nvec.tolist()}")
        super().__init__(action_dim=int(nvec.size), representation_dim=int(nvec.size))
        self.register_buffer("nvec", torch.as_tensor(nvec))
        self.register_buffer("anchor", torch.zeros(()), persistent=False)

    @property
    def max_bins(self) -> int:
        return int(self.nvec.max())

    def bin_values(self) -> torch.Tensor:
        """``[d, max K]`` coordinates of every bin; entries past a dimension's K repeat its last bin."""
        positions = torch.arange(self.max_bins, device=self.nvec.device).unsqueeze(0)
        last = (self.nvec - 1).unsqueeze(1)
        return positions.clamp(max=last).float().mul(2.0 / last.float()).sub(1.0)

    def indices_to_coordinates(self, indices: torch.Tensor) -> torch.Tensor:
        return indices.float().mul(2.0 / (self.nvec - 1).float()).sub(1.0)

    def coordinates_to_indices(self, coordinates: torch.Tensor) -> torch.Tensor:
        half_steps = 0.5 * (self.nvec - 1).float()
        scaled = (coordinates.clamp(-1.0, 1.0) + 1.0) * half_steps
        return scaled.round().long()

    def uniform(self, batch_size: int, n: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        # floor(U·K) is a uniform bin; staying in float avoids an int64 tensor as large as the candidates
        bins = torch.rand(batch_size, n, self.action_dim, device=device).mul_(self.nvec).floor_()
        return bins.mul_(2.0 / (self.nvec - 1)).sub_(1.0).to(dtype)

    def represent(self, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def snap(self, points: torch.Tensor) -> torch.Tensor:
        return self.indices_to_coordinates(self.coordinates_to_indices(points)).to(points.dtype)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        nvec = self.nvec.cpu().numpy()
        indices = np.rint((np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (nvec - 1))
        return indices.astype(np.int64)

    def from_env(self, actions: np.ndarray) -> np.ndarray:
        nvec = self.nvec.cpu().numpy()
        return (np.asarray(actions, dtype=np.float32) * (2.0 / (nvec - 1)) - 1.0).astype(np.float32)


class DiscreteCodec(ActionCodec):
    """``Discrete(n)``: the internal action is the item index (as a float of shape ``[1]``, exact up
    to 2²⁴ items), represented to Q by a one-hot vector or by the item's embedding.

    :param n: the number of items.
    :param embeddings: ``[n, e]`` item embeddings (e.g. ``RecSimEnv.item_embeddings``); None uses
        one-hot vectors, allowed up to :data:`MAX_ONE_HOT_ITEMS` items.
    """

    table: torch.Tensor  # registered buffers
    table_sq_norms: torch.Tensor

    def __init__(self, *, n: int, embeddings: np.ndarray | torch.Tensor | None = None) -> None:
        if n < 2:
            raise ValueError(f"Discrete action spaces need n ≥ 2 actions, got n={n}")
        if n > 2**24:
            raise ValueError(f"Discrete(n) supports n ≤ 2**24 (float32-exact indices), got n={n}")
        if embeddings is None:
            if n > MAX_ONE_HOT_ITEMS:
                raise ValueError(
                    f"Discrete({n}) is too large for one-hot representations (limit "
                    f"{MAX_ONE_HOT_ITEMS}); pass action_embeddings of shape [{n}, e]"
                )
            table = torch.eye(n)
        else:
            table = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
            if table.dim() != 2 or table.shape[0] != n:
                raise ValueError(
                    f"action_embeddings must have shape [n, e] = [{n}, e] for Discrete({n}), "
                    f"got {tuple(table.shape)}"
                )
            if not bool(torch.isfinite(table).all()):
                raise ValueError("action_embeddings must be finite")
        super().__init__(action_dim=1, representation_dim=int(table.shape[1]))
        self.n = n
        self.register_buffer("table", table.contiguous())
        self.register_buffer("table_sq_norms", squared_norms(table))
        self.register_buffer("anchor", torch.zeros(()), persistent=False)

    def uniform(self, batch_size: int, n: int, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.randint(self.n, (batch_size, n, 1), device=device).to(dtype)

    def represent(self, actions: torch.Tensor) -> torch.Tensor:
        return self.table[actions.squeeze(-1).long()]

    def snap(self, points: torch.Tensor) -> torch.Tensor:
        items = nearest_neighbours(points.float(), self.table, 1, table_sq_norms=self.table_sq_norms)
        return items.to(points.dtype)

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        return np.asarray(actions).reshape(-1).astype(np.int64)

    def from_env(self, actions: np.ndarray) -> np.ndarray:
        return np.asarray(actions, dtype=np.float32).reshape(-1, 1)


def check_flat_bounded_box(space: gym.spaces.Box, *, name: str = "action_space") -> gym.spaces.Box:
    """Raise a ValueError naming ``name`` unless ``space`` is a flat ``Box`` with finite bounds
    (uniform sampling, bins and action scaling all need them)."""
    if len(space.shape) != 1:
        raise ValueError(f"{name} must be a flat Box of shape (d,), got shape {space.shape}")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(
            f"{name}: Box action spaces need finite bounds, got low={space.low}, high={space.high}"
        )
    return space


def check_num_bins(num_bins: int, *, name: str = "num_bins") -> int:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int | np.integer) or num_bins < 2:
        raise ValueError(f"{name} must be an int ≥ 2, got {num_bins!r}")
    return int(num_bins)


def make_action_codec(
    action_space: gym.Space,
    *,
    action_embeddings: np.ndarray | torch.Tensor | None = None,
    grid_bins: int | None = None,
) -> ActionCodec:
    """The codec for a gymnasium action space; anything unsupported gets an error naming what is.

    :param action_space: ``Box`` (flat, finite bounds), ``MultiDiscrete`` (flat) or ``Discrete``.
    :param action_embeddings: for ``Discrete(n)`` only: ``[n, e]`` item representations.
    :param grid_bins: for ``Box`` only: restrict actions to a K-point grid (see :class:`BoxCodec`).
    """
    if action_embeddings is not None and not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(
            f"action_embeddings are only used with Discrete action spaces, got {action_space!r}"
        )
    if grid_bins is not None and not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"grid_bins only applies to Box action spaces, got {action_space!r}")
    if isinstance(action_space, gym.spaces.Box):
        check_flat_bounded_box(action_space)
        return BoxCodec(act_dim=int(action_space.shape[0]), grid_bins=grid_bins)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        if action_space.nvec.ndim != 1:
            raise ValueError(
                f"MultiDiscrete action spaces must be flat, got nvec shape {action_space.nvec.shape}"
            )
        if np.any(action_space.start != 0):
            raise ValueError(f"MultiDiscrete action spaces must start at 0, got start={action_space.start}")
        return MultiDiscreteCodec(nvec=action_space.nvec)
    if isinstance(action_space, gym.spaces.Discrete):
        if action_space.start != 0:
            raise ValueError(f"Discrete action spaces must start at 0, got start={action_space.start}")
        return DiscreteCodec(n=int(action_space.n), embeddings=action_embeddings)
    raise TypeError(f"action_space {action_space!r} is not supported by QMLE; supported: {SUPPORTED_SPACES}")
