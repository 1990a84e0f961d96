#!/usr/bin/env python
"""Train QMLE on a DeepMind Control task (cartpole-swingup by default).

``--help`` lists every flag and its default.

The same as ``tianshou-qmle train dmc-qmle``: a thin script over
:mod:`tianshou_qmle.experiment.commands.dmc_qmle`, where the flags and the set-up live.
"""

from tianshou_qmle.experiment.commands.dmc_qmle import build_parser, main, setup

__all__ = ["build_parser", "main", "setup"]

if __name__ == "__main__":
    main()
