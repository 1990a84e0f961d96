"""Environments: DeepMind Control through shimmy, gymnasium tasks, and the §5.1 bimodal bandit."""

from tianshou_qmle.env.bandit import BimodalBanditEnv, bimodal_reward
from tianshou_qmle.env.dmc import (
    FlatFloat32Observation,
    make_dmc_env,
    make_dmc_vector_envs,
    make_gym_env,
    make_gym_vector_envs,
    make_seeded_vector_envs,
    make_vector_env,
    parse_dmc_task,
)

__all__ = [
    "BimodalBanditEnv",
    "FlatFloat32Observation",
    "bimodal_reward",
    "make_dmc_env",
    "make_dmc_vector_envs",
    "make_gym_env",
    "make_gym_vector_envs",
    "make_seeded_vector_envs",
    "make_vector_env",
    "parse_dmc_task",
]
