#!/usr/bin/env python
"""QMLE on a bang-off-bang discretised DMC task, next to Tianshou's DQN and BDQN.

``--help`` lists every flag and its default.

The same as ``tianshou-qmle train dmc-qmle-discrete``: a thin script over
:mod:`tianshou_qmle.experiment.commands.dmc_qmle_discrete`, where the flags and the set-up live.
"""

from tianshou_qmle.experiment.commands.dmc_qmle_discrete import (
    build_algorithm,
    build_parser,
    env_factory,
    main,
    setup,
)

__all__ = ["build_algorithm", "build_parser", "env_factory", "main", "setup"]

if __name__ == "__main__":
    main()
