"""Networks for IQ (Vieillard et al., "Implicitly Regularized RL with Implicit Q-Values").

IQ never builds an action-in Q network: Q is *implicit*, ``Q(s, a) = τ ln π(a|s) + V(s)`` (Eq. 1).
It needs a policy network and a state-value network:

* :class:`MultiCategoricalActor`: the §4 policy. A shared MLP core and one linear head with
  ``d × n`` outputs, read as ``d`` independent softmax distributions over ``n`` values each,
  ``π(a|s) = Π_j softmax(F^j(s))(a^j)``. With ``d = 1`` and ``n = |A|`` it is the categorical policy
  of a ``Discrete(n)`` space.
* :class:`GaussianActor`: a diagonal Gaussian (mean and log-std heads), only for the §6 ablation
  (Fig. 2), where it makes the implicit advantage quadratic in the action.
* :class:`ValueNetwork`: V(s), the SAC Q-network architecture with a state-only input (§6).
* :class:`IQNetwork`: the pair (actor, value), which the policy and the algorithm share.

An actor's ``forward`` returns its distribution parameters as one tensor; the actor's other methods
(``log_prob``, ``sample``, ``mode``, ``entropy``) are pure functions of those parameters. That lets
the algorithm evaluate ln π̄ of the target copy (a Tianshou lagged network, which only exposes
``forward``) with the online actor's methods.

Every ln π goes through ``log_softmax`` (or the Gaussian's closed-form log-density); nothing takes
the log of a softmax.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN = -20.0
"""Lower clamp of the Gaussian ablation's log standard deviation (as Tianshou's SAC actor)."""
LOG_STD_MAX = 2.0
"""Upper clamp of the Gaussian ablation's log standard deviation."""

PolicyType = Literal["multicategorical", "gaussian"]
POLICY_TYPES: tuple[str, ...] = ("multicategorical", "gaussian")


def _check_positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return value


def _check_hidden_sizes(hidden_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(hidden_sizes)
    for size in sizes:
        _check_positive_int(size, "every entry of hidden_sizes")
    return sizes


def check_probability_floor(value: float) -> float:
    """ε of :class:`MultiCategoricalActor`: a real number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"probability_floor (ε, the uniform share of each dimension's policy) must be "
                         f"a number in [0, 1), got {value!r}")
    return float(value)


def mlp(in_dim: int, out_dim: int, hidden_sizes: Sequence[int] = (256, 256)) -> nn.Sequential:
    """Linear layers with ReLU between them; ``hidden_sizes=()`` gives a single linear map."""
    layers: list[nn.Module] = []
    width = in_dim
    for size in _check_hidden_sizes(hidden_sizes):
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class ValueNetwork(nn.Module):
    """V_φ(s): an MLP from the flat observation to one scalar per state.

    :param obs_dim: flat observation size.
    :param hidden_sizes: hidden layer widths ((256, 256) as SAC's Q networks, §6).
    """

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.obs_dim = _check_positive_int(obs_dim, "obs_dim")
        self.net = mlp(obs_dim, 1, hidden_sizes)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, obs_dim] → [B]``."""
        return self.net(obs).squeeze(-1)


class IQActor(nn.Module, ABC):
    """A policy network π_θ(·|s) whose distribution maths work on its own ``forward`` output.

    Actions are given to ``log_prob`` in the actor's *representation*: bin indices ``[B, d]``
    (long) for :class:`MultiCategoricalActor`, real vectors ``[B, d]`` for :class:`GaussianActor`.
    """

    obs_dim: int
    act_dim: int

    @abstractmethod
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The distribution parameters for a ``[B, obs_dim]`` batch of observations."""

    @abstractmethod
    def log_prob(self, params: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """ln π(a|s) for each row, ``[B]``."""

    @abstractmethod
    def sample(self, params: torch.Tensor) -> torch.Tensor:
        """One action per row, drawn from π(·|s) with torch's global generator."""

    @abstractmethod
    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The most likely action per row (per dimension for the multicategorical policy)."""

    @abstractmethod
    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        """The (differential, for the Gaussian) entropy of π(·|s), ``[B]``."""


class MultiCategoricalActor(IQActor):
    """The multicategorical policy of §4: ``d`` independent softmaxes over ``n`` values each.

    The F^j of the paper share an MLP core and differ only in their slice of the last layer's
    ``d × n`` outputs, which are the logits (no temperature scaling: π = softmax(F), as in §4).

    :param obs_dim: flat observation size.
    :param act_dim: number of action dimensions d (1 for a ``Discrete`` space).
    :param num_bins: values per dimension n (11 in §6; the number of actions for ``Discrete``);
        at least 2.
    :param hidden_sizes: hidden layer widths of the core ((256, 256) as SAC's policy, §6).
    :param probability_floor: ε in [0, 1): ours, not in the paper. Each dimension's policy becomes
        ``(1 − ε)·softmax(F^j) + ε/n``, so ln π_j ≥ ln(ε/n) for every bin, sampling explores each
        dimension uniformly with probability ε, and the implicit Q = τ ln π + V cannot push a
        replayed action below ``V − τ·d·ln(n/ε)``. 0 (the default) is the paper's softmax.
    :param sample_with_floor: whether acting samples the floored policy (True, the default) or the
        softmax alone (False: the floor then shapes only ln π in the loss, and the behaviour policy
        is the softmax, which separates the floor's exploration from its bound on ln π).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        num_bins: int = 11,
        hidden_sizes: Sequence[int] = (256, 256),
        probability_floor: float = 0.0,
        sample_with_floor: bool = True,
    ) -> None:
        super().__init__()
        self.obs_dim = _check_positive_int(obs_dim, "obs_dim")
        self.act_dim = _check_positive_int(act_dim, "act_dim")
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(
                f"num_bins (n, values per action dimension) must be an integer ≥ 2, got {num_bins!r}"
            )
        self.num_bins = num_bins
        self.probability_floor = check_probability_floor(probability_floor)
        if not isinstance(sample_with_floor, bool):
            raise TypeError(f"sample_with_floor must be a bool, got {sample_with_floor!r}")
        self.sample_with_floor = sample_with_floor
        self.net = mlp(obs_dim, act_dim * num_bins, hidden_sizes)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, d, n]``."""
        return self.net(obs).view(obs.shape[0], self.act_dim, self.num_bins)

    def log_policy(self, params: torch.Tensor) -> torch.Tensor:
        """ln π_j(·|s) for every dimension and bin, ``[B, d, n]``: ``log_softmax`` of the logits,
        mixed in log space with the uniform floor when ``probability_floor`` > 0."""
        log_p = F.log_softmax(params, dim=-1)
        eps = self.probability_floor
        if eps == 0.0:
            return log_p
        floor = torch.full_like(log_p, math.log(eps / self.num_bins))
        return torch.logaddexp(log_p + math.log1p(-eps), floor)

    def log_prob(self, params: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``Σ_j ln π_j(a^j|s)`` for bin indices ``act`` of shape ``[B, d]``."""
        index = act.long().view(params.shape[0], self.act_dim, 1)
        return self.log_policy(params).gather(-1, index).squeeze(-1).sum(-1)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        """Bin indices ``[B, d]``, one independent draw per dimension (from the softmax alone when
        ``sample_with_floor`` is False)."""
        floored = self.sample_with_floor and self.probability_floor > 0.0
        probs = self.log_policy(params).exp() if floored else F.softmax(params, dim=-1)
        probs = probs.reshape(-1, self.num_bins)
        return torch.multinomial(probs, 1).view(params.shape[:-1])

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The most likely bin of each dimension, ``[B, d]``."""
        return params.argmax(dim=-1)

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        log_p = self.log_policy(params)
        return -(log_p.exp() * log_p).sum(dim=(-2, -1))


class GaussianActor(IQActor):
    """A diagonal Gaussian policy N(μ(s), diag σ(s)²) for the §6 ablation (Fig. 2).

    The density is over the unbounded action; the policy clips samples into [-1, 1] only when
    mapping them to the environment (``map_action``), so the buffer stores the sample itself and
    ln π is exact. With this policy the implicit advantage τ ln π is a quadratic function of the
    action, the NAF-like parametrisation that §4 argues is too poor for IQ.

    :param obs_dim: flat observation size.
    :param act_dim: number of action dimensions d.
    :param hidden_sizes: hidden layer widths of the shared core.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.obs_dim = _check_positive_int(obs_dim, "obs_dim")
        self.act_dim = _check_positive_int(act_dim, "act_dim")
        self.net = mlp(obs_dim, 2 * act_dim, hidden_sizes)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, 2, d]``: the mean in row 0 and the clamped log standard deviation in row 1."""
        out = self.net(obs).view(obs.shape[0], 2, self.act_dim)
        mean, log_std = out[:, 0], out[:, 1].clamp(LOG_STD_MIN, LOG_STD_MAX)
        return torch.stack([mean, log_std], dim=1)

    def log_prob(self, params: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        mean, log_std = params[:, 0], params[:, 1]
        z = (act.to(mean) - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        mean, log_std = params[:, 0], params[:, 1]
        return mean + log_std.exp() * torch.randn_like(mean)

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        return params[:, 0]

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        return (params[:, 1] + 0.5 * math.log(2.0 * math.pi * math.e)).sum(-1)


class IQNetwork(nn.Module):
    """The policy network π_θ and the value network V_φ of IQ, trained by one loss (Eq. 2).

    :param actor: the policy network (:class:`MultiCategoricalActor` or :class:`GaussianActor`).
    :param value: the state-value network.
    """

    def __init__(self, actor: IQActor, value: ValueNetwork) -> None:
        super().__init__()
        if not isinstance(actor, IQActor):
            raise TypeError(f"actor must be an IQActor, got {type(actor).__name__}")
        if not isinstance(value, nn.Module):
            raise TypeError(f"value must be a torch.nn.Module, got {type(value).__name__}")
        obs_dim = getattr(value, "obs_dim", actor.obs_dim)
        if obs_dim != actor.obs_dim:
            raise ValueError(f"actor.obs_dim ({actor.obs_dim}) and value.obs_dim ({obs_dim}) differ")
        self.actor = actor
        self.value = value

    @property
    def obs_dim(self) -> int:
        return self.actor.obs_dim

    @property
    def act_dim(self) -> int:
        return self.actor.act_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


def build_iq_network(
    *,
    obs_dim: int,
    act_dim: int,
    num_bins: int = 11,
    hidden_sizes: Sequence[int] = (256, 256),
    policy_type: PolicyType = "multicategorical",
    probability_floor: float = 0.0,
    sample_with_floor: bool = True,
    device: str | torch.device = "cpu",
) -> IQNetwork:
    """The IQ networks of §6: policy and value MLPs of the same widths.

    :param obs_dim: flat observation size.
    :param act_dim: action dimensions d (1 for ``Discrete(n)``).
    :param num_bins: n, values per dimension of the multicategorical policy (11 in §6); for a
        ``Discrete(n)`` space pass n. Ignored by the Gaussian policy.
    :param hidden_sizes: hidden widths of both networks ((256, 256) in §6, as SAC).
    :param policy_type: "multicategorical" (§4, the paper's IQ) or "gaussian" (the §6 ablation).
    :param probability_floor: ε of :class:`MultiCategoricalActor` (ours; 0, the default, is the
        paper's softmax). The Gaussian policy accepts only 0.
    :param sample_with_floor: see :class:`MultiCategoricalActor` (True: act with the floored policy).
    :param device: where the parameters live.
    """
    if policy_type not in POLICY_TYPES:
        raise ValueError(f"policy_type must be one of {POLICY_TYPES}, got {policy_type!r}")
    check_probability_floor(probability_floor)
    actor: IQActor
    if policy_type == "multicategorical":
        actor = MultiCategoricalActor(obs_dim, act_dim, num_bins, hidden_sizes, probability_floor,
                                      sample_with_floor)
    elif probability_floor != 0.0:
        raise ValueError(f"probability_floor applies to the multicategorical policy only; "
                         f"policy_type={policy_type!r} accepts 0, got {probability_floor!r}")
    else:
        actor = GaussianActor(obs_dim, act_dim, hidden_sizes)
    return IQNetwork(actor, ValueNetwork(obs_dim, hidden_sizes)).to(device)


__all__ = [
    "GaussianActor",
    "IQActor",
    "IQNetwork",
    "MultiCategoricalActor",
    "ValueNetwork",
    "build_iq_network",
    "check_probability_floor",
    "mlp",
]
