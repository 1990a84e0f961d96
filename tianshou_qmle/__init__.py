"""tianshou-qmle: value-based RL for complex action spaces, as Tianshou 2 plug-ins.

The public API: :class:`QMLE` / :class:`QMLEPolicy` (Tavakoli et al., arXiv 2410.06317), the arg max
prior replay buffers, the network builder and the environment helpers.
"""

from tianshou_qmle.algorithm.qmle import QMLE, QMLEPolicy, QMLETrainingStats
from tianshou_qmle.data.buffer import (
    ArgmaxPriorReplayBuffer,
    ArgmaxPriorVectorReplayBuffer,
    FastNullCheckVectorReplayBuffer,
    PrioritizedArgmaxPriorReplayBuffer,
    PrioritizedArgmaxPriorVectorReplayBuffer,
    make_replay_buffer,
)
from tianshou_qmle.net.critic import ActionInCritic
from tianshou_qmle.net.predictors import (
    ArgmaxPredictor,
    DeltaPredictor,
    FactoredCategoricalPredictor,
)
from tianshou_qmle.net.qmle_net import QMLENetwork, build_qmle_network

__version__ = "0.1.0"

__all__ = [
    "QMLE",
    "ActionInCritic",
    "ArgmaxPredictor",
    "ArgmaxPriorReplayBuffer",
    "ArgmaxPriorVectorReplayBuffer",
    "DeltaPredictor",
    "FactoredCategoricalPredictor",
    "FastNullCheckVectorReplayBuffer",
    "PrioritizedArgmaxPriorReplayBuffer",
    "PrioritizedArgmaxPriorVectorReplayBuffer",
    "QMLENetwork",
    "QMLEPolicy",
    "QMLETrainingStats",
    "build_qmle_network",
    "make_replay_buffer",
]
