"""Real learning runs with reward thresholds. Slow: run with `bash scripts/test.sh --runslow`."""

import gymnasium as gym
import pytest
import torch
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Collector
from tianshou.env import DummyVectorEnv
from tianshou.trainer import OffPolicyTrainerParams

from tianshou_qmle import QMLE, QMLEPolicy, build_qmle_network, make_replay_buffer
from tianshou_qmle.utils import evaluate, seed_everything

# Pendulum-v1 returns: a random policy gets about -1200 (-1450 for an untrained QMLE agent at
# seed 0); swinging up and balancing gets above -200. -400 needs a policy that swings up from
# most starts; 6000 updates reach it (measured -140 to -200 at 5000 updates).
PENDULUM_THRESHOLD = -400.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_pendulum_reaches_threshold_within_6000_steps(seed):
    seed_everything(seed)
    env = gym.make("Pendulum-v1")
    model = build_qmle_network(obs_dim=3, act_dim=1)
    policy = QMLEPolicy(
        model=model, action_space=env.action_space, observation_space=env.observation_space,
        m_greedy=64,
    )
    algo = QMLE(policy=policy, optim=AdamOptimizerFactory(lr=5e-4), m_target=16, target_update_freq=100)
    train_envs = DummyVectorEnv([lambda: gym.make("Pendulum-v1")])
    test_envs = DummyVectorEnv([lambda: gym.make("Pendulum-v1")] * 5)
    train_envs.seed(seed)
    test_envs.seed(seed + 1000)
    buf = make_replay_buffer(size=100_000, num_envs=1, seed=seed)
    collector = Collector(algo, train_envs, buf, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=1000, random=True)
    algo.create_trainer(
        OffPolicyTrainerParams(
            training_collector=collector, max_epochs=1, epoch_num_steps=6000,
            collection_step_num_env_steps=1, update_step_num_gradient_steps_per_sample=1.0,
            batch_size=128, show_progress=False, verbose=False,
        )
    ).run(reset_collectors=False)
    torch.manual_seed(seed)
    returns = evaluate(algo, Collector(algo, test_envs), num_episodes=10)
    assert returns.mean() > PENDULUM_THRESHOLD, returns
