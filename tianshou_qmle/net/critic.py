"""The action-in Q network of QMLE App. B.1 (Fig. 4), built for scoring many candidates per state."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tianshou_qmle.validation import check_positive_int


def as_float_tensor(x: Any, device: torch.device | str) -> torch.Tensor:
    """Convert observations or actions to a float32 tensor on ``device`` (no copy if already so)."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


DEFAULT_SCORE_BLOCK = 2048
"""Candidates per block in :meth:`ActionInCritic.score_candidates`. A block's activations (2048 × 256
float32 values, 2 MiB) stay in L2/L3 between layers instead of streaming through memory; on the
2-core EPYC we measured, 512–2048 were equally fast and 4096 was much slower in float32."""


class ScoringWeights(NamedTuple):
    """The critic's parameters laid out for :func:`score_block` (see
    :meth:`ActionInCritic.scoring_weights`)."""

    act_w: torch.Tensor
    act_b: torch.Tensor
    act_norm_w: torch.Tensor
    act_norm_b: torch.Tensor
    fc1_act_t: torch.Tensor
    """The action half of the joint block's first layer, transposed and contiguous ``[A, J]``."""
    fc2_t: torch.Tensor
    fc2_b: torch.Tensor
    joint_norm_w: torch.Tensor
    joint_norm_b: torch.Tensor
    head_w: torch.Tensor
    head_b: torch.Tensor
    act_eps: float
    joint_eps: float


def score_block(
    actions: torch.Tensor, obs_part: torch.Tensor, features: torch.Tensor, w: ScoringWeights
) -> torch.Tensor:
    """Q of one block of candidates ``[s, n, d]`` belonging to ``s`` states, shape ``[s, n]``.

    The forward pass of :class:`ActionInCritic` after its observation stream, without autograd:
    ``obs_part`` is each state's ``W_f·f(s) + b₁`` ``[s, J]`` and ``features`` its f(s) ``[s, O]``,
    both broadcast in place over the state's candidates; the residual skip is added to the second
    layer's output in place rather than concatenated.
    """
    s, n, d = actions.shape
    width_a, width_j = w.act_w.shape[0], w.fc2_t.shape[1]
    width_o = width_j - width_a
    act_feat = F.linear(actions.reshape(s * n, d), w.act_w, w.act_b)
    act_feat = F.elu(F.layer_norm(act_feat, (width_a,), w.act_norm_w, w.act_norm_b, w.act_eps), inplace=True)
    hidden = torch.mm(act_feat, w.fc1_act_t)
    hidden.view(s, n, width_j).add_(obs_part.unsqueeze(1)).relu_()
    joint = torch.addmm(w.fc2_b, hidden, w.fc2_t).view(s, n, width_j)
    joint[..., :width_o].add_(features.unsqueeze(1))
    joint[..., width_o:].add_(act_feat.view(s, n, width_a))
    joint = F.layer_norm(joint, (width_j,), w.joint_norm_w, w.joint_norm_b, w.joint_eps)
    joint = F.elu(joint, inplace=True)
    return torch.matmul(joint, w.head_w).to(w.head_b.dtype).add_(w.head_b)


def fused_score_block(
    actions: torch.Tensor, obs_part: torch.Tensor, features: torch.Tensor, w: ScoringWeights
) -> torch.Tensor:
    """:func:`score_block` written out of place, the form ``torch.compile`` fuses best (Inductor
    merges the bias, residual, LayerNorm and ELU passes into a few loops around the matrix products)."""
    n = actions.shape[1]
    width_a, width_j = w.act_w.shape[0], w.fc2_t.shape[1]
    act_feat = F.linear(actions, w.act_w, w.act_b)
    act_feat = F.elu(F.layer_norm(act_feat, (width_a,), w.act_norm_w, w.act_norm_b, w.act_eps))
    hidden = F.relu(torch.matmul(act_feat, w.fc1_act_t) + obs_part.unsqueeze(1))
    skip = torch.cat([features.unsqueeze(1).expand(-1, n, -1), act_feat], -1)
    joint = torch.matmul(hidden, w.fc2_t) + w.fc2_b + skip
    joint = F.elu(F.layer_norm(joint, (width_j,), w.joint_norm_w, w.joint_norm_b, w.joint_eps))
    return torch.matmul(joint, w.head_w).to(w.head_b.dtype) + w.head_b


_compiled_score_block: Any = None

MIN_COMPILED_BLOCK = 512
"""Blocks with fewer candidates (re-scoring winners, a few states) run eagerly even when
``compile_scoring`` is on: compiling each such shape would cost more than it saves."""


AUTO_BF16_MIN_CANDIDATES = 512
"""Below this many candidates per search, ``scoring_dtype="auto"`` scores in float32 even where the
CPU has native bf16. Small searches (acting in one environment: 1 state × 200 candidates) are
bound by per-op overhead rather than by matrix products; there bf16 only adds weight conversions,
slower element-wise passes and a re-scoring pass. Measured on the 2-core EPYC, one thread, 1 state
× 200 candidates: float32 1.4 ms, bf16 1.8–2.0 ms; from about 512 candidates up, bf16 (compiled)
wins, e.g. 10 states × 200: bf16 3.8 ms, float32 6.5–10.9 ms (``benchmarks/step_cost.py``)."""


_compile_failure: str | None = None
"""Why ``torch.compile`` could not build the scoring kernel here, once it failed (None until then)."""


def compiled_score_block() -> Any:
    """:func:`fused_score_block` under ``torch.compile``, created on first use and shared by all
    critics (it takes the weights as arguments, so online and target critics share its kernels)."""
    global _compiled_score_block
    if _compiled_score_block is None:
        _compiled_score_block = torch.compile(fused_score_block, fullgraph=True)
    return _compiled_score_block


def run_compiled_or_eager(*args: Any) -> torch.Tensor:
    """The compiled kernel, or the eager one where compiling fails (no C++ compiler, an unsupported
    platform): then once a warning that says why, and eager scoring from there on."""
    global _compile_failure
    if _compile_failure is None:
        try:
            return compiled_score_block()(*args)
        except Exception as err:  # Inductor raises many kinds: compiler missing, backend failures
            first_line = (str(err).strip().splitlines() or [""])[0][:200]
            _compile_failure = f"{type(err).__name__}: {first_line}"
            warnings.warn(
                f"compile_scoring: torch.compile could not build the scoring kernel ({_compile_failure}); "
                f"scoring eagerly instead (same values, slower). On CPU, Inductor needs a C++ compiler "
                f"(e.g. apt install g++).",
                RuntimeWarning, stacklevel=2,
            )
    return score_block(*args)


class ResidualBlock(nn.Module):
    """``x + W2·relu(W1·x)``: a two-layer residual block that keeps its width (He et al. 2016)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.relu(self.fc1(x)))


class ObservationStream(nn.Module):
    """Linear embedding → residual block → LayerNorm → ELU (Fig. 4, observation stream)."""

    def __init__(self, obs_dim: int, width: int = 128) -> None:
        super().__init__()
        self.embed = nn.Linear(obs_dim, width)
        self.block = ResidualBlock(width)
        self.norm = nn.LayerNorm(width)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return F.elu(self.norm(self.block(self.embed(obs))))


class ActionInCritic(nn.Module):
    """Q(s, a) with separate observation and action streams joined by a residual block (Fig. 4).

    The joint block's first layer is linear in the concatenation ``[f(s), g(a)]``, so its
    observation half ``W_f·f(s)`` is computed once per state and broadcast over that state's
    candidates; only the action half runs per candidate. That is what makes scoring
    ``batch × m`` candidates cheap (see :meth:`q_from_features` and :meth:`score_candidates`).

    :param obs_dim: flat observation size.
    :param act_dim: action representation size d (the normalised box coordinates for ``Box``).
    :param obs_width: width of the observation stream (128 in App. B.1).
    :param act_width: width of the action stream (128 in App. B.1).
    :param device: where the parameters are created. Inputs go wherever the parameters are at call
        time (:attr:`device` reads it from them), so ``critic.to("cuda")`` later works too.
    :param score_block: candidates per block when scoring without autograd (whole states per block,
        or part of one state's candidates when it has more); changes the speed, not the values.
    :param compile_scoring: score candidate blocks with a ``torch.compile``-d
        :func:`fused_score_block` (Inductor fuses the LayerNorm, ELU, residual and bias passes).
        Opt-in: the first calls compile (seconds; needs a C++ compiler on CPU); the values agree
        with eager scoring within float rounding. The attribute of the same name toggles it later.
    :param bilinear_head: add ``⟨W·f(s) + b, a⟩`` to Q, a term linear in the action representation
        ``a`` with weights read from the state's features. Off in the paper's network (App. B.1).
        Turn it on when values are close to an inner product between a state's tastes and an
        action's features, as in recommenders (the click logit of SAVO §11.2 is ⟨e_u, e_i⟩): the
        MLP on ``[f(s), g(a)]`` represents such a product only coarsely. ``W`` and ``b`` start at
        zero, so an untrained critic computes the paper's Q; scoring costs one extra
        ``d``-long dot product per candidate.
    """

    def __init__(
        self,
        *,
        obs_dim: int,
        act_dim: int,
        obs_width: int = 128,
        act_width: int = 128,
        device: torch.device | str = "cpu",
        score_block: int = DEFAULT_SCORE_BLOCK,
        compile_scoring: bool = False,
        bilinear_head: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("obs_dim", obs_dim), ("act_dim", act_dim), ("obs_width", obs_width),
                            ("act_width", act_width)):
            check_positive_int(value, name)
        if score_block < 1:
            raise ValueError(f"score_block must be ≥ 1, got {score_block}")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.obs_width, self.act_width = obs_width, act_width
        self.score_block = int(score_block)
        self.compile_scoring = bool(compile_scoring)
        self.obs_stream = ObservationStream(obs_dim, obs_width)
        self.act_embed = nn.Linear(act_dim, act_width)
        self.act_norm = nn.LayerNorm(act_width)
        joint = obs_width + act_width
        self.joint = ResidualBlock(joint)
        self.joint_norm = nn.LayerNorm(joint)
        self.head = nn.Linear(joint, 1)
        self.bilinear: nn.Linear | None = None
        if bilinear_head:
            self.bilinear = nn.Linear(obs_width, act_dim)
            nn.init.zeros_(self.bilinear.weight)
            nn.init.zeros_(self.bilinear.bias)
        self.to(device)

    @property
    def device(self) -> torch.device:
        """Where the parameters are now (follows ``.to(...)``)."""
        return self.head.weight.device

    @property
    def feature_dim(self) -> int:
        return self.obs_width

    def features(self, obs: Any) -> torch.Tensor:
        """Observation features ``[batch, obs_width]``, shared by Q and the arg max predictors."""
        return self.obs_stream(as_float_tensor(obs, self.device))

    def action_features(self, actions: torch.Tensor) -> torch.Tensor:
        return F.elu(self.act_norm(self.act_embed(actions)))

    def q_from_features(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q-values of ``actions`` ``[batch, m, d]`` (or ``[batch, d]``) given per-state features.

        With autograd this is :meth:`q_layers`; without (``torch.no_grad``/``torch.inference_mode``,
        as in the arg max search) the faster :meth:`score_candidates`, equal up to float rounding.

        :return: shape ``[batch, m]`` (or ``[batch]`` for 2-D actions).
        """
        single = actions.dim() == 2
        if single:
            actions = actions.unsqueeze(1)
        if torch.is_grad_enabled():
            q = self.q_layers(features, actions)
        else:
            q = self.score_candidates(features, actions)
        return q.squeeze(1) if single else q

    def q_layers(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q-values ``[batch, m]`` of ``actions`` ``[batch, m, d]``, layer by layer on whole tensors
        (differentiable; also the reference that :meth:`score_candidates` is measured against)."""
        act_feat = self.action_features(actions)  # [B, m, A]
        w1 = self.joint.fc1.weight
        obs_part = F.linear(features, w1[:, : self.obs_width], self.joint.fc1.bias)  # [B, J]
        hidden = F.relu(obs_part.unsqueeze(1) + F.linear(act_feat, w1[:, self.obs_width :]))
        skip = torch.cat([features.unsqueeze(1).expand(-1, act_feat.shape[1], -1), act_feat], -1)
        joint = F.elu(self.joint_norm(skip + self.joint.fc2(hidden)))
        q = self.head(joint).squeeze(-1)
        return q if self.bilinear is None else q + self.bilinear_term(features, actions)

    def bilinear_term(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``⟨W·f(s) + b, a⟩`` ``[batch, m]`` of the bilinear head, in the actions' dtype."""
        assert self.bilinear is not None, "the critic was built without bilinear_head"
        state_weights = self.bilinear(features).to(actions.dtype).unsqueeze(-1)  # [B, d, 1]
        return torch.matmul(actions, state_weights).squeeze(-1)

    def scoring_weights(self, dtype: torch.dtype | None = None) -> ScoringWeights:
        """The parameters as :func:`score_block` takes them, in ``dtype`` (theirs if None).

        Rebuilt on every call (tens of microseconds). A cache keyed on parameter versions went
        stale: Tianshou's target copies write through ``param.data``, which bumps no version, so
        a target network kept scoring with its first weights.
        """
        dtype = self.head.weight.dtype if dtype is None else dtype
        o = self.obs_width
        with torch.no_grad():
            weights = ScoringWeights(
                act_w=self.act_embed.weight.to(dtype), act_b=self.act_embed.bias.to(dtype),
                act_norm_w=self.act_norm.weight.to(dtype), act_norm_b=self.act_norm.bias.to(dtype),
                fc1_act_t=self.joint.fc1.weight[:, o:].t().contiguous().to(dtype),
                fc2_t=self.joint.fc2.weight.to(dtype).t(), fc2_b=self.joint.fc2.bias.to(dtype),
                joint_norm_w=self.joint_norm.weight.to(dtype), joint_norm_b=self.joint_norm.bias.to(dtype),
                head_w=self.head.weight[0].to(dtype), head_b=self.head.bias.clone(),
                act_eps=float(self.act_norm.eps), joint_eps=float(self.joint_norm.eps),
            )
        return weights

    def score_candidates(
        self, features: torch.Tensor, actions: torch.Tensor, *, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Q-values ``[batch, m]`` of candidates ``[batch, m, d]``, computed without autograd.

        The function of :meth:`q_from_features`, evaluated ``score_block`` candidates at a time by
        :func:`score_block` (or the compiled :func:`fused_score_block`, see ``compile_scoring``) into
        one preallocated result. In the parameters' dtype the values equal :meth:`q_layers`' up to
        the matrix library's rounding.

        :param features: observation features ``[batch, obs_width]``.
        :param actions: candidate representations ``[batch, m, d]``.
        :param dtype: the precision of weights and activations, e.g. ``torch.bfloat16``; None uses
            the parameters' dtype. The result is in the parameters' dtype either way.
        """
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self.score_candidates(features, actions, dtype=dtype)
        weights = self.scoring_weights(dtype)
        low = weights.head_w.dtype
        batch_size, m, _ = actions.shape
        obs_part = F.linear(features, self.joint.fc1.weight[:, : self.obs_width], self.joint.fc1.bias)
        obs_part, feats, actions = obs_part.to(low), features.to(low), actions.to(low)
        out = torch.empty(batch_size, m, device=features.device, dtype=weights.head_b.dtype)
        compiled = self.compile_scoring and batch_size * m >= MIN_COMPILED_BLOCK
        kernel = run_compiled_or_eager if compiled else score_block
        states = max(1, self.score_block // m)
        per_state = min(m, self.score_block)
        for s0 in range(0, batch_size, states):
            s1 = min(batch_size, s0 + states)
            for c0 in range(0, m, per_state):
                c1 = min(m, c0 + per_state)
                out[s0:s1, c0:c1] = kernel(actions[s0:s1, c0:c1], obs_part[s0:s1], feats[s0:s1], weights)
        if self.bilinear is not None:
            out.add_(self.bilinear_term(features, actions).to(out.dtype))
        return out

    def forward(self, obs: Any, act: Any) -> torch.Tensor:
        """Q(s, a) for a batch of pairs, shape ``[batch]`` (Tianshou's critic convention)."""
        return self.q_from_features(self.features(obs), as_float_tensor(act, self.device))
