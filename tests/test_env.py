import numpy as np
import pytest

from tianshou_qmle.env import make_dmc_env, make_dmc_vector_envs, parse_dmc_task


def test_parse_task_names():
    assert parse_dmc_task("cartpole-swingup") == ("cartpole", "swingup")
    assert parse_dmc_task("ball_in_cup-catch") == ("ball_in_cup", "catch")
    assert parse_dmc_task("walker/walk") == ("walker", "walk")
    with pytest.raises(ValueError, match="domain-task"):
        parse_dmc_task("cartpole")


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown DeepMind Control task"):
        make_dmc_env("cartpole-fly")


def test_flat_float32_observations_and_time_limit_truncation():
    env = make_dmc_env("cartpole-swingup", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape == (5,)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
    assert steps == 1000 and truncated and not terminated  # bootstrap through it


def test_same_seed_same_observations_and_train_test_seeds_differ():
    _, tr_a, te_a = make_dmc_vector_envs("cartpole-swingup", seed=3, num_train_envs=2, num_test_envs=2)
    _, tr_b, _ = make_dmc_vector_envs("cartpole-swingup", seed=3, num_train_envs=2, num_test_envs=2)
    obs_a, obs_b, obs_test = tr_a.reset()[0], tr_b.reset()[0], te_a.reset()[0]
    np.testing.assert_array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a[0], obs_a[1])
    assert not np.array_equal(obs_a, obs_test)


def test_bad_env_counts():
    with pytest.raises(ValueError, match="num_train_envs"):
        make_dmc_vector_envs("cartpole-swingup", seed=0, num_train_envs=0)


def test_ray_vector_env_steps_like_the_dummy_one():
    """Tianshou's RayVectorEnv (one actor per env) gives the same seeded transitions as the
    in-process one, so ``--vector-env ray`` changes where envs run, not what they return."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _, dummy, _ = make_dmc_vector_envs("cartpole-swingup", seed=5, num_train_envs=2, num_test_envs=1)
        _, remote, _ = make_dmc_vector_envs("cartpole-swingup", seed=5, num_train_envs=2, num_test_envs=1,
                                            kind="ray")
        assert type(remote).__name__ == "RayVectorEnv"
        np.testing.assert_array_equal(dummy.reset()[0], remote.reset()[0])
        actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 2, 1)).astype(np.float32)
        for action in actions:
            expected, got = dummy.step(action), remote.step(action)
            for a, b in zip(expected[:4], got[:4], strict=True):
                np.testing.assert_array_equal(a, b)
        remote.close()
    finally:
        ray.shutdown()


def test_unknown_vector_env_kind_names_the_choices():
    from tianshou_qmle.env.dmc import make_vector_env

    with pytest.raises(ValueError, match=r"one of \('dummy', 'subproc', 'ray'\), got 'threads'"):
        make_vector_env([lambda: make_dmc_env("cartpole-swingup")], kind="threads")  # type: ignore[arg-type]
