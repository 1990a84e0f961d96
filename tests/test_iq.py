"""IQ / M-IQ (Vieillard et al., "Implicitly Regularized RL with Implicit Q-Values").

Identities of the implicit parametrisation (Eq. 1), Theorem 1 in closed form and through the
algorithm's own loss on a tabular MDP, the discrete (soft-Q / M-DQN) reduction, the Munchausen
clip, truncation handling, acting, checkpoints, input validation, Tianshou integration and the
two examples. The Pendulum learning run is behind ``@pytest.mark.slow``.
"""

from __future__ import annotations

import copy
import itertools
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Batch, Collector, PrioritizedVectorReplayBuffer, ReplayBuffer
from tianshou.env import DummyVectorEnv
from tianshou.utils.torch_utils import policy_within_training_step, torch_train_mode

from tianshou_qmle.algorithm.iq import (
    IQ,
    IQPolicy,
    actions_to_bins,
    bin_values,
    bins_to_actions,
    iq_dp_step,
)
from tianshou_qmle.data.buffer import FastNullCheckVectorReplayBuffer
from tianshou_qmle.net.iq import (
    GaussianActor,
    IQNetwork,
    MultiCategoricalActor,
    ValueNetwork,
    build_iq_network,
)
from tianshou_qmle.utils import load_checkpoint, save_checkpoint

from .conftest import load_script

PENDULUM_BOX = gym.spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)


def make_iq(
    *,
    obs_dim: int = 3,
    action_space: gym.Space = PENDULUM_BOX,
    num_bins: int = 11,
    hidden_sizes: tuple[int, ...] = (32, 32),
    policy_type: str = "multicategorical",
    lr: float = 1e-3,
    dtype: torch.dtype = torch.float32,
    **algo_kwargs,
) -> IQ:
    if isinstance(action_space, gym.spaces.Discrete):
        act_dim, num_bins = 1, int(action_space.n)
    else:
        act_dim = action_space.shape[0]
    model = build_iq_network(
        obs_dim=obs_dim, act_dim=act_dim, num_bins=num_bins, hidden_sizes=hidden_sizes,
        policy_type=policy_type,
    ).to(dtype)
    policy = IQPolicy(model=model, action_space=action_space)
    return IQ(policy=policy, optim=AdamOptimizerFactory(lr=lr), **algo_kwargs)


def random_obs(n: int = 7, dim: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.exp(x - top).sum(axis=axis))


def softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(x - logsumexp(x)[..., None])


def transition_batch(obs, act, rew, obs_next, terminated, truncated) -> ReplayBuffer:
    """A buffer holding the given transitions, one per row, in order."""
    buffer = ReplayBuffer(len(obs))
    for i in range(len(obs)):
        buffer.add(Batch(obs=obs[i], act=act[i], rew=rew[i], obs_next=obs_next[i],
                         terminated=terminated[i], truncated=truncated[i], info={}))
    return buffer


# --- Eq. 1: the implicit parametrisation ---------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.01, 1.0])
def test_implicit_v_is_tau_logsumexp_of_implicit_q_and_pi_is_its_softmax(temperature):
    """d = 2, n = 3: over all 9 joint actions, V = τ·lse(Q/τ) and π = softmax(Q/τ) per state."""
    torch.manual_seed(0)
    box = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    algo = make_iq(action_space=box, num_bins=3, temperature=temperature, dtype=torch.float64)
    obs = random_obs(5)
    values = bin_values(3)
    joint = np.array(list(itertools.product(values, values)), dtype=np.float32)  # [9, 2]
    with torch.no_grad():
        q = np.stack([algo.implicit_q(obs, np.repeat(a[None], len(obs), 0)).numpy() for a in joint], 1)
        v = algo.policy.model.value(algo.policy.observation_tensor(obs)).numpy()
        log_pi = np.stack([algo.policy.log_prob(obs, np.repeat(a[None], len(obs), 0)).numpy()
                           for a in joint], 1)
    np.testing.assert_allclose(temperature * logsumexp(q / temperature), v, rtol=0, atol=1e-10)
    np.testing.assert_allclose(softmax(q / temperature), np.exp(log_pi), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.exp(log_pi).sum(1), 1.0, atol=1e-12)
    # the spread of Q across actions is τ times that of ln π: implicit Q really scales with τ
    assert np.ptp(q, axis=1) == pytest.approx(temperature * np.ptp(log_pi, axis=1), rel=1e-9)


def test_discrete_implicit_q_table_is_exact_soft_q():
    torch.manual_seed(1)
    algo = make_iq(action_space=gym.spaces.Discrete(4), temperature=0.5, dtype=torch.float64)
    obs = random_obs(6)
    with torch.no_grad():
        q = algo.implicit_q_values(obs).numpy()
        logits = algo.policy.model.actor(algo.policy.observation_tensor(obs))[:, 0].numpy()
        v = algo.policy.model.value(algo.policy.observation_tensor(obs)).numpy()
    assert q.shape == (6, 4)
    np.testing.assert_allclose(0.5 * logsumexp(q / 0.5), v, atol=1e-12)
    np.testing.assert_allclose(softmax(q / 0.5), softmax(logits), atol=1e-12)
    with torch.no_grad():
        for a in range(4):
            np.testing.assert_allclose(algo.implicit_q(obs, np.full(6, a)).numpy(), q[:, a], atol=1e-12)


def test_log_pi_is_log_softmax_and_finite_for_extreme_logits():
    actor = MultiCategoricalActor(3, 2, 5, hidden_sizes=())
    logits = torch.tensor([[[0.0, 1e4, -1e4, 3.0, 2.0], [50.0, -50.0, 0.0, 0.0, 1.0]]])
    idx = torch.tensor([[2, 1]])
    expected = torch.log_softmax(logits, -1)[0, 0, 2] + torch.log_softmax(logits, -1)[0, 1, 1]
    log_p = actor.log_prob(logits, idx)
    assert torch.isfinite(log_p).all()
    assert log_p.item() == pytest.approx(expected.item())
    assert log_p.item() < -1e4  # log of a softmax would give -inf here


def test_probability_floor_mixes_each_dimension_with_the_uniform_and_bounds_log_pi():
    eps, n = 0.1, 5
    actor = MultiCategoricalActor(3, 2, n, hidden_sizes=(), probability_floor=eps)
    logits = torch.tensor([[[0.0, 1e4, -1e4, 3.0, 2.0], [50.0, -50.0, 0.0, 0.0, 1.0]]])
    probs = actor.log_policy(logits).exp()
    expected = (1 - eps) * torch.softmax(logits, -1) + eps / n
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 2))
    worst = actor.log_prob(logits, torch.tensor([[2, 1]]))
    assert worst.item() == pytest.approx(2 * np.log(eps / n), rel=1e-5)  # the floor, per dimension
    # the unfloored policy puts this action at about -1e4 nats
    assert MultiCategoricalActor(3, 2, n, hidden_sizes=()).log_prob(logits, torch.tensor([[2, 1]])) < -1e4
    assert actor.mode(logits).tolist() == [[1, 0]]
    entropy = actor.entropy(logits)
    assert entropy.item() == pytest.approx(-(expected * expected.log()).sum().item(), rel=1e-5)


def test_probability_floor_makes_sampling_explore_every_bin_at_the_floor_rate():
    torch.manual_seed(0)
    eps, n = 0.2, 4
    actor = MultiCategoricalActor(3, 1, n, hidden_sizes=(), probability_floor=eps)
    peaked = torch.tensor([[[100.0, 0.0, 0.0, 0.0]]]).expand(20_000, 1, n)
    counts = torch.bincount(actor.sample(peaked).view(-1), minlength=n).float() / 20_000
    np.testing.assert_allclose(counts.numpy(), [1 - eps + eps / n] + [eps / n] * 3, atol=0.01)
    loss_only = MultiCategoricalActor(3, 1, n, hidden_sizes=(), probability_floor=eps,
                                      sample_with_floor=False)
    assert (loss_only.sample(peaked) == 0).all()  # the softmax alone: the mode, always
    torch.testing.assert_close(loss_only.log_policy(peaked[:1]), actor.log_policy(peaked[:1]))


@pytest.mark.parametrize("floor", [-0.1, 1.0, float("nan"), True, "0.1"])
def test_probability_floor_outside_zero_one_is_rejected(floor):
    with pytest.raises(ValueError, match=r"probability_floor .* must be a number in \[0, 1\), got"):
        build_iq_network(obs_dim=3, act_dim=1, probability_floor=floor)


def test_probability_floor_is_refused_by_the_gaussian_policy():
    with pytest.raises(ValueError, match="probability_floor applies to the multicategorical policy only"):
        build_iq_network(obs_dim=3, act_dim=1, policy_type="gaussian", probability_floor=0.1)
    build_iq_network(obs_dim=3, act_dim=1, policy_type="gaussian", probability_floor=0.0)


# --- Theorem 1 ----------------------------------------------------------------------------------


def random_mdp(num_states=3, num_actions=2, seed=0):
    rng = np.random.default_rng(seed)
    transition = rng.dirichlet(np.ones(num_states), size=(num_states, num_actions))  # [S, A, S]
    reward = rng.uniform(-1.0, 1.0, size=(num_states, num_actions))
    return reward, transition


def md_vi_step(reward, transition, pi_prev, v_prev, *, tau, alpha, gamma):
    """MD-VI(ατ, (1-α)τ), value-based, as Theorem 1 states it: the greedy step maximises
    <π, q> + (1-α)τ H(π) - ατ KL(π || π_prev) (closed form π ∝ π_prev^α exp(q/τ)), and V is that
    maximum."""
    q = reward + gamma * transition @ v_prev
    pi = softmax(alpha * np.log(pi_prev) + q / tau)
    entropy = -(pi * np.log(pi)).sum(1)
    kl = (pi * (np.log(pi) - np.log(pi_prev))).sum(1)
    return pi, (pi * q).sum(1) + (1 - alpha) * tau * entropy - alpha * tau * kl


def md_vi_objective(pi, q, pi_prev, tau, alpha):
    return ((pi * q).sum(-1) - (1 - alpha) * tau * (pi * np.log(pi)).sum(-1)
            - alpha * tau * (pi * (np.log(pi) - np.log(pi_prev))).sum(-1))


def soft_optimal_policy(reward, transition, beta, gamma, iterations=3000):
    """π* of the β-entropy-regularised MDP by soft value iteration."""
    v = np.zeros(reward.shape[0])
    for _ in range(iterations):
        q = reward + gamma * transition @ v
        v = beta * logsumexp(q / beta)
    return softmax(q / beta)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.9])
def test_theorem1_iq_dp_equals_md_vi_in_closed_form(alpha):
    reward, transition = random_mdp(4, 3, seed=2)
    tau, gamma = 0.4, 0.9
    rng = np.random.default_rng(3)
    pi = softmax(rng.normal(size=(4, 3)))
    v = rng.normal(size=4)
    log_pi_iq, v_iq = np.log(pi), v.copy()
    for _ in range(40):
        q = reward + gamma * transition @ v
        pi_next, v_next = md_vi_step(reward, transition, pi, v, tau=tau, alpha=alpha, gamma=gamma)
        # the closed form really is the arg max of the MD-VI greedy step
        candidates = rng.dirichlet(np.ones(3), size=(200, 4))
        best = md_vi_objective(pi_next, q, pi, tau, alpha)
        assert (md_vi_objective(candidates, q, pi, tau, alpha) <= best + 1e-12).all()
        np.testing.assert_allclose(best, v_next, atol=1e-12)
        log_pi_iq, v_iq = iq_dp_step(reward, transition, log_pi_iq, v_iq,
                                     temperature=tau, alpha=alpha, gamma=gamma)
        pi, v = pi_next, v_next
        np.testing.assert_allclose(np.exp(log_pi_iq), pi, rtol=0, atol=1e-12)
        np.testing.assert_allclose(v_iq, v, rtol=0, atol=1e-12)
    # and it converges to the optimal policy of the (1-α)τ-regularised MDP (Vieillard 2020a)
    for _ in range(3000):
        log_pi_iq, v_iq = iq_dp_step(reward, transition, log_pi_iq, v_iq,
                                     temperature=tau, alpha=alpha, gamma=gamma)
    target = soft_optimal_policy(reward, transition, (1 - alpha) * tau, gamma)
    np.testing.assert_allclose(np.exp(log_pi_iq), target, atol=1e-8)


def one_hot(i: int, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[i] = 1.0
    return out


def minimise_exactly(algo: IQ, batch: Batch) -> None:
    """Minimise Eq. 2 on a fixed batch (targets frozen) to float64 precision with L-BFGS."""
    params = list(algo.policy.model.parameters())
    lbfgs = torch.optim.LBFGS(params, lr=1.0, max_iter=500, tolerance_grad=1e-13, tolerance_change=0.0,
                              line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = algo.compute_loss(batch)[0]
        loss.backward()
        return loss

    lbfgs.step(closure)
    assert max(p.grad.abs().max().item() for p in params) < 1e-8


@pytest.mark.parametrize("alpha", [0.0, 0.9])
def test_tabular_iq_algorithm_matches_md_vi_and_regularised_value_iteration(alpha):
    """IQ's own loss (Eq. 2), minimised exactly on a Discrete tabular MDP, is one IQ-DP step.

    Every (s, a, s') is a buffer transition weighted by P(s'|s, a) (the importance-weight path),
    the policy and value are tables (one-hot observations, linear maps, float64), each iteration
    minimises the loss to convergence with L-BFGS and then copies the networks into the targets
    (Polyak λ = 1). The iterates must equal MD-VI(ατ, (1−α)τ) (Theorem 1) and, on the Q side,
    regularised value iteration with the same regularisation: soft VI for α = 0 (IQ), Munchausen VI
    (M-DQN's update, no clipping) for α > 0.
    """
    num_states, num_actions, tau, gamma = 3, 2, 0.3, 0.9
    reward, transition = random_mdp(num_states, num_actions, seed=5)
    torch.manual_seed(0)
    model = IQNetwork(
        MultiCategoricalActor(num_states, 1, num_actions, hidden_sizes=()),
        ValueNetwork(num_states, hidden_sizes=()),
    ).double()
    policy = IQPolicy(model=model, action_space=gym.spaces.Discrete(num_actions),
                      observation_space=gym.spaces.Box(0.0, 1.0, (num_states,)))
    algo = IQ(policy=policy, optim=AdamOptimizerFactory(), temperature=tau, alpha=alpha,
              polyak=1.0, gamma=gamma)

    rows = list(itertools.product(range(num_states), range(num_actions), range(num_states)))
    buffer = transition_batch(
        obs=[one_hot(s, num_states) for s, _, _ in rows], act=[a for _, a, _ in rows],
        rew=[reward[s, a] for s, a, _ in rows], obs_next=[one_hot(s2, num_states) for _, _, s2 in rows],
        terminated=[False] * len(rows), truncated=[True] * len(rows),  # truncation: bootstrap
    )
    weights = np.array([transition[s, a, s2] for s, a, s2 in rows])
    states = np.eye(num_states)

    def tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            q = algo.implicit_q_values(states).numpy()
            v = model.value(torch.as_tensor(states)).numpy()
        return softmax(q / tau), v, q

    pi, v, q_ref = tables()  # the targets (π_1, V_0) are the initial networks
    for _ in range(6):
        batch, indices = buffer.sample(0)
        batch.weight = weights[indices]
        minimise_exactly(algo, algo._preprocess_batch(batch, buffer, indices))
        algo._update_lagged_network_weights()

        pi, v = md_vi_step(reward, transition, pi, v, tau=tau, alpha=alpha, gamma=gamma)
        # regularised VI on Q: Q ← r + α τ ln softmax(Q/τ) + γ P τ lse(Q/τ)
        q_ref = (reward + alpha * tau * np.log(softmax(q_ref / tau))
                 + gamma * transition @ (tau * logsumexp(q_ref / tau)))
        pi_iq, v_iq, q_iq = tables()
        np.testing.assert_allclose(pi_iq, pi, atol=1e-9)
        np.testing.assert_allclose(v_iq, v, atol=1e-9)
        np.testing.assert_allclose(q_iq, q_ref, atol=1e-9)
    assert np.ptp(pi, axis=1).max() > 0.05  # the policies are not trivially uniform


# --- the loss and its target ---------------------------------------------------------------------


@pytest.mark.parametrize("clip", [None, -1.0])
def test_discrete_target_is_the_m_dqn_target_of_the_implicit_q(clip):
    """r + α[τ ln π̄(a|s)] + γ V̄(s') equals M-DQN's r + α[τ ln π̄(a|s)]_{l0}^0 + γ Σ π̄(Q̄ − τ ln π̄)."""
    torch.manual_seed(2)
    tau, alpha, gamma = 0.3, 0.9, 0.97
    algo = make_iq(action_space=gym.spaces.Discrete(5), temperature=tau, alpha=alpha, gamma=gamma,
                   polyak=0.5, munchausen_clip=clip, dtype=torch.float64)
    rng = np.random.default_rng(0)
    n = 12
    obs, obs_next = rng.normal(size=(n, 3)) * 3, rng.normal(size=(n, 3)) * 3
    act, rew = rng.integers(0, 5, n), rng.normal(size=n)
    terminated = np.arange(n) % 4 == 0
    buffer = transition_batch(obs, act, rew, obs_next, terminated, np.ones(n, bool))
    # make the targets differ from the online networks
    with policy_within_training_step(algo.policy), torch_train_mode(algo):
        for _ in range(3):
            algo.update(buffer, n)
    batch, indices = buffer.sample(0)
    batch = algo._preprocess_batch(batch, buffer, indices)
    with torch.no_grad():
        target = algo.td_target(batch).numpy()

    @torch.no_grad()
    def target_q(x):
        x = torch.as_tensor(x)
        return (tau * torch.log_softmax(algo.actor_old(x)[:, 0], -1) + algo.value_old(x)[:, None]).numpy()

    q_bar, q_bar_next = target_q(batch.obs), target_q(batch.obs_next)
    pi_bar, pi_bar_next = softmax(q_bar / tau), softmax(q_bar_next / tau)
    scaled_log_pi = tau * np.log(pi_bar[np.arange(n), batch.act])
    if clip is not None:
        scaled_log_pi = np.clip(scaled_log_pi, clip, 0.0)
    soft_v_next = (pi_bar_next * (q_bar_next - tau * np.log(pi_bar_next))).sum(1)
    m_dqn = batch.rew + alpha * scaled_log_pi + gamma * ~batch.terminated * soft_v_next
    np.testing.assert_allclose(target, m_dqn, atol=1e-10)
    assert not np.allclose(target_q(batch.obs), algo.implicit_q_values(batch.obs).detach().numpy())


def test_munchausen_clip_bounds_the_term_and_none_follows_eq2():
    """M-DQN's clip: α·clip(τ ln π̄, l₀, 0). With a peaked target policy the raw term is far below l₀."""
    tau, alpha = 0.1, 0.9
    algos = {}
    for clip in (None, -1.0):
        torch.manual_seed(3)
        algos[clip] = make_iq(action_space=gym.spaces.Discrete(4), hidden_sizes=(),
                              temperature=tau, alpha=alpha, munchausen_clip=clip)
    obs = torch.as_tensor(random_obs(8))
    act = torch.arange(8).remainder(4).view(-1, 1)
    for algo in algos.values():  # a sharp target policy: ln π̄ reaches hundreds below zero
        with torch.no_grad():
            for p in algo.actor_old.parameters():
                p.mul_(500.0)
    raw = algos[None].munchausen_term(obs, act)
    clipped = algos[-1.0].munchausen_term(obs, act)
    with torch.no_grad():
        log_pi = algos[None].policy.model.actor.log_prob(algos[None].actor_old(obs), act)
    np.testing.assert_allclose(raw.numpy(), (alpha * tau * log_pi).numpy(), rtol=1e-6)
    np.testing.assert_allclose(clipped.numpy(), (alpha * (tau * log_pi).clamp(-1.0, 0.0)).numpy(),
                               rtol=1e-6)
    assert raw.min() < -alpha * 1.0 - 1.0  # some terms really are below the clip …
    assert clipped.min() >= -alpha - 1e-6 and (clipped <= 0).all()  # … and clipping bounds them
    unaffected = raw >= -alpha
    assert unaffected.any() and torch.equal(raw[unaffected], clipped[unaffected])
    assert torch.equal(make_iq(alpha=0.0).munchausen_term(obs, act), torch.zeros(8))  # IQ: no term


def test_value_mask_bootstraps_truncation_not_termination():
    torch.manual_seed(4)
    algo = make_iq(gamma=0.9, alpha=0.0)
    rng = np.random.default_rng(1)
    obs, obs_next = random_obs(3, seed=1), random_obs(3, seed=2)
    buffer = transition_batch(obs, rng.uniform(-1, 1, (3, 1)), np.array([1.0, 2.0, 3.0]), obs_next,
                              terminated=[True, False, False], truncated=[False, True, False])
    batch, indices = buffer.sample(0)
    batch = algo._preprocess_batch(batch, buffer, indices)
    with torch.no_grad():
        v_next = algo.value_old(torch.as_tensor(obs_next)).numpy()
    returns = batch.returns.flatten().numpy()
    assert returns[0] == pytest.approx(1.0)  # terminated: no bootstrap
    np.testing.assert_allclose(returns[1:], np.array([2.0, 3.0]) + 0.9 * v_next[1:], rtol=1e-6)
    assert abs(v_next[1]) > 1e-4  # so the bootstrapped value is visible


# --- actions ------------------------------------------------------------------------------------


def test_bins_round_trip_exactly_and_other_actions_go_to_the_nearest_bin():
    for n in (2, 3, 11, 51):
        values = bin_values(n)
        assert values[0] == -1.0 and values[-1] == 1.0 and len(values) == n
        index = torch.arange(n)
        assert torch.equal(actions_to_bins(bins_to_actions(index, n), n), index)
        assert np.array_equal(bins_to_actions(index, n).numpy(), values)
    random_actions = torch.tensor([-1.0, -0.95, -0.91, 0.0, 0.31, 0.29, 1.0, 1.7, -3.0])
    nearest = actions_to_bins(random_actions, 11)  # bins at -1, -0.8, …, 0.8, 1
    assert nearest.tolist() == [0, 0, 0, 5, 7, 6, 10, 10, 0]


def test_acting_samples_in_training_steps_and_takes_the_per_dimension_mode_otherwise():
    torch.manual_seed(5)
    box = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 10.0], np.float32))
    algo = make_iq(action_space=box, num_bins=5, hidden_sizes=(8,))
    policy = algo.policy
    obs = np.repeat(random_obs(1), 4000, axis=0)
    batch = Batch(obs=obs, info={})
    with torch.no_grad():
        logits = policy.model.actor(policy.observation_tensor(obs[:1]))[0]
    probs = torch.softmax(logits, -1).numpy()  # [2, 5]

    greedy = policy(batch).act
    expected_mode = bin_values(5)[logits.argmax(-1).numpy()]
    assert (greedy == expected_mode).all()
    with policy_within_training_step(policy):
        sampled = policy(batch).act
    assert np.isin(sampled, bin_values(5)).all()  # stored actions are bin values in [-1, 1]
    for j in range(2):
        freq = np.bincount(actions_to_bins(torch.as_tensor(sampled[:, j]), 5).numpy(), minlength=5)
        np.testing.assert_allclose(freq / len(obs), probs[j], atol=0.03)
    # map_action scales the bins to the bounds; actions stay on the grid of each dimension
    mapped = policy.map_action(sampled)
    assert set(np.round(np.unique(mapped[:, 0]), 5)) <= {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert set(np.round(np.unique(mapped[:, 1]), 5)) <= {0.0, 2.5, 5.0, 7.5, 10.0}
    assert policy.add_exploration_noise(sampled, batch) is sampled  # sampling is the exploration


def test_discrete_acting_returns_integer_actions_of_the_space():
    torch.manual_seed(6)
    space = gym.spaces.Discrete(3, start=2)
    model = build_iq_network(obs_dim=3, act_dim=1, num_bins=3, hidden_sizes=(8,))
    policy = IQPolicy(model=model, action_space=space)
    batch = Batch(obs=random_obs(500), info={})
    with policy_within_training_step(policy):
        act = policy(batch).act
    assert act.dtype == np.int64 and set(np.unique(act)) <= {2, 3, 4} and len(np.unique(act)) > 1
    assert np.array_equal(policy.map_action(act), act)
    assert torch.equal(policy.action_representation(act).flatten(), torch.as_tensor(act) - 2)
    with pytest.raises(ValueError, match="discrete actions must lie in"):
        policy.action_representation(np.array([5]))


def test_gaussian_ablation_policy_log_prob_acting_and_update():
    torch.manual_seed(7)
    box = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    algo = make_iq(action_space=box, policy_type="gaussian", alpha=0.9)
    policy = algo.policy
    assert isinstance(policy.model.actor, GaussianActor)
    obs = random_obs(64)
    act = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32) * 2
    with torch.no_grad():
        params = policy.model.actor(policy.observation_tensor(obs))
        dist = torch.distributions.Normal(params[:, 0], params[:, 1].exp())
        np.testing.assert_allclose(policy.log_prob(obs, act).numpy(),
                                   dist.log_prob(torch.as_tensor(act)).sum(-1).numpy(), rtol=1e-5)
    assert np.array_equal(policy(Batch(obs=obs, info={})).act, params[:, 0].numpy())  # mode = mean
    assert np.abs(policy.map_action(act)).max() <= 1.0  # clipped only on the way to the env
    buffer = transition_batch(obs, act, np.ones(64), random_obs(64, seed=9), [False] * 64, [False] * 64)
    with policy_within_training_step(policy), torch_train_mode(algo):
        stats = algo.update(buffer, 32)
    assert np.isfinite(stats.loss) and stats.munchausen_mean < 0


# --- checkpoints --------------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_actions_and_updates(tmp_path):
    torch.manual_seed(8)
    algo = make_iq(action_space=gym.spaces.Box(-1, 1, (3,), np.float32), num_bins=7)
    obs = random_obs(200)
    buffer = transition_batch(obs, np.random.default_rng(2).uniform(-1, 1, (200, 3)),
                              np.random.default_rng(3).normal(size=200), random_obs(200, seed=4),
                              [False] * 200, [False] * 200)
    with policy_within_training_step(algo.policy), torch_train_mode(algo):
        for _ in range(5):
            algo.update(buffer, 64)
    path = save_checkpoint(algo, tmp_path / "iq.pt", env_step=123)

    torch.manual_seed(99)
    restored = make_iq(action_space=gym.spaces.Box(-1, 1, (3,), np.float32), num_bins=7)
    batch = Batch(obs=random_obs(50, seed=5), info={})
    assert not np.array_equal(restored.policy(batch).act, algo.policy(batch).act)
    assert load_checkpoint(restored, path)["env_step"] == 123

    assert np.array_equal(restored.policy(batch).act, algo.policy(batch).act)  # modes
    with policy_within_training_step(algo.policy), policy_within_training_step(restored.policy):
        torch.manual_seed(0)
        sampled = algo.policy(batch).act
        torch.manual_seed(0)
        assert np.array_equal(restored.policy(batch).act, sampled)
    for key, value in algo.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, restored.state_dict()[key]), key
    # optimizer state and targets came back too: the next update is identical
    sample, indices = buffer.sample(64)
    for agent in (algo, restored):
        b = agent._preprocess_batch(copy.deepcopy(sample), buffer, indices)
        with policy_within_training_step(agent.policy), torch_train_mode(agent):
            agent._update_with_batch(b)
    for (k, a), b in zip(algo.state_dict().items(), restored.state_dict().values(), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), k



# --- twin pairs (ours) ----------------------------------------------------------------------------


def test_twin_bootstraps_from_the_smaller_target_value_and_trains_both_pairs():
    """twin=True: a second, independently initialised (π, V) pair; the TD target uses min(V̄₁, V̄₂)
    at s′, each pair regresses on it with its own Munchausen term, and both pairs change."""
    torch.manual_seed(5)
    algo = make_iq(action_space=gym.spaces.Box(-1, 1, (2,), np.float32), num_bins=5, temperature=0.3,
                   alpha=0.9, polyak=0.5, twin=True)
    assert algo.twin_model is not None and algo.twin_model is not algo.policy.model
    first, second = algo.policy.model.state_dict(), algo.twin_model.state_dict()
    assert all(not torch.equal(first[k], second[k]) for k in first if k.endswith("weight"))
    rng = np.random.default_rng(1)
    n = 32
    obs, obs_next = random_obs(n, seed=1), random_obs(n, seed=2)
    buffer = transition_batch(obs, rng.uniform(-1, 1, (n, 2)), rng.normal(size=n), obs_next,
                              np.arange(n) % 5 == 0, [False] * n)
    before = copy.deepcopy(algo.twin_model.state_dict())
    with policy_within_training_step(algo.policy), torch_train_mode(algo):
        for _ in range(3):
            algo.update(buffer, n)
    assert any(not torch.equal(before[k], v) for k, v in algo.twin_model.state_dict().items())

    batch, indices = buffer.sample(0)
    batch = algo._preprocess_batch(batch, buffer, indices)
    with torch.no_grad():
        next_t = torch.as_tensor(batch.obs_next)
        v1, v2 = algo.value_old(next_t), algo.twin_value_old(next_t)
        assert not torch.allclose(v1, v2)
        expected = torch.as_tensor(batch.rew, dtype=torch.float32) + algo.gamma * torch.as_tensor(
            ~batch.terminated, dtype=torch.float32) * torch.minimum(v1, v2)
        returns = np.asarray(batch.returns).flatten()
        np.testing.assert_allclose(returns, expected.numpy(), rtol=1e-5, atol=1e-5)
        obs_t = torch.as_tensor(batch.obs)
        rep = algo.policy.action_representation(batch.act)
        own_terms = algo.munchausen_term(obs_t, rep), algo.munchausen_term(obs_t, rep, algo.twin_actor_old)
        assert not torch.allclose(*own_terms)
    loss, _, _ = algo.compute_loss(batch)
    single_loss, _, _ = algo._pair_loss(algo.policy.model, algo.actor_old, obs_t, rep, batch.returns, None)
    twin_loss, _, _ = algo._pair_loss(algo.twin_model, algo.twin_actor_old, obs_t, rep, batch.returns, None)
    torch.testing.assert_close(loss, single_loss + twin_loss)


def test_twin_survives_a_checkpoint_and_the_default_builds_no_twin(tmp_path):
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    assert make_iq(action_space=space).twin_model is None
    torch.manual_seed(6)
    algo = make_iq(action_space=space, num_bins=5, twin=True)
    obs = random_obs(64)
    buffer = transition_batch(obs, np.random.default_rng(3).uniform(-1, 1, (64, 2)),
                              np.random.default_rng(4).normal(size=64), random_obs(64, seed=7),
                              [False] * 64, [False] * 64)
    with policy_within_training_step(algo.policy), torch_train_mode(algo):
        algo.update(buffer, 32)
    path = save_checkpoint(algo, tmp_path / "twin.pt", env_step=1)
    torch.manual_seed(60)
    restored = make_iq(action_space=space, num_bins=5, twin=True)
    load_checkpoint(restored, path)
    for key, value in algo.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, restored.state_dict()[key]), key
    assert any(key.startswith("twin_model.") for key in algo.state_dict())
    with pytest.raises(TypeError, match="twin must be a bool, got str"):
        make_iq(action_space=space, twin="yes")


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.0, -0.01, float("nan"), float("inf")])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError, match=r"temperature \(τ\) must be a finite number > 0"):
        make_iq(temperature=temperature)


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 1.5])
def test_alpha_must_be_in_unit_interval(alpha):
    with pytest.raises(ValueError, match=r"alpha \(α\) must be in \[0, 1\), got"):
        make_iq(alpha=alpha)


@pytest.mark.parametrize("num_bins", [1, 0, -3])
def test_num_bins_must_be_at_least_two(num_bins):
    with pytest.raises(ValueError, match=r"num_bins .*must be an integer ≥ 2"):
        build_iq_network(obs_dim=3, act_dim=1, num_bins=num_bins)
    with pytest.raises(ValueError, match=r"num_bins must be an integer ≥ 2"):
        bin_values(num_bins)


@pytest.mark.parametrize(
    ("space", "match"),
    [
        (gym.spaces.MultiDiscrete([3, 3]), "IQ accepts gymnasium.spaces.Box .*and gymnasium.spaces.Discrete"),
        (gym.spaces.MultiBinary(2), "IQ accepts gymnasium.spaces.Box .*and gymnasium.spaces.Discrete"),
        (gym.spaces.Tuple((gym.spaces.Discrete(2),)), "IQ accepts gymnasium.spaces.Box"),
        (gym.spaces.Box(-1, 1, (1, 1)), "flat Box of shape"),
        (gym.spaces.Box(-np.inf, np.inf, (1,)), "finite bounds"),
    ],
)
def test_unsupported_action_spaces_are_rejected_by_name(space, match):
    model = build_iq_network(obs_dim=3, act_dim=1, hidden_sizes=(8,))
    with pytest.raises(ValueError, match=match):
        IQPolicy(model=model, action_space=space)


def test_mismatched_models_and_other_parameters_are_rejected():
    box = gym.spaces.Box(-1, 1, (2,))
    with pytest.raises(ValueError, match="action_space has 2 dimensions but the actor's act_dim is 1"):
        IQPolicy(model=build_iq_network(obs_dim=3, act_dim=1), action_space=box)
    with pytest.raises(ValueError, match=r"Discrete\(4\) action space needs a MultiCategoricalActor"):
        IQPolicy(model=build_iq_network(obs_dim=3, act_dim=1, num_bins=11),
                 action_space=gym.spaces.Discrete(4))
    with pytest.raises(ValueError, match=r"Discrete\(4\) action space needs a MultiCategoricalActor"):
        IQPolicy(model=build_iq_network(obs_dim=3, act_dim=1, policy_type="gaussian"),
                 action_space=gym.spaces.Discrete(4))
    with pytest.raises(ValueError, match="observation_space flattens to 4 values"):
        IQPolicy(model=build_iq_network(obs_dim=3, act_dim=2), action_space=box,
                 observation_space=gym.spaces.Box(-1, 1, (4,)))
    with pytest.raises(ValueError, match="policy_type must be one of"):
        build_iq_network(obs_dim=3, act_dim=1, policy_type="beta")
    with pytest.raises(ValueError, match="action_bound_method must be 'clip' or None"):
        IQPolicy(model=build_iq_network(obs_dim=3, act_dim=2), action_space=box, action_bound_method="tanh")
    with pytest.raises(TypeError, match="model must be an IQNetwork"):
        IQPolicy(model=torch.nn.Linear(3, 3), action_space=box)
    with pytest.raises(ValueError, match=r"polyak \(λ\) must be in \(0, 1\]"):
        make_iq(polyak=0.0)
    with pytest.raises(ValueError, match=r"munchausen_clip \(l₀\) must be None .* or a finite number < 0"):
        make_iq(munchausen_clip=0.5)
    with pytest.raises(ValueError, match="gamma must be in"):
        make_iq(gamma=1.5)
    with pytest.raises(ValueError, match="implicit_q_values needs a one-dimensional"):
        make_iq(action_space=box).implicit_q_values(random_obs(2))
    with pytest.raises(ValueError, match="observations must be finite"):
        make_iq().policy(Batch(obs=np.full((2, 3), np.nan, np.float32), info={}))


# --- Tianshou integration -----------------------------------------------------------------------


def test_one_update_through_a_real_collector_reduces_the_loss_on_its_batch():
    torch.manual_seed(10)
    env_space = gym.make("Pendulum-v1")
    algo = make_iq(hidden_sizes=(64, 64), lr=1e-4, alpha=0.9)
    assert env_space.action_space == algo.policy.action_space
    envs = DummyVectorEnv([lambda: gym.make("Pendulum-v1")])
    envs.seed(0)
    buffer = FastNullCheckVectorReplayBuffer(1000, 1, random_seed=0)
    collector = Collector(algo, envs, buffer, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=300, random=True)
    with policy_within_training_step(algo.policy):
        collector.collect(n_step=200)
    assert np.isin(buffer.act[300:500], bin_values(11)).all()  # policy actions: bin values
    assert not np.isin(buffer.act[:300], bin_values(11)).all()  # warm-up: arbitrary in [-1, 1]
    assert buffer.truncated[:500].sum() == 2 and not buffer.terminated[:500].any()

    batch, indices = buffer.sample(128)
    batch = algo._preprocess_batch(batch, buffer, indices)
    with torch.no_grad():
        target = algo.td_target(batch)

        def loss_against_fixed_target() -> float:
            return (algo.implicit_q(batch.obs, batch.act) - target).pow(2).mean().item()

    before = loss_against_fixed_target()
    old_target_params = [p.detach().clone() for p in algo.value_old.parameters()]
    with policy_within_training_step(algo.policy), torch_train_mode(algo):
        stats = algo._update_with_batch(batch)
    after = loss_against_fixed_target()
    assert stats.loss == pytest.approx(before, rel=1e-5)
    assert after < before
    # the targets moved by exactly λ towards the updated online network
    for old, new, online in zip(old_target_params, algo.value_old.parameters(),
                                algo.policy.model.value.parameters(), strict=True):
        torch.testing.assert_close(new, (1 - 0.005) * old + 0.005 * online)
    assert stats.entropy > 0 and stats.munchausen_mean < 0


def test_prioritized_replay_receives_absolute_residuals_as_priorities():
    torch.manual_seed(11)
    algo = make_iq()
    envs = DummyVectorEnv([lambda: gym.make("Pendulum-v1")])
    buffer = PrioritizedVectorReplayBuffer(500, 1, alpha=1.0, beta=0.4)
    collector = Collector(algo, envs, buffer, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=200, random=True)
    np.random.seed(0)
    batch, indices = buffer.sample(32)
    weight_in = np.asarray(batch.weight).copy()
    batch = algo._preprocess_batch(batch, buffer, indices)
    with torch.no_grad():
        residual = algo.implicit_q(batch.obs, batch.act) - algo.td_target(batch)
        expected_loss = (torch.as_tensor(weight_in) * residual.pow(2)).mean().item()
    with policy_within_training_step(algo.policy), torch_train_mode(algo):
        stats = algo._update_with_batch(batch)
    algo._postprocess_batch(batch, buffer, indices)
    assert stats.loss == pytest.approx(expected_loss, rel=1e-5)  # importance-weighted Eq. 2
    last = {i: k for k, i in enumerate(indices)}  # duplicate indices: the last write wins
    for i, k in last.items():
        assert buffer.weight[i] == pytest.approx(abs(residual[k].item()) + np.finfo(np.float32).eps.item(),
                                                 rel=1e-4)


# --- examples -----------------------------------------------------------------------------------


def load_example(name: str):
    return load_script(f"examples/{name}.py")


@pytest.mark.parametrize("name", ["mujoco_iq", "dmc_iq"])
def test_example_help_documents_every_flag(name):
    parser = load_example(name).build_parser()
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
        for flag in action.option_strings:
            assert flag in text
    for flag in ("--algo", "--temperature", "--alpha", "--num-bins", "--policy-type", "--polyak",
                 "--summary-json", "--sac-actor-lr", "--munchausen-clip", "--task"):
        assert flag in text
    assert "{iq,miq,sac}" in text


TINY = ["--total-steps", "300", "--warmup", "200", "--epoch-steps", "100", "--batch-size", "32",
        "--hidden-sizes", "32,32", "--eval-episodes", "1", "--num-test-envs", "1",
        "--test-episodes", "1", "--no-progress", "--seed", "2"]


@pytest.mark.parametrize(
    ("name", "task", "algo", "extra"),
    [
        ("dmc_iq", "cartpole-swingup", "miq", []),
        ("mujoco_iq", "Hopper-v5", "iq", ["--policy-type", "gaussian"]),
        ("mujoco_iq", "Hopper-v5", "sac", []),
    ],
)
def test_examples_run_at_a_tiny_budget_and_write_the_summary(tmp_path, name, task, algo, extra):
    summary_path = tmp_path / "summary.json"
    summary = load_example(name).main(
        [*TINY, "--algo", algo, "--logdir", str(tmp_path / "log"), "--summary-json", str(summary_path),
         *extra]
    )
    on_disk = json.loads(summary_path.read_text())
    assert on_disk == summary
    expected_name = algo + ("-gaussian" if extra else "")
    assert on_disk["task"] == task and on_disk["algorithm"] == expected_name
    assert on_disk["env_steps"] == 300 and on_disk["seed"] == 2
    assert np.isfinite(on_disk["eval_return_mean"]) and on_disk["gradient_updates_per_second"] > 0
    run_dir = tmp_path / "log" / task / expected_name / "seed_2"
    assert list(run_dir.glob("events.out.tfevents.*"))
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert payload["env_step"] == 300 and payload["gradient_step"] == 100
    key = "policy.actor.mu.model.0.weight" if algo == "sac" else "policy.model.value.net.0.weight"
    assert np.isfinite(payload["algorithm"][key].numpy()).all()


def test_example_rejects_alpha_for_plain_iq():
    with pytest.raises(SystemExit, match="--algo iq is α = 0"):
        load_example("mujoco_iq").main(["--algo", "iq", "--alpha", "0.5"])


# --- learning -----------------------------------------------------------------------------------

PENDULUM_THRESHOLD = -400.0
"""Mean greedy return over 10 episodes after 10k env steps; a uniformly random policy gets ≈ −1200
and a good policy ≈ −150."""


@pytest.mark.slow
def test_m_iq_learns_pendulum(tmp_path):
    summary = load_example("mujoco_iq").main([
        "--task", "Pendulum-v1", "--total-steps", "10000", "--warmup", "1000", "--epoch-steps", "3000",
        "--eval-episodes", "10", "--test-episodes", "2", "--logdir", str(tmp_path), "--no-progress",
        "--seed", "1",
    ])
    assert summary["algorithm"] == "miq"
    assert summary["eval_return_mean"] > PENDULUM_THRESHOLD, summary
