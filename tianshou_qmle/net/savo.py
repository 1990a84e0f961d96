"""Networks of SAVO ("Mitigating Suboptimality of Deterministic Policy Gradients in Complex Q-functions").

* :class:`SAVOActor`: the base actor μ (Tianshou's deterministic actor) followed by k successive
  actors ν₁…ν_k, each conditioned on the earlier proposals a₍<ᵢ₎ through a list summary and FiLM
  (Fig. 4, §4.2.3, App. 13.1). ``forward(obs)`` returns all k+1 proposals ``[B, k+1, d]`` in [-1, 1].
* :class:`SurrogateCritics`: the approximate surrogates Ψ̂₁…Ψ̂_k of Eq. 8 (App. 13.2), conditioned the
  same way.
* List summarisers (App. 13.3): :class:`DeepSetSummariser` (default), :class:`LSTMSummariser`
  (bidirectional) and :class:`TransformerSummariser`, chosen by name with :func:`make_summariser`.
* Critics Q, Q₂ and the Q-smoothing critic (§14.6) are Tianshou's ``ContinuousCritic`` over an
  action-in ``Net`` (:func:`build_critic`); :func:`critic_values` scores ``[B, m, d]`` actions in one
  pass.

The k successive actors (and the k surrogates) are stored as *stacked* layers, one weight tensor
``[k, in, out]`` per layer, so training evaluates all of them in one batched matmul; acting runs
them one after another, as it must, because νᵢ needs a₍<ᵢ₎.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from tianshou.utils.net.common import Net
from tianshou.utils.net.continuous import ContinuousActorDeterministic, ContinuousCritic
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

SUMMARISERS = ("deepset", "deepset-state-max", "lstm", "transformer")
"""Accepted ``summariser`` names (App. 13.3; Fig. 20 finds all three valid, DeepSet is the default).
``deepset-state-max`` is the DeepSet of the authors' released code: over ``concat(s, aⱼ)``, max-pooled
(with a 16-wide summary there)."""


def as_observation_tensor(obs: Any, device: torch.device | str) -> torch.Tensor:
    """Observations as a float32 ``[B, obs_dim]`` tensor on ``device`` (flattened after the batch dim)."""
    if isinstance(obs, torch.Tensor):
        obs_t = obs.to(device=device, dtype=torch.float32)
    else:
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device)
    return obs_t.reshape(obs_t.shape[0], -1)


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def reinitialise(module: nn.Module) -> nn.Module:
    """Draw fresh parameters for every layer of ``module`` that can (in place); returns ``module``."""
    for layer in module.modules():
        if layer is not module and hasattr(layer, "reset_parameters"):
            layer.reset_parameters()  # type: ignore[operator]  # torch types unknown attributes as Tensor | Module
    return module


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int ≥ {minimum}, got {value!r}")
    return int(value)


def check_hidden_sizes(name: str, sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(sizes)
    if len(sizes) == 0 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {sizes!r}")
    return sizes


# --- stacked layers and FiLM ---------------------------------------------------------------------


class StackedLinear(nn.Module):
    """``members`` independent linear maps held as one ``[members, in, out]`` weight.

    ``forward`` applies member ``m`` to slice ``m`` of a ``[members, N, in]`` input in one batched
    matmul; :meth:`member` applies a single member to ``[N, in]``. Initialised like ``nn.Linear``
    (uniform in ±1/√in), member by member.
    """

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def member(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias[index], x, self.weight[index])


class StackedFiLM(nn.Module):
    """Feature-wise linear modulation per member (Perez et al. 2018; SAVO App. 13.4).

    ``h ← (1 + γ(z)) ⊙ h + β(z)`` with ``[γ, β]`` a linear function of the condition ``z``; the
    ``1 +`` keeps an untrained modulation close to the identity.
    """

    def __init__(self, members: int, cond_dim: int, width: int) -> None:
        super().__init__()
        self.proj = StackedLinear(members, cond_dim, 2 * width)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``h`` ``[members, N, w]`` with ``z`` ``[members, N, c]``, or ``h`` ``[members, N, m, w]``
        with ``z`` ``[members, N, c]``: one modulation per row, shared by its m entries."""
        gamma, beta = self.proj(z).chunk(2, dim=-1)
        if h.dim() == 4:
            gamma, beta = gamma.unsqueeze(2), beta.unsqueeze(2)
        return h * (1.0 + gamma) + beta

    def member(self, index: int, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj.member(index, z).chunk(2, dim=-1)
        return h * (1.0 + gamma) + beta


class ConditionedMLP(nn.Module):
    """``members`` ReLU MLPs ``in → hidden… → out``; every hidden layer FiLM-modulated by a condition.

    :param members: number of independent MLPs.
    :param in_dim: input width.
    :param hidden_sizes: hidden widths.
    :param out_dim: output width (no output activation).
    :param cond_dim: width of the condition ``z``; None builds plain MLPs that take no condition.
    """

    def __init__(
        self,
        *,
        members: int,
        in_dim: int,
        hidden_sizes: Sequence[int],
        out_dim: int,
        cond_dim: int | None,
    ) -> None:
        super().__init__()
        widths = [in_dim, *hidden_sizes]
        self.hidden = nn.ModuleList(
            StackedLinear(members, w_in, w_out) for w_in, w_out in itertools.pairwise(widths)
        )
        self.films = (
            nn.ModuleList(StackedFiLM(members, cond_dim, w) for w in hidden_sizes)
            if cond_dim is not None
            else None
        )
        self.out = StackedLinear(members, widths[-1], out_dim)

    @property
    def conditioned(self) -> bool:
        return self.films is not None

    def forward(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """``[members, N, in]`` (and ``[members, N, cond]``) → ``[members, N, out]``.

        ``x`` may also be ``[members, N, m, in]`` with ``z`` ``[members, N, cond]`` (→ ``[members, N,
        m, out]``): m inputs per condition, e.g. several actions scored under one anchor list, whose
        FiLM parameters are then computed once per row instead of m times.
        """
        grouped = x.dim() == 4
        members, rows = x.shape[0], x.shape[1]
        if grouped:
            x = x.reshape(members, -1, x.shape[-1])
        for i, layer in enumerate(self.hidden):
            x = torch.relu(layer(x))
            if self.films is not None:
                if grouped:
                    x = self.films[i](x.view(members, rows, -1, x.shape[-1]), z).flatten(1, 2)
                else:
                    x = self.films[i](x, z)
        out = self.out(x)
        return out.view(members, rows, -1, out.shape[-1]) if grouped else out

    def member(self, index: int, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Member ``index`` alone: ``[N, in]`` (and ``[N, cond]``) → ``[N, out]``."""
        for i, layer in enumerate(self.hidden):
            x = torch.relu(cast(StackedLinear, layer).member(index, x))
            if self.films is not None:
                x = cast(StackedFiLM, self.films[i]).member(index, x, cast(torch.Tensor, z))
        return self.out.member(index, x)


# --- list summarisers (App. 13.3) ----------------------------------------------------------------


def two_layer_mlp(in_dim: int, hidden: int, out_dim: int, *, final_relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)]
    if final_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ListSummariser(nn.Module, ABC):
    """Summarises a list of earlier proposals a₍<ᵢ₎ ``[B, n, d]`` into a vector ``[B, summary_dim]``.

    :param act_dim: d, the size of one proposal.
    :param hidden: width of the per-action encoder and of the pooled representation.
    :param summary_dim: size of the summary fed to FiLM.
    """

    def __init__(self, *, act_dim: int, hidden: int, summary_dim: int) -> None:
        super().__init__()
        self.act_dim, self.hidden, self.summary_dim = act_dim, hidden, summary_dim
        # the 2-layer ReLU MLP every App. 13.3 summariser applies to each raw action first
        self.encode = two_layer_mlp(act_dim, hidden, hidden, final_relu=True)

    @abstractmethod
    def summarise(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        """The summary of the whole list: ``[B, n, d]`` (and the states ``[B, o]``, for summarisers
        that read them) → ``[B, summary_dim]``."""

    @abstractmethod
    def prefix_summaries(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        """Summaries of every prefix: ``[B, n, d]`` → ``[B, n, summary_dim]``; row ``i`` summarises
        ``actions[:, : i + 1]`` and equals ``summarise(actions[:, : i + 1], obs)``."""


class DeepSetSummariser(ListSummariser):
    """DeepSet (Zaheer et al. 2017): encode each action, mean-pool, then a 2-layer ReLU MLP.

    Permutation invariant. All prefix summaries come from one cumulative sum.
    """

    def __init__(self, *, act_dim: int, hidden: int, summary_dim: int) -> None:
        super().__init__(act_dim=act_dim, hidden=hidden, summary_dim=summary_dim)
        self.readout = two_layer_mlp(hidden, hidden, summary_dim, final_relu=False)

    def summarise(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        return self.readout(self.encode(actions).mean(dim=1))

    def prefix_summaries(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        encoded = self.encode(actions)
        counts = torch.arange(1, actions.shape[1] + 1, device=actions.device, dtype=encoded.dtype)
        return self.readout(encoded.cumsum(dim=1) / counts.view(1, -1, 1))


class StateActionDeepSetSummariser(ListSummariser):
    """The DeepSet of the SAVO authors' code: encode ``concat(s, aⱼ)`` for each earlier proposal,
    max-pool, then a 2-layer ReLU MLP. Permutation invariant; prefixes come from one cumulative max.

    :param obs_dim: size of the state ``s`` concatenated to each proposal.
    """

    def __init__(self, *, act_dim: int, hidden: int, summary_dim: int, obs_dim: int) -> None:
        super().__init__(act_dim=act_dim, hidden=hidden, summary_dim=summary_dim)
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.encode = two_layer_mlp(obs_dim + act_dim, hidden, hidden, final_relu=True)
        self.readout = two_layer_mlp(hidden, hidden, summary_dim, final_relu=False)

    def _encoded(self, actions: torch.Tensor, obs: torch.Tensor | None) -> torch.Tensor:
        if obs is None:
            raise ValueError("the deepset-state-max summariser reads the states: pass obs")
        b, n, _ = actions.shape
        return self.encode(torch.cat([obs.unsqueeze(1).expand(b, n, obs.shape[-1]), actions], dim=-1))

    def summarise(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        return self.readout(self._encoded(actions, obs).max(dim=1).values)

    def prefix_summaries(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        return self.readout(torch.cummax(self._encoded(actions, obs), dim=1).values)


def expanded_prefixes(encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All prefixes of ``[B, n, h]`` as ``[B·n, n, h]`` padded sequences, with their lengths ``[B·n]``."""
    b, n, h = encoded.shape
    sequences = encoded.unsqueeze(1).expand(b, n, n, h).reshape(b * n, n, h)
    lengths = torch.arange(1, n + 1, device=encoded.device).repeat(b)
    return sequences, lengths


class LSTMSummariser(ListSummariser):
    """Bi-LSTM (2 layers) over the encoded list; its final states in both directions → 2-layer MLP.

    Order-sensitive by construction; all prefixes run as one packed batch.
    """

    def __init__(self, *, act_dim: int, hidden: int, summary_dim: int) -> None:
        super().__init__(act_dim=act_dim, hidden=hidden, summary_dim=summary_dim)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.readout = two_layer_mlp(2 * hidden, hidden, summary_dim, final_relu=False)

    def _final_states(self, sequences: torch.Tensor | nn.utils.rnn.PackedSequence) -> torch.Tensor:
        _, (h_n, _) = self.lstm(sequences)
        return torch.cat([h_n[-2], h_n[-1]], dim=-1)  # last layer, forward and backward

    def summarise(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        return self.readout(self._final_states(self.encode(actions)))

    def prefix_summaries(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = actions.shape
        sequences, lengths = expanded_prefixes(self.encode(actions))
        packed = pack_padded_sequence(sequences, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return self.readout(self._final_states(packed)).view(b, n, self.summary_dim)


class TransformerSummariser(ListSummariser):
    """One self-attention + feed-forward block (no positions, so permutation invariant), masked mean
    pooling, then a 2-layer MLP. All prefixes run as one padded batch."""

    def __init__(self, *, act_dim: int, hidden: int, summary_dim: int, num_heads: int = 4) -> None:
        super().__init__(act_dim=act_dim, hidden=hidden, summary_dim=summary_dim)
        heads = num_heads if hidden % num_heads == 0 else 1
        self.block = nn.TransformerEncoderLayer(
            d_model=hidden, nhead=heads, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True
        )
        self.readout = two_layer_mlp(hidden, hidden, summary_dim, final_relu=False)

    def summarise(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        return self.readout(self.block(self.encode(actions)).mean(dim=1))

    def prefix_summaries(self, actions: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = actions.shape
        sequences, lengths = expanded_prefixes(self.encode(actions))
        valid = torch.arange(n, device=actions.device).unsqueeze(0) < lengths.unsqueeze(1)  # [B·n, n]
        attended = self.block(sequences, src_key_padding_mask=~valid)
        weights = valid.to(attended.dtype).unsqueeze(-1)
        pooled = (attended * weights).sum(dim=1) / weights.sum(dim=1)
        return self.readout(pooled).view(b, n, self.summary_dim)


def make_summariser(
    kind: str, *, act_dim: int, hidden: int = 64, summary_dim: int = 32, obs_dim: int | None = None
) -> ListSummariser:
    """A list summariser by name: ``"deepset"`` (default in SAVO), ``"deepset-state-max"`` (the
    authors' code; needs ``obs_dim``), ``"lstm"`` or ``"transformer"``."""
    if kind == "deepset-state-max":
        if obs_dim is None:
            raise ValueError("the deepset-state-max summariser needs obs_dim")
        return StateActionDeepSetSummariser(act_dim=act_dim, hidden=hidden, summary_dim=summary_dim,
                                            obs_dim=obs_dim)
    classes = {"deepset": DeepSetSummariser, "lstm": LSTMSummariser, "transformer": TransformerSummariser}
    if kind not in classes:
        raise ValueError(f"summariser must be one of {', '.join(SUMMARISERS)}, got {kind!r}")
    return classes[kind](act_dim=act_dim, hidden=hidden, summary_dim=summary_dim)


# --- actors ---------------------------------------------------------------------------------------


class SAVOActor(nn.Module):
    """The base actor μ and k successive actors ν₁…ν_k (SAVO Fig. 4, §4.2.3, App. 13.1).

    ``forward(obs)`` runs the chain a₀ = μ(s), aᵢ = νᵢ(s; a₍<ᵢ₎) and returns the k+1 proposals
    ``[B, k+1, d]``, every one in [-1, 1] (tanh outputs). νᵢ is a ReLU MLP over the observation whose
    hidden layers are FiLM-modulated by a list summary of a₍<ᵢ₎; one summariser serves all νᵢ
    (Table 3's single "list encoder"), each νᵢ has its own MLP and FiLM weights.

    :param obs_dim: flat observation size.
    :param act_dim: d, the actors' output size (the action dimension for ``Box`` spaces, the
        embedding dimension for large discrete ones).
    :param num_successive: k ≥ 0, the successive actors besides μ (3 in the paper's main results;
        Fig. 11 and 26 go up to 10-15). 0 leaves μ alone: a single TD3 actor.
    :param hidden_sizes: hidden widths of μ and of every νᵢ (Table 3: 256-256 for MuJoCo,
        64-32-32-16 for RecSim).
    :param summariser: ``"deepset"`` (default), ``"lstm"`` or ``"transformer"``.
    :param summariser_hidden: width inside the summariser.
    :param summary_dim: size of the summary fed to FiLM.
    :param condition_on_previous: False drops the summary and FiLM (the "SAVO − Previous Actions"
        ablation, §6.1): every νᵢ then sees the observation only.
    :param device: where the parameters live.
    """

    def __init__(
        self,
        *,
        obs_dim: int,
        act_dim: int,
        num_successive: int = 3,
        hidden_sizes: Sequence[int] = (256, 256),
        summariser: str = "deepset",
        summariser_hidden: int = 64,
        summary_dim: int = 32,
        condition_on_previous: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        if isinstance(num_successive, bool) or not isinstance(num_successive, int) or num_successive < 0:
            raise ValueError(
                f"num_successive (k) must be an int ≥ 0 (0 = a single TD3 actor), got {num_successive!r}"
            )
        if summariser not in SUMMARISERS:
            raise ValueError(f"summariser must be one of {', '.join(SUMMARISERS)}, got {summariser!r}")
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.act_dim = check_positive_int("act_dim", act_dim)
        self.hidden_sizes = check_hidden_sizes("hidden_sizes", hidden_sizes)
        self.num_successive = num_successive
        self.summariser_kind = summariser
        self.condition_on_previous = bool(condition_on_previous)
        self.base = ContinuousActorDeterministic(
            preprocess_net=Net(state_shape=obs_dim, hidden_sizes=self.hidden_sizes),
            action_shape=act_dim,
            max_action=1.0,
        )
        conditioned = self.condition_on_previous and num_successive > 0
        self.summariser: ListSummariser | None = (
            make_summariser(summariser, act_dim=act_dim, hidden=summariser_hidden, summary_dim=summary_dim,
                            obs_dim=obs_dim)
            if conditioned
            else None
        )
        self.successive: ConditionedMLP | None = (
            ConditionedMLP(
                members=num_successive, in_dim=obs_dim, hidden_sizes=self.hidden_sizes, out_dim=act_dim,
                cond_dim=summary_dim if conditioned else None,
            )
            if num_successive > 0
            else None
        )
        self.to(device)

    @property
    def num_proposals(self) -> int:
        return self.num_successive + 1

    def base_action(self, obs: Any) -> torch.Tensor:
        """a₀ = μ(s), ``[B, d]``."""
        obs_t = as_observation_tensor(obs, module_device(self))
        return self.base(obs_t)[0]

    def forward(self, obs: Any) -> torch.Tensor:
        """The k+1 proposals ``[B, k+1, d]``: μ(s), then νᵢ(s; a₍<ᵢ₎) for i = 1…k, in order."""
        obs_t = as_observation_tensor(obs, module_device(self))
        proposals = [self.base(obs_t)[0]]
        for i in range(self.num_successive):
            assert self.successive is not None
            summary = (self.summariser.summarise(torch.stack(proposals, dim=1), obs_t)
                       if self.summariser else None)
            proposals.append(torch.tanh(self.successive.member(i, obs_t, summary)))
        return torch.stack(proposals, dim=1)

    def successive_given_anchors(self, obs: Any, anchors: torch.Tensor) -> torch.Tensor:
        """νᵢ(s; a₍<ᵢ₎) for every i at once, given the anchors a₀…a_{k-1} ``[B, k, d]``: ``[B, k, d]``.

        Equals ``forward(obs)[:, 1:]`` when ``anchors`` are ``forward(obs)[:, :-1]``; used for the
        actor update (Eq. 9), where the anchors come detached from a no-grad pass of the chain.
        """
        if self.successive is None:
            raise ValueError("successive_given_anchors needs num_successive ≥ 1")
        obs_t = as_observation_tensor(obs, module_device(self))
        k = self.num_successive
        if anchors.shape[1] != k:
            raise ValueError(
                f"anchors must hold k = {k} proposals per state, got shape {tuple(anchors.shape)}"
            )
        x = obs_t.unsqueeze(0).expand(k, -1, -1)
        summaries = (
            self.summariser.prefix_summaries(anchors, obs_t).transpose(0, 1)
            if self.summariser is not None else None
        )
        return torch.tanh(self.successive(x, summaries)).transpose(0, 1)


# --- surrogate critics (Eq. 8, App. 13.2) -----------------------------------------------------


class SurrogateCritics(nn.Module):
    """The approximate surrogates Ψ̂₁…Ψ̂_k (Eq. 8), one ReLU MLP each over ``[s, a]``, its hidden layers
    FiLM-modulated by a list summary of the anchors a₍<ᵢ₎ (§4.3 item 4). One summariser serves all
    surrogates; it is separate from the actors' one, because the two are trained by different losses.

    :param obs_dim: flat observation size.
    :param act_dim: size of the action input (the critic's action representation).
    :param num_surrogates: k ≥ 1, one per successive actor.
    :param hidden_sizes: hidden widths (Table 3 uses the critic's: 256-256 MuJoCo, 64-32 RecSim).
    :param summariser: ``"deepset"``, ``"lstm"`` or ``"transformer"``.
    :param summariser_hidden: width inside the summariser.
    :param summary_dim: size of the summary fed to FiLM.
    :param anchor_dim: size of one anchor in the list (the actors' output size); ``act_dim`` if None.
    :param condition_on_previous: False drops the conditioning ("SAVO − Previous Actions").
    :param device: where the parameters live.
    """

    def __init__(
        self,
        *,
        obs_dim: int,
        act_dim: int,
        num_surrogates: int,
        hidden_sizes: Sequence[int] = (256, 256),
        summariser: str = "deepset",
        summariser_hidden: int = 64,
        summary_dim: int = 32,
        anchor_dim: int | None = None,
        condition_on_previous: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.act_dim = check_positive_int("act_dim", act_dim)
        self.num_surrogates = check_positive_int("num_surrogates", num_surrogates)
        hidden_sizes = check_hidden_sizes("hidden_sizes", hidden_sizes)
        self.condition_on_previous = bool(condition_on_previous)
        self.summariser: ListSummariser | None = (
            make_summariser(
                summariser, act_dim=anchor_dim or act_dim, hidden=summariser_hidden, summary_dim=summary_dim,
                obs_dim=obs_dim,
            )
            if self.condition_on_previous
            else None
        )
        if not self.condition_on_previous and summariser not in SUMMARISERS:
            raise ValueError(f"summariser must be one of {', '.join(SUMMARISERS)}, got {summariser!r}")
        self.mlp = ConditionedMLP(
            members=num_surrogates, in_dim=obs_dim + act_dim, hidden_sizes=hidden_sizes, out_dim=1,
            cond_dim=summary_dim if self.condition_on_previous else None,
        )
        self.to(device)

    def forward(self, obs: Any, actions: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Ψ̂ᵢ(s, a; a₍<ᵢ₎) for m actions per surrogate.

        :param obs: ``[B, obs_dim]`` observations.
        :param actions: ``[B, m, k, act_dim]``; ``actions[:, j, i]`` is the j-th action scored by Ψ̂ᵢ₊₁.
        :param anchors: ``[B, k, anchor_dim]``, the proposals a₀…a_{k-1}; Ψ̂ᵢ sees the first i.
        :return: ``[B, m, k]``.
        """
        obs_t = as_observation_tensor(obs, module_device(self))
        b, m, k, _ = actions.shape
        k_expected = self.num_surrogates
        if k != k_expected or anchors.shape[:2] != (b, k):
            raise ValueError(
                f"expected actions [B, m, {k_expected}, d] and anchors [B, {k_expected}, d], "
                f"got {tuple(actions.shape)} and {tuple(anchors.shape)}"
            )
        x = torch.cat([obs_t.view(b, 1, 1, -1).expand(b, m, k, -1), actions], dim=-1)
        x = x.permute(2, 0, 1, 3)  # [k, B, m, o + d]
        summaries = None
        if self.summariser is not None:
            summaries = self.summariser.prefix_summaries(anchors, obs_t).transpose(0, 1)  # [k, B, z]
        values = self.mlp(x, summaries).squeeze(-1)  # [k, B, m]
        return values.permute(1, 2, 0)


# --- critics ---------------------------------------------------------------------------------------


def build_critic(
    *,
    obs_dim: int,
    act_dim: int,
    hidden_sizes: Sequence[int] = (256, 256),
    device: torch.device | str = "cpu",
) -> ContinuousCritic:
    """Tianshou's action-in critic Q(s, a) over ``concat(s, a)`` (the same as its TD3 examples use)."""
    hidden_sizes = check_hidden_sizes("hidden_sizes", hidden_sizes)
    net = Net(state_shape=obs_dim, action_shape=act_dim, hidden_sizes=hidden_sizes, concat=True)
    return ContinuousCritic(preprocess_net=net).to(device)


def critic_values(critic: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q(s, aⱼ) for m actions per state in one critic pass: obs ``[B, o]``, actions ``[B, m, d]`` →
    ``[B, m]``. Works with any ``critic(obs, act) -> [N]`` or ``[N, 1]``, target wrappers included."""
    b, m, d = actions.shape
    flat_obs = obs.unsqueeze(1).expand(b, m, obs.shape[-1]).reshape(b * m, -1)
    return critic(flat_obs, actions.reshape(b * m, d)).view(b, m)


@dataclass
class SAVONetworks:
    """Everything :func:`build_savo_networks` makes; hand the parts to ``SAVOPolicy`` and ``SAVO``."""

    actor: SAVOActor
    critic: ContinuousCritic
    critic2: ContinuousCritic
    surrogates: SurrogateCritics | None
    q_smoother: ContinuousCritic | None


def build_savo_networks(
    *,
    obs_dim: int,
    act_dim: int,
    num_successive: int = 3,
    actor_hidden_sizes: Sequence[int] = (256, 256),
    critic_hidden_sizes: Sequence[int] = (256, 256),
    summariser: str = "deepset",
    summariser_hidden: int = 64,
    summary_dim: int = 32,
    condition_on_previous: bool = True,
    surrogates: bool = True,
    q_smoothing: bool = False,
    device: torch.device | str = "cpu",
) -> SAVONetworks:
    """The actors, twin critics, surrogates and (optionally) the Q-smoothing critic of SAVO-TD3.

    Defaults are Table 3's MuJoCo column (256-256 actors and critics, DeepSet list encoder, k = 3).

    :param obs_dim: flat observation size.
    :param act_dim: action size (``Box``) or item embedding size (large ``Discrete``).
    :param num_successive: k ≥ 0 successive actors.
    :param actor_hidden_sizes: hidden widths of μ and every νᵢ.
    :param critic_hidden_sizes: hidden widths of Q, Q₂, every Ψ̂ᵢ and the Q-smoothing critic.
    :param summariser: ``"deepset"``, ``"lstm"`` or ``"transformer"`` (actors and surrogates).
    :param summariser_hidden: width inside the summarisers.
    :param summary_dim: summary size fed to FiLM.
    :param condition_on_previous: False gives the "SAVO − Previous Actions" ablation.
    :param surrogates: build Ψ̂₁…Ψ̂_k (False for "SAVO − Approximation", or when k = 0).
    :param q_smoothing: also build the Q-smoothing critic of §14.6 (on for discrete tasks).
    :param device: where the parameters live.
    """
    actor = SAVOActor(
        obs_dim=obs_dim, act_dim=act_dim, num_successive=num_successive, hidden_sizes=actor_hidden_sizes,
        summariser=summariser, summariser_hidden=summariser_hidden, summary_dim=summary_dim,
        condition_on_previous=condition_on_previous, device=device,
    )

    def critic() -> ContinuousCritic:
        return build_critic(obs_dim=obs_dim, act_dim=act_dim, hidden_sizes=critic_hidden_sizes, device=device)

    surrogate_critics = (
        SurrogateCritics(
            obs_dim=obs_dim, act_dim=act_dim, num_surrogates=num_successive,
            hidden_sizes=critic_hidden_sizes, summariser=summariser, summariser_hidden=summariser_hidden,
            summary_dim=summary_dim, condition_on_previous=condition_on_previous, device=device,
        )
        if surrogates and num_successive > 0
        else None
    )
    return SAVONetworks(
        actor=actor, critic=critic(), critic2=critic(), surrogates=surrogate_critics,
        q_smoother=critic() if q_smoothing else None,
    )


__all__ = [
    "SUMMARISERS",
    "ConditionedMLP",
    "DeepSetSummariser",
    "LSTMSummariser",
    "ListSummariser",
    "SAVOActor",
    "SAVONetworks",
    "StackedFiLM",
    "StackedLinear",
    "StateActionDeepSetSummariser",
    "SurrogateCritics",
    "TransformerSummariser",
    "build_critic",
    "build_savo_networks",
    "critic_values",
    "make_summariser",
]
