import gymnasium as gym
import numpy as np
import pytest
import torch
from tianshou.data import Batch, Collector
from tianshou.env import DummyVectorEnv
from tianshou.utils.torch_utils import policy_within_training_step, torch_train_mode

from tianshou_qmle.data.buffer import (
    ARGMAX_PRIOR_KEY,
    ArgmaxPriorReplayBuffer,
    ArgmaxPriorVectorReplayBuffer,
    FastNullCheckVectorReplayBuffer,
    PrioritizedArgmaxPriorReplayBuffer,
    PrioritizedArgmaxPriorVectorReplayBuffer,
    batch_has_null,
    make_replay_buffer,
)

from .conftest import make_qmle


def pendulum_envs(n: int, seed: int = 0) -> DummyVectorEnv:
    envs = DummyVectorEnv([lambda: gym.make("Pendulum-v1")] * n)
    envs.seed([seed + i for i in range(n)])
    return envs


def collect(num_envs: int, prioritized: bool, steps: int = 120, seed: int = 0):
    torch.manual_seed(seed)
    np.random.seed(seed)
    algo = make_qmle(m_target=8, m_greedy=8)
    buf = make_replay_buffer(size=600, num_envs=num_envs, prioritized=prioritized, seed=seed)
    collector = Collector(algo, pendulum_envs(num_envs, seed), buf, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=steps)
    return algo, buf


CASES = [(1, False), (1, True), (3, False), (3, True)]


@pytest.mark.parametrize(("num_envs", "prioritized"), CASES)
def test_prior_is_initialised_to_the_taken_action(num_envs, prioritized):
    _, buf = collect(num_envs, prioritized)
    assert len(buf) == 120
    idx = buf.sample_indices(0)
    stored = buf[idx]
    assert stored.act_max.dtype == np.float32
    np.testing.assert_allclose(stored.act_max, stored.act, rtol=0, atol=1e-7)
    assert np.abs(stored.act).max() <= 1.0  # the normalised box, before map_action


@pytest.mark.parametrize(("num_envs", "prioritized"), CASES)
def test_target_search_refreshes_priors_of_sampled_indices_only(num_envs, prioritized):
    algo, buf = collect(num_envs, prioritized)
    before = buf._meta[ARGMAX_PRIOR_KEY].copy()
    batch, idx = buf.sample(48)
    algo._preprocess_batch(batch, buf, idx)
    after = buf._meta[ARGMAX_PRIOR_KEY]
    untouched = np.setdiff1d(np.arange(len(after)), idx)
    np.testing.assert_array_equal(after[untouched], before[untouched])
    _, refined, _ = algo._argmax_targets
    last_write = {i: k for k, i in enumerate(idx)}  # duplicates: the last write wins
    rows = np.array(list(last_write.values()))
    np.testing.assert_allclose(after[list(last_write)], refined.numpy()[rows], atol=1e-7)
    # the refined prior is never worse than the old one under the target Q
    target = algo.target_model.critic
    with torch.no_grad():
        obs_next = torch.as_tensor(buf.obs_next[idx], dtype=torch.float32)
        q_new = target(obs_next, torch.as_tensor(after[idx]))
        q_old = target(obs_next, torch.as_tensor(before[idx]))
    assert torch.all(q_new >= q_old - 1e-5)
    assert not np.array_equal(after[idx], before[idx])


def test_search_without_the_stored_prior_leaves_priors_untouched():
    algo, buf = collect(1, True)
    algo.use_stored_prior = False
    before = buf._meta[ARGMAX_PRIOR_KEY].copy()
    batch, idx = buf.sample(48)
    algo._preprocess_batch(batch, buf, idx)
    np.testing.assert_array_equal(buf._meta[ARGMAX_PRIOR_KEY], before)
    _, refined, kept = algo._argmax_targets
    assert kept == 0.0 and refined.shape == (48, 1)
    assert not np.array_equal(refined.numpy(), before[idx])  # fresh candidates won, not the priors


@pytest.mark.parametrize(("num_envs", "prioritized"), CASES)
def test_priors_survive_an_hdf5_round_trip(num_envs, prioritized, tmp_path):
    algo, buf = collect(num_envs, prioritized)
    batch, idx = buf.sample(32)
    algo._preprocess_batch(batch, buf, idx)
    path = tmp_path / "buf.h5"
    buf.save_hdf5(str(path))
    loaded = type(buf).load_hdf5(str(path))
    assert type(loaded) is type(buf)
    assert len(loaded) == len(buf)
    np.testing.assert_array_equal(loaded._meta[ARGMAX_PRIOR_KEY], buf._meta[ARGMAX_PRIOR_KEY])
    np.testing.assert_array_equal(loaded.act, buf.act)
    assert loaded.hasnull() is False
    # the loaded buffer keeps working with a collector
    collector = Collector(algo, pendulum_envs(num_envs, 5), loaded, exploration_noise=True)
    collector.reset(reset_buffer=False)
    collector.collect(n_step=30)
    assert len(loaded) == 150
    sample, _ = loaded.sample(16)
    assert sample.act_max.shape == (16, 1)


def test_tianshou_vector_buffer_would_drop_the_prior_but_ours_keeps_it():
    from tianshou.data import VectorReplayBuffer

    batch = Batch(
        obs=np.zeros((2, 3), np.float32), act=np.ones((2, 1), np.float32), rew=np.zeros(2),
        terminated=np.zeros(2, bool), truncated=np.zeros(2, bool), obs_next=np.zeros((2, 3), np.float32),
        info=Batch(), act_max=np.full((2, 1), 0.5, np.float32),
    )
    theirs = VectorReplayBuffer(10, 2)
    theirs.add(batch)
    assert ARGMAX_PRIOR_KEY not in theirs._meta.get_keys()
    ours = ArgmaxPriorVectorReplayBuffer(10, 2)
    ours.add(batch)
    assert np.all(ours._meta[ARGMAX_PRIOR_KEY][[0, 5]] == 0.5)  # a given prior is kept


def _transition(obs_value: float) -> Batch:
    return Batch(
        obs=np.full((1, 2), obs_value, np.float32), act=np.zeros((1, 1), np.float32), rew=np.zeros(1),
        terminated=np.zeros(1, bool), truncated=np.zeros(1, bool),
        obs_next=np.zeros((1, 2), np.float32), info=Batch(),
    )


@pytest.mark.parametrize(
    "factory",
    [
        lambda: ArgmaxPriorVectorReplayBuffer(20, 1),
        lambda: PrioritizedArgmaxPriorVectorReplayBuffer(20, 1),
        lambda: ArgmaxPriorReplayBuffer(20),
        lambda: PrioritizedArgmaxPriorReplayBuffer(20),
        lambda: FastNullCheckVectorReplayBuffer(20, 1),
    ],
)
def test_hasnull_tracks_nans_without_scanning(factory, monkeypatch):
    buf = factory()
    vector = hasattr(buf, "buffers")
    assert (ARGMAX_PRIOR_KEY in buf._reserved_keys) != isinstance(buf, FastNullCheckVectorReplayBuffer)
    for v in (1.0, 2.0):
        buf.add(_transition(v) if vector else _transition(v)[0])
    # answering must not read the stored data back
    monkeypatch.setattr(type(buf), "__getitem__", lambda *a, **k: pytest.fail("hasnull scanned"))
    assert buf.hasnull() is False
    monkeypatch.undo()
    buf.add(_transition(np.nan) if vector else _transition(np.nan)[0])
    assert buf.hasnull() is True
    buf.reset()
    assert buf.hasnull() is False


@pytest.mark.parametrize(
    "batch",
    [
        Batch(obs=np.zeros((2, 3)), rew=np.ones(2)),
        Batch(obs=np.zeros((2, 3)), rew=np.array([1.0, np.nan])),
        Batch(obs=np.zeros(2), info=Batch(cost=np.ones(2), inner=Batch(x=np.array([0.0, np.nan])))),
        Batch(obs=np.zeros(2), info=Batch(cost=np.ones(2), inner=Batch(x=np.zeros(2)))),
        Batch(obs=np.zeros(2), info=Batch(name=np.array(["a", None], dtype=object))),
        Batch(obs=np.zeros(2), done=np.array([True, False]), step=np.array([3, 4])),
        Batch(obs=np.zeros((2, 3)), rew=np.ones(2))[0],  # scalar leaves
        Batch(obs=np.zeros((2, 3)), rew=np.array([np.nan, 1.0]))[0],
        Batch(),
    ],
)
def test_batch_has_null_agrees_with_tianshou(batch):
    assert batch_has_null(batch) is batch.hasnull()


def test_same_seed_samples_same_indices_and_different_seeds_differ():
    def indices(seed):
        buf = ArgmaxPriorVectorReplayBuffer(100, 2, random_seed=seed)
        for v in range(30):
            b = _transition(float(v))
            buf.add(Batch.cat([b, b]))
        return buf.sample_indices(20)

    np.testing.assert_array_equal(indices(3), indices(3))
    assert not np.array_equal(indices(3), indices(4))


def test_bad_sizes_raise_naming_what_the_user_passed():
    with pytest.raises(ValueError, match="buffer_num"):
        ArgmaxPriorVectorReplayBuffer(10, 0)
    with pytest.raises(ValueError, match=r"the buffer size \(2\) must be at least the number of"):
        PrioritizedArgmaxPriorVectorReplayBuffer(2, 3)
    with pytest.raises(ValueError, match=r"size must be an integer ≥ num_envs \(3\).*got 2"):
        make_replay_buffer(size=2, num_envs=3)
    with pytest.raises(ValueError, match="num_envs must be an integer ≥ 1, got 0"):
        make_replay_buffer(size=10, num_envs=0)


@pytest.mark.parametrize(("space", "good", "bad", "message"), [
    (gym.spaces.Box(-2.0, 2.0, (2,)), [[0.5, -1.0]], [[2.0, 0.0]], r"normalised box \[-1, 1\]\^2"),
    (gym.spaces.Box(-2.0, 2.0, (2,)), [[0.5, -1.0]], [[0.5, 0.5, 0.5]], "must have 2 values"),
    (gym.spaces.MultiDiscrete([3, 3]), [[0.0, 1.0]], [[1.5, 0.0]], r"normalised box \[-1, 1\]\^2"),
    (gym.spaces.Discrete(5), [[4.0]], [[5.0]], "item indices 0 … 4"),
    (gym.spaces.Discrete(5), [[4.0]], [[1.5]], "item indices 0 … 4"),
])
def test_actions_outside_the_spaces_convention_are_refused(space, good, bad, message):
    buf = make_replay_buffer(size=10, num_envs=1, action_space=space, prioritized=False)

    def transition(act):
        return Batch(obs=np.zeros((1, 3)), act=np.asarray(act, dtype=np.float32), rew=np.zeros(1),
                     terminated=np.zeros(1, bool), truncated=np.zeros(1, bool), obs_next=np.zeros((1, 3)),
                     info=[{}])

    buf.add(transition(good))
    with pytest.raises(ValueError, match=message):
        buf.add(transition(bad))
    assert len(buf) == 1  # nothing of the refused transition was stored


def test_update_on_an_empty_buffer_is_refused_and_an_oversized_batch_warns():
    algo = make_qmle()
    buf = make_replay_buffer(size=10, num_envs=1)
    with pytest.raises(ValueError, match="cannot update from an empty replay buffer"):
        algo.update(buf, 8)
    buf.add(Batch(obs=np.zeros((1, 3)), act=np.zeros((1, 1), dtype=np.float32), rew=np.zeros(1),
                  terminated=np.zeros(1, bool), truncated=np.zeros(1, bool), obs_next=np.zeros((1, 3)),
                  info=[{}]))
    with policy_within_training_step(algo.policy), torch_train_mode(algo.policy), \
            pytest.warns(UserWarning, match="a batch of 8 from a buffer of 1 transitions repeats them"):
        algo.update(buf, 8)


def test_ignore_obs_next_halves_the_observation_storage():
    full = make_replay_buffer(size=100, num_envs=1)
    lean = make_replay_buffer(size=100, num_envs=1, ignore_obs_next=True)
    for buf in (full, lean):
        for i in range(5):
            buf.add(Batch(obs=np.full((1, 3), i), act=np.zeros((1, 1), dtype=np.float32), rew=np.zeros(1),
                          terminated=np.zeros(1, bool), truncated=np.zeros(1, bool),
                          obs_next=np.full((1, 3), i + 1), info=[{}]))
    assert "obs_next" in full._meta.get_keys() and "obs_next" not in lean._meta.get_keys()
    np.testing.assert_array_equal(lean[np.arange(4)].obs_next, full[np.arange(4)].obs_next)


@pytest.mark.parametrize(("num_envs", "prioritized"), CASES)
def test_priors_survive_pickle(num_envs, prioritized):
    import pickle

    algo, buf = collect(num_envs, prioritized, steps=60)
    batch, idx = buf.sample(16)
    algo._preprocess_batch(batch, buf, idx)
    loaded = pickle.loads(pickle.dumps(buf))
    assert type(loaded) is type(buf) and len(loaded) == len(buf)
    np.testing.assert_array_equal(loaded._meta[ARGMAX_PRIOR_KEY], buf._meta[ARGMAX_PRIOR_KEY])
    loaded.write_argmax_prior(np.array([0]), np.full((1, 1), 0.25, np.float32))
    assert loaded[np.array([0])].act_max[0, 0] == np.float32(0.25)
    assert np.shares_memory(loaded.buffers[0].done, loaded.done)


@pytest.mark.parametrize("route", ["pickle", "hdf5"])
def test_loaded_vector_buffer_keeps_episode_boundaries_for_new_data(route, tmp_path):
    import pickle

    _, buf = collect(3, False, steps=60)
    if route == "pickle":
        loaded = pickle.loads(pickle.dumps(buf))
    else:
        buf.save_hdf5(str(tmp_path / "b.h5"))
        loaded = type(buf).load_hdf5(str(tmp_path / "b.h5"))
    for child in loaded.buffers:
        assert np.shares_memory(child.done, loaded.done)
    ending = Batch(
        obs=np.zeros((3, 3), np.float32), act=np.zeros((3, 1), np.float32), rew=np.zeros(3),
        terminated=np.array([True, False, False]), truncated=np.zeros(3, bool),
        obs_next=np.zeros((3, 3), np.float32), info=Batch(),
    )
    loaded.add(ending)
    # env 0's episode just ended, so it has no unfinished transition; envs 1 and 2 do
    assert len(loaded.unfinished_index()) == 2


def test_importance_weights_are_normalised_by_the_batch_maximum_as_documented():
    buf = make_replay_buffer(size=200, num_envs=1, prioritized=True, alpha=0.6, beta=0.2, seed=0)
    for i in range(100):
        buf.add(Batch(obs=np.full((1, 3), i), act=np.zeros((1, 1), dtype=np.float32), rew=np.zeros(1),
                      terminated=np.zeros(1, bool), truncated=np.zeros(1, bool),
                      obs_next=np.full((1, 3), i + 1), info=[{}]))
    buf.update_weight(np.arange(100), np.linspace(0.01, 5.0, 100))
    np.random.seed(0)
    batch, idx = buf.sample(64)
    priorities_alpha = buf.weight[idx]  # p^α, what the segment tree holds
    expected = priorities_alpha ** (-0.2) / (priorities_alpha ** (-0.2)).max()
    np.testing.assert_allclose(batch.weight, expected, rtol=1e-5)
    assert batch.weight.max() == pytest.approx(1.0)
    # against the buffer-wide normalisation of the paper: one common factor ≥ 1 per batch
    buffer_wide = priorities_alpha ** (-0.2) / (buf.weight[np.arange(100)] ** (-0.2)).max()
    ratio = batch.weight / buffer_wide
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
    assert ratio[0] >= 1.0
