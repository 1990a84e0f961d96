"""Parametric arg max predictors f_θ(·|s) trained by maximum likelihood (QMLE §4, App. B.1).

A predictor maps the (detached) observation features of the shared stream to the parameters of a
distribution over actions. It can sample candidates from that distribution and score a target
arg max by its negative log-likelihood. Actions are in QMLE's internal form (see
:mod:`tianshou_qmle.net.action_codec`); every method takes the network's codec, and ``codec=None``
means the continuous box [-1, 1]^d. New families subclass :class:`ArgmaxPredictor`; the ensemble
in :class:`~tianshou_qmle.net.qmle_net.QMLENetwork` is a plain list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from tianshou_qmle.net.action_codec import ActionCodec, DiscreteCodec, MultiDiscreteCodec


class ArgmaxPredictor(nn.Module, ABC):
    """Base class of an arg max predictor over the normalised action box.

    :param feature_dim: width of the observation features it reads (128 in App. B.1).
    :param act_dim: the action dimension d.
    :param hidden_dim: width of its hidden ReLU layer (128 in App. B.1).
    """

    def __init__(self, *, feature_dim: int, act_dim: int, hidden_dim: int = 128) -> None:
        super().__init__()
        if act_dim < 1:
            raise ValueError(f"act_dim must be ≥ 1, got {act_dim}")
        self.feature_dim = feature_dim
        self.act_dim = act_dim
        self.hidden = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.ReLU())

    @abstractmethod
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Distribution parameters for each state, from features of shape ``[batch, f]``."""

    @abstractmethod
    def sample(self, params: torch.Tensor, n: int, codec: ActionCodec | None = None) -> torch.Tensor:
        """Draw ``n`` candidates per state, shape ``[batch, n, d]``, each state with its own noise."""

    @abstractmethod
    def negative_log_likelihood(
        self, params: torch.Tensor, actions: torch.Tensor, codec: ActionCodec | None = None
    ) -> torch.Tensor:
        """Per-state negative log-likelihood of target actions ``[batch, d]``, shape ``[batch]``."""

    @abstractmethod
    def mode(self, params: torch.Tensor, codec: ActionCodec | None = None) -> torch.Tensor:
        """The most likely action per state, shape ``[batch, d]``."""

    def check_codec(self, codec: ActionCodec) -> None:
        """Raise if this predictor cannot propose actions of ``codec``'s space."""


class DeltaPredictor(ArgmaxPredictor):
    """Delta distribution at a tanh-bounded point μ_θ(s) (ρ1 in Table 1).

    Sampling follows App. B: the first sample is μ itself, further samples are μ + N(0, σ²) clipped
    to the box. Its maximum-likelihood fit is a regression of μ onto the arg max: the delta is the
    σ → 0 limit of a Gaussian, whose log-likelihood is −‖a − μ‖² / (2σ²) up to a constant, so we
    minimise ½‖a − μ‖² (σ = 1 fixes the scale; Adam is invariant to it).

    μ lives in the critic's action-representation space. For finite spaces each sample is snapped
    to the nearest valid action (nearest bin per dimension; nearest item embedding for
    ``Discrete``), so the delta also serves discrete sets, and its regression target is the
    representation of the arg max. Set ``act_dim`` to the representation width and ``bound`` to the
    largest representation coordinate (1 for boxes and bins; the embeddings' largest magnitude).

    :param perturbation_std: σ of the Gaussian perturbations for samples after the first. App. B
        says "a small standard deviation"; 0.05 of the half-width of the box is our default, and
        §5.1's local sampling uses 0.001.
    """

    def __init__(
        self,
        *,
        feature_dim: int,
        act_dim: int,
        hidden_dim: int = 128,
        perturbation_std: float = 0.05,
        bound: float = 1.0,
    ) -> None:
        super().__init__(feature_dim=feature_dim, act_dim=act_dim, hidden_dim=hidden_dim)
        if not perturbation_std >= 0.0:
            raise ValueError(f"perturbation_std must be ≥ 0, got {perturbation_std}")
        if not bound > 0.0:
            raise ValueError(f"bound must be > 0, got {bound}")
        self.perturbation_std = float(perturbation_std)
        self.bound = float(bound)
        self.out = nn.Linear(hidden_dim, act_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.bound * torch.tanh(self.out(self.hidden(features)))

    def check_codec(self, codec: ActionCodec) -> None:
        if codec.representation_dim != self.act_dim:
            raise ValueError(
                f"DeltaPredictor has act_dim={self.act_dim} but the action representation is "
                f"{codec.representation_dim} wide"
            )

    def sample(self, params: torch.Tensor, n: int, codec: ActionCodec | None = None) -> torch.Tensor:
        mean = params.unsqueeze(1)
        if n > 1:
            noise = torch.randn(
                params.shape[0], n - 1, params.shape[1], device=params.device, dtype=params.dtype
            )
            perturbed = (mean + self.perturbation_std * noise).clamp_(-self.bound, self.bound)
            mean = torch.cat([mean, perturbed], dim=1)
        return mean if codec is None else codec.snap(mean)

    def negative_log_likelihood(
        self, params: torch.Tensor, actions: torch.Tensor, codec: ActionCodec | None = None
    ) -> torch.Tensor:
        target = actions if codec is None else codec.represent(actions)
        return 0.5 * (params - target).pow(2).sum(dim=-1)

    def mode(self, params: torch.Tensor, codec: ActionCodec | None = None) -> torch.Tensor:
        return params if codec is None else codec.snap(params)


class FactoredCategoricalPredictor(ArgmaxPredictor):
    """Independent categorical distributions over ``num_bins`` evenly spaced values per dimension.

    With the default ``num_bins=3`` the support is bang-off-bang {−1, 0, 1} (ρ2 in Table 1,
    Seyde et al. 2021). ``forward`` returns logits of shape ``[batch, d, K]``; the likelihood of a
    continuous arg max is that of its nearest bin, trained with cross-entropy on the logits.

    For a ``MultiDiscrete`` space the bins are the space's own (dimension j has ``nvec[j]`` bins;
    ``num_bins`` must equal the largest, and logits of bins a dimension lacks are masked out).
    On a gridded ``Box`` (curriculum) samples are snapped to the grid.

    :param num_bins: K, the number of bins per action dimension, ≥ 2.
    """

    bin_values: torch.Tensor  # registered buffer

    def __init__(
        self, *, feature_dim: int, act_dim: int, hidden_dim: int = 128, num_bins: int = 3
    ) -> None:
        super().__init__(feature_dim=feature_dim, act_dim=act_dim, hidden_dim=hidden_dim)
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an int ≥ 2, got {num_bins!r}")
        self.num_bins = num_bins
        self.out = nn.Linear(hidden_dim, act_dim * num_bins)
        self.register_buffer("bin_values", torch.linspace(-1.0, 1.0, num_bins))

    def check_codec(self, codec: ActionCodec) -> None:
        if isinstance(codec, DiscreteCodec):
            raise ValueError(
                "FactoredCategoricalPredictor cannot propose Discrete items; use ItemCategoricalPredictor"
            )
        if codec.action_dim != self.act_dim:
            raise ValueError(
                f"FactoredCategoricalPredictor has act_dim={self.act_dim}, the space has {codec.action_dim}"
            )
        if isinstance(codec, MultiDiscreteCodec) and codec.max_bins != self.num_bins:
            raise ValueError(
                f"FactoredCategoricalPredictor has num_bins={self.num_bins} but the MultiDiscrete space has "
                f"up to {codec.max_bins} bins per dimension; they must match"
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(features)).view(-1, self.act_dim, self.num_bins)

    @staticmethod
    def _masked(params: torch.Tensor, codec: ActionCodec | None) -> torch.Tensor:
        if not isinstance(codec, MultiDiscreteCodec):
            return params
        missing = torch.arange(params.shape[-1], device=params.device) >= codec.nvec.unsqueeze(1)
        return params.masked_fill(missing, float("-inf"))

    def _values(self, bins: torch.Tensor, codec: ActionCodec | None) -> torch.Tensor:
        """Coordinates of bin indices ``[..., d]``."""
        if isinstance(codec, MultiDiscreteCodec):
            return codec.indices_to_coordinates(bins)
        values = self.bin_values[bins]
        return values if codec is None else codec.snap(values)

    def sample(self, params: torch.Tensor, n: int, codec: ActionCodec | None = None) -> torch.Tensor:
        batch_size = params.shape[0]
        probs = torch.softmax(self._masked(params, codec).reshape(-1, self.num_bins), dim=-1)
        bins = torch.multinomial(probs, n, replacement=True)  # [batch·d, n]
        bins = bins.view(batch_size, self.act_dim, n).transpose(1, 2)
        return self._values(bins, codec)

    def nearest_bin(self, actions: torch.Tensor) -> torch.Tensor:
        """Index of the bin closest to each coordinate of ``actions``."""
        scaled = (actions.clamp(-1.0, 1.0) + 1.0) * (0.5 * (self.num_bins - 1))
        return scaled.round().long()

    def negative_log_likelihood(
        self, params: torch.Tensor, actions: torch.Tensor, codec: ActionCodec | None = None
    ) -> torch.Tensor:
        if isinstance(codec, MultiDiscreteCodec):
            targets = codec.coordinates_to_indices(actions)
        else:
            targets = self.nearest_bin(actions)
        per_dim = F.cross_entropy(
            self._masked(params, codec).reshape(-1, self.num_bins), targets.reshape(-1), reduction="none"
        )
        return per_dim.view(-1, self.act_dim).sum(dim=-1)

    def mode(self, params: torch.Tensor, codec: ActionCodec | None = None) -> torch.Tensor:
        return self._values(self._masked(params, codec).argmax(dim=-1), codec)


class ItemCategoricalPredictor(ArgmaxPredictor):
    """A categorical distribution over the n items of a ``Discrete(n)`` space.

    One logit per item from a ``hidden_dim → n`` layer: cheap next to scoring candidates even for
    n = 10,000 (about 1.3 M weights), and it can put mass on any item, unlike a delta in embedding
    space, which proposes items near one point. Samples are item indices of shape ``[batch, n, 1]``.

    :param num_items: n.
    """

    def __init__(self, *, feature_dim: int, num_items: int, hidden_dim: int = 128) -> None:
        super().__init__(feature_dim=feature_dim, act_dim=1, hidden_dim=hidden_dim)
        if num_items < 2:
            raise ValueError(f"num_items must be ≥ 2, got {num_items}")
        self.num_items = num_items
        self.out = nn.Linear(hidden_dim, num_items)

    def check_codec(self, codec: ActionCodec) -> None:
        if not isinstance(codec, DiscreteCodec) or codec.n != self.num_items:
            raise ValueError(
                f"ItemCategoricalPredictor over {self.num_items} items needs a Discrete({self.num_items}) "
                f"action space, got codec {type(codec).__name__}"
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(features))

    def sample(self, params: torch.Tensor, n: int, codec: ActionCodec | None = None) -> torch.Tensor:
        items = torch.multinomial(torch.softmax(params, dim=-1), n, replacement=True)
        return items.unsqueeze(-1).to(params.dtype)

    def negative_log_likelihood(
        self, params: torch.Tensor, actions: torch.Tensor, codec: ActionCodec | None = None
    ) -> torch.Tensor:
        return F.cross_entropy(params, actions.reshape(-1).long(), reduction="none")

    def mode(self, params: torch.Tensor, codec: ActionCodec | None = None) -> torch.Tensor:
        return params.argmax(dim=-1, keepdim=True).to(params.dtype)
