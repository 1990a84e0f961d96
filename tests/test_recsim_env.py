import time
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from tianshou.algorithm.algorithm_base import Policy
from tianshou.data import Batch, Collector, VectorReplayBuffer

from tianshou_qmle.env.recsim import (
    RecSimEnv,
    click_probability,
    interest_delta,
    make_recsim_env,
    make_recsim_vector_envs,
)

from .conftest import mean_return

torch.set_num_threads(1)

SMALL = {"num_items": 500, "num_categories": 8, "num_extra_dims": 3}


def rollout(env: RecSimEnv, actions: list[int], seed: int) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    obs, _ = env.reset(seed=seed)
    observations, rewards, clicks = [obs], [], []
    for action in actions:
        obs, reward, _, _, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        clicks.append(info["clicked"])
    return np.stack(observations), np.array(rewards), clicks


def test_spaces_shapes_and_dtypes_with_paper_defaults():
    start = time.perf_counter()
    env = RecSimEnv()
    build_seconds = time.perf_counter() - start
    assert build_seconds < 1.0  # 10,000 items; measured ≈ 0.01 s
    assert env.action_space == gym.spaces.Discrete(10_000)
    assert env.observation_space.shape == (30,) and env.observation_space.dtype == np.float32
    assert env.item_embeddings.shape == (10_000, 30) and env.item_embeddings.dtype == np.float32
    assert env.action_representations.shape == (10_000, 45)  # SAVO Fig. 11: a 45-D space
    np.testing.assert_array_equal(env.action_representations[:, :30], env.item_embeddings)
    assert env.item_categories.shape == (10_000,) and env.item_categories.dtype == np.int64
    assert set(np.unique(env.item_categories)) == set(range(30))
    with pytest.raises(ValueError, match="read-only"):
        env.item_embeddings[0, 0] = 5.0

    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (30,) and env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(np.int64(3))
    assert env.observation_space.contains(obs) and reward in (0.0, 1.0)
    assert isinstance(info["clicked"], bool) and reward == float(info["clicked"])
    assert 0.0 < info["click_probability"] < 1.0 and info["item"] == 3
    assert not terminated and not truncated


def test_items_sit_around_their_category_centre():
    env = RecSimEnv(**SMALL, item_spread=0.1)
    own = env.item_embeddings[np.arange(env.num_items), env.item_categories]
    assert np.all(env.item_embeddings >= -1.0) and np.all(env.item_embeddings <= 1.0)
    assert abs(own.mean() - 0.96) < 0.03  # centre 1.0, clipped above: E = 1 − σ/√(2π) ≈ 0.96
    # every coordinate other than the category's is pure N(0, 0.1²) noise
    others = env.item_embeddings.copy()
    others[np.arange(env.num_items), env.item_categories] = np.nan
    assert abs(np.nanstd(others) - 0.1) < 0.01


def test_catalogue_shared_by_catalogue_seed_not_by_user_seed():
    a, b = make_recsim_env(seed=1, **SMALL), make_recsim_env(seed=2, **SMALL)
    np.testing.assert_array_equal(a.action_representations, b.action_representations)
    np.testing.assert_array_equal(a.item_categories, b.item_categories)
    other = RecSimEnv(**SMALL, catalogue_seed=1)
    assert not np.allclose(a.item_embeddings, other.item_embeddings)
    assert not np.array_equal(a.reset(seed=1)[0], a.reset(seed=2)[0])


def test_reset_seed_reproduces_whole_trajectories():
    actions = [int(a) for a in np.random.default_rng(0).integers(SMALL["num_items"], size=20)]
    env_a, env_b = RecSimEnv(**SMALL), RecSimEnv(**SMALL)
    obs_a, rew_a, clicks_a = rollout(env_a, actions, seed=7)
    obs_b, rew_b, clicks_b = rollout(env_b, actions, seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    assert clicks_a == clicks_b
    obs_c, _, _ = rollout(env_a, actions, seed=8)
    assert not np.array_equal(obs_a, obs_c)


def test_click_probability_is_the_softmax_over_item_and_skip_scores():
    env = RecSimEnv(**SMALL, skip_score=0.5)
    interest = np.linspace(-0.9, 0.9, SMALL["num_categories"])
    env.reset(seed=0, options={"user_interest": interest})
    item = 11
    score = float(interest @ env.item_embeddings[item].astype(np.float64))
    expected = np.exp(score) / (np.exp(score) + np.exp(0.5))
    _, _, _, _, info = env.step(item)
    assert info["score"] == pytest.approx(score)
    assert info["click_probability"] == pytest.approx(expected)
    assert click_probability(0.5, 0.5) == pytest.approx(0.5)
    np.testing.assert_allclose(env.click_probabilities(interest)[item], expected)


def test_click_frequency_matches_click_probability():
    # a frozen user (y = 0) in one long episode: every step has the same click probability
    env = RecSimEnv(**SMALL, interest_step=0.0, episode_length=2000)
    env.reset(seed=3)
    item = env.greedy_item()
    clicks = [env.step(item)[4]["clicked"] for _ in range(2000)]
    p = env.click_probabilities()[item]
    assert abs(np.mean(clicks) - p) < 4 * np.sqrt(p * (1 - p) / 2000)  # 4 standard errors


def hand_built_env(score_sign: float) -> tuple[RecSimEnv, np.ndarray, int]:
    """A user who always clicks (skip score −50), with an item whose score is ≥ 1 or ≤ −1."""
    env = RecSimEnv(**SMALL, skip_score=-50.0, interest_step=0.4)
    item = 0
    category = env.item_categories[item]
    interest = np.full(SMALL["num_categories"], 0.0)
    interest[category] = score_sign * 1.0
    interest += score_sign * 0.5 * np.sign(env.item_embeddings[item])  # push |score| past 1
    interest = np.clip(interest, -1.0, 1.0)
    assert score_sign * float(interest @ env.item_embeddings[item]) >= 1.0
    return env, interest, item


def test_interest_moves_toward_a_liked_clicked_item_by_the_formula():
    env, interest, item = hand_built_env(+1.0)  # P(toward) = (1 + score)/2 ≥ 1
    env.reset(seed=0, options={"user_interest": interest})
    obs, reward, _, _, info = env.step(item)
    e_i = env.item_embeddings[item].astype(np.float64)
    expected = interest + 0.4 * (1.0 - np.abs(interest)) * (e_i - interest)
    assert info["clicked"] and reward == 1.0
    np.testing.assert_allclose(obs, expected, atol=1e-6)
    np.testing.assert_allclose(interest_delta(interest, e_i, 0.4), expected - interest)
    # the interest got closer to the item
    assert np.linalg.norm(obs - e_i) < np.linalg.norm(interest - e_i)


def test_interest_moves_away_from_a_disliked_clicked_item_by_the_formula():
    env, interest, item = hand_built_env(-1.0)  # P(toward) = (1 + score)/2 ≤ 0
    env.reset(seed=0, options={"user_interest": interest})
    obs, _, _, _, info = env.step(item)
    e_i = env.item_embeddings[item].astype(np.float64)
    expected = np.clip(interest - 0.4 * (1.0 - np.abs(interest)) * (e_i - interest), -1.0, 1.0)
    assert info["clicked"]
    np.testing.assert_allclose(obs, expected, atol=1e-6)


def test_a_skip_leaves_the_interest_unchanged():
    env = RecSimEnv(**SMALL, skip_score=50.0)  # p_click ≈ e^-49: the user always skips
    obs0, _ = env.reset(seed=0)
    obs, reward, _, _, info = env.step(env.greedy_item())
    assert not info["clicked"] and reward == 0.0
    np.testing.assert_array_equal(obs, obs0)


def test_interest_stays_in_bounds_and_episodes_truncate_at_the_horizon():
    env = RecSimEnv(**SMALL, interest_step=1.0, skip_score=-3.0, episode_length=20)
    rng = np.random.default_rng(0)
    lengths = []
    for episode in range(20):
        obs, _ = env.reset(seed=episode)
        steps, truncated = 0, False
        while not truncated:
            item = env.greedy_item() if rng.random() < 0.5 else int(rng.integers(env.num_items))
            obs, _, terminated, truncated, _ = env.step(item)
            assert not terminated and env.observation_space.contains(obs)
            steps += 1
        lengths.append(steps)
    assert lengths == [20] * 20
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_greedy_items_earn_clearly_more_than_random_items_and_move_the_user():
    env = RecSimEnv()  # paper defaults: 10,000 items, 30 categories, 20 steps
    random_return = mean_return(env, lambda e, rng: int(rng.integers(e.num_items)), episodes=10, seed=0)
    greedy_return = mean_return(env, lambda e, rng: e.greedy_item(), episodes=10, seed=0)
    # Measured (episodes seeded 0..9): random 5.8, greedy 14.8 clicks per 20 steps (20 episodes: 5.5 / 14.05).
    # Bounds from the model, not from the run: a random item scores ≈ 0, p = sigmoid(0 − 1) = 0.27, i.e.
    # ≈ 5.4 clicks; the greedy item scores ≥ max_c e_u[c] ≈ 1 (≥ 0.9 for 30 uniform coordinates), p ≥ 0.5.
    assert random_return < 8.0
    assert greedy_return > 10.0
    # the state matters: following the greedy item for an episode changes the user's interest
    obs0, _ = env.reset(seed=0)
    for _ in range(env.episode_length):
        obs, *_ = env.step(env.greedy_item())
    assert np.abs(obs - obs0).max() > 0.3


def test_greedy_item_is_the_argmax_of_click_probability():
    env = RecSimEnv(**SMALL)
    env.reset(seed=4)
    probabilities = env.click_probabilities()
    assert env.greedy_item() == int(np.argmax(probabilities))
    interest = -env.user_interest
    assert env.greedy_item(interest) == int(np.argmax(env.click_probabilities(interest)))
    with pytest.raises(ValueError, match="user_interest"):
        env.greedy_item(np.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_items": 1}, ValueError, "num_items"),
        ({"num_items": 2.5}, ValueError, "num_items"),
        ({"num_categories": 0}, ValueError, "num_categories"),
        ({"num_extra_dims": -1}, ValueError, "num_extra_dims"),
        ({"episode_length": 0}, ValueError, "episode_length"),
        ({"interest_step": 1.5}, ValueError, "interest_step"),
        ({"interest_step": "big"}, TypeError, "interest_step"),
        ({"item_spread": -0.1}, ValueError, "item_spread"),
        ({"skip_score": None}, TypeError, "skip_score"),
        ({"skip_score": float("inf")}, ValueError, "skip_score"),
        ({"catalogue_seed": -1}, ValueError, "catalogue_seed"),
    ],
)
def test_invalid_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        RecSimEnv(**{**SMALL, **kwargs})


def test_invalid_actions_and_start_interests_raise():
    env = RecSimEnv(**SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="500"):
        env.step(500)
    with pytest.raises(ValueError, match="-1"):
        env.step(-1)
    with pytest.raises(ValueError, match="integer"):
        env.step(1.5)
    with pytest.raises(ValueError, match="integer"):
        env.step(np.array([1, 2]))
    with pytest.raises(ValueError, match="user_interest"):
        env.reset(options={"user_interest": np.full(SMALL["num_categories"], 2.0)})
    with pytest.raises(ValueError, match="user_interest"):
        env.reset(options={"user_interest": np.zeros(2)})


class GreedyItemPolicy(Policy):
    """Recommends argmax_i ⟨obs, e_i⟩ for every env in the batch."""

    def __init__(self, *, action_space: gym.Space, item_embeddings: np.ndarray) -> None:
        super().__init__(action_space=action_space)
        self.item_embeddings = item_embeddings

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        return Batch(act=np.argmax(np.asarray(batch.obs) @ self.item_embeddings.T, axis=-1), state=state)


def test_tianshou_collector_over_seeded_vector_envs():
    kwargs = {**SMALL, "episode_length": 5}
    train_envs, test_envs = make_recsim_vector_envs(num_train_envs=2, num_test_envs=3, seed=5, **kwargs)
    assert train_envs.env_num == 2 and test_envs.env_num == 3
    again, _ = make_recsim_vector_envs(num_train_envs=2, num_test_envs=1, seed=5, **kwargs)
    obs_train, obs_test = train_envs.reset()[0], test_envs.reset()[0]
    np.testing.assert_array_equal(obs_train, again.reset()[0])  # user seeds 5, 6 both times
    assert not np.array_equal(obs_train[0], obs_train[1])
    assert not np.array_equal(obs_train[0], obs_test[0])  # test users use seeds 10005, ...

    env = RecSimEnv(**kwargs)
    policy = GreedyItemPolicy(action_space=env.action_space, item_embeddings=env.item_embeddings)
    buffer = VectorReplayBuffer(100, buffer_num=2)
    stats = Collector(policy, train_envs, buffer).collect(n_step=20, reset_before_collect=True)
    assert stats.n_collected_steps == 20 and len(buffer) == 20
    batch = buffer[buffer.sample_indices(0)]  # all stored transitions
    assert batch.obs.shape == (20, 8) and batch.obs.dtype == np.float32
    assert batch.act.shape == (20,) and np.issubdtype(batch.act.dtype, np.integer)
    assert set(np.unique(batch.rew)) <= {0.0, 1.0}
    assert int(batch.truncated.sum()) == 4  # 2 envs × 20 steps / horizon 5
    np.testing.assert_array_equal(batch.act, np.argmax(batch.obs @ env.item_embeddings.T, axis=-1))
    train_envs.close(), test_envs.close(), again.close()


def test_vector_env_kind_is_validated():
    with pytest.raises(ValueError, match="subproc"):
        make_recsim_vector_envs(num_train_envs=1, num_test_envs=1, seed=0, vector_env="threads", **SMALL)
