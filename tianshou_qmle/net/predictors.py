"""Parametric arg max predictors f_θ(·|s) trained by maximum likelihood (QMLE §4, App. B.1).

A predictor maps the (detached) observation features of the shared stream to the parameters of a
distribution over the normalised action box [-1, 1]^d. It can sample candidates from that
distribution and score a target arg max by its negative log-likelihood. New families subclass
:class:`ArgmaxPredictor`; the ensemble in :class:`~tianshou_qmle.net.qmle_net.QMLENetwork` is a plain list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import nn


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
    def sample(self, params: torch.Tensor, n: int) -> torch.Tensor:
        """Draw ``n`` candidates per state, shape ``[batch, n, d]``, each state with its own noise."""

    @abstractmethod
    def negative_log_likelihood(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Per-state negative log-likelihood of target actions ``[batch, d]``, shape ``[batch]``."""

    @abstractmethod
    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The most likely action per state, shape ``[batch, d]``."""


class DeltaPredictor(ArgmaxPredictor):
    """Delta distribution at a tanh-bounded point μ_θ(s) (ρ1 in Table 1).

    Sampling follows App. B: the first sample is μ itself, further samples are μ + N(0, σ²) clipped
    to the box. Its maximum-likelihood fit is a regression of μ onto the arg max: the delta is the
    σ → 0 limit of a Gaussian, whose log-likelihood is −‖a − μ‖² / (2σ²) up to a constant, so we
    minimise ½‖a − μ‖² (σ = 1 fixes the scale; Adam is invariant to it).

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
    ) -> None:
        super().__init__(feature_dim=feature_dim, act_dim=act_dim, hidden_dim=hidden_dim)
        if not perturbation_std >= 0.0:
            raise ValueError(f"perturbation_std must be ≥ 0, got {perturbation_std}")
        self.perturbation_std = float(perturbation_std)
        self.out = nn.Linear(hidden_dim, act_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(self.hidden(features)))

    def sample(self, params: torch.Tensor, n: int) -> torch.Tensor:
        mean = params.unsqueeze(1)
        if n == 1:
            return mean
        noise = torch.randn(
            params.shape[0], n - 1, params.shape[1], device=params.device, dtype=params.dtype
        )
        perturbed = (mean + self.perturbation_std * noise).clamp_(-1.0, 1.0)
        return torch.cat([mean, perturbed], dim=1)

    def negative_log_likelihood(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return 0.5 * (params - actions).pow(2).sum(dim=-1)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return params


class FactoredCategoricalPredictor(ArgmaxPredictor):
    """Independent categorical distributions over ``num_bins`` evenly spaced values per dimension.

    With the default ``num_bins=3`` the support is bang-off-bang {−1, 0, 1} (ρ2 in Table 1,
    Seyde et al. 2021). ``forward`` returns logits of shape ``[batch, d, K]``; the likelihood of a
    continuous arg max is that of its nearest bin, trained with cross-entropy on the logits.

    :param num_bins: K, the number of bins per action dimension, ≥ 2.
    """

    def __init__(
        self, *, feature_dim: int, act_dim: int, hidden_dim: int = 128, num_bins: int = 3
    ) -> None:
        super().__init__(feature_dim=feature_dim, act_dim=act_dim, hidden_dim=hidden_dim)
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an int ≥ 2, got {num_bins!r}")
        self.num_bins = num_bins
        self.out = nn.Linear(hidden_dim, act_dim * num_bins)
        self.register_buffer("bin_values", torch.linspace(-1.0, 1.0, num_bins))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(features)).view(-1, self.act_dim, self.num_bins)

    def sample(self, params: torch.Tensor, n: int) -> torch.Tensor:
        batch_size = params.shape[0]
        probs = torch.softmax(params.reshape(-1, self.num_bins), dim=-1)
        bins = torch.multinomial(probs, n, replacement=True)  # [batch·d, n]
        bins = bins.view(batch_size, self.act_dim, n).transpose(1, 2)
        return self.bin_values[bins]

    def nearest_bin(self, actions: torch.Tensor) -> torch.Tensor:
        """Index of the bin closest to each coordinate of ``actions``."""
        scaled = (actions.clamp(-1.0, 1.0) + 1.0) * (0.5 * (self.num_bins - 1))
        return scaled.round().long()

    def negative_log_likelihood(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        targets = self.nearest_bin(actions)
        per_dim = F.cross_entropy(
            params.reshape(-1, self.num_bins), targets.reshape(-1), reduction="none"
        )
        return per_dim.view(-1, self.act_dim).sum(dim=-1)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return self.bin_values[params.argmax(dim=-1)]
