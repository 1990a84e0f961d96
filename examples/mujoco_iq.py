#!/usr/bin/env python
"""Train IQ, M-IQ or Tianshou's SAC on a gymnasium MuJoCo task; ``--help`` lists every flag and its default.

The same as ``tianshou-qmle train mujoco-iq``: a thin script over
:mod:`tianshou_qmle.experiment.commands.mujoco_iq`, where the flags and the set-up live.
"""

from tianshou_qmle.experiment.commands.mujoco_iq import build_parser, main, setup

__all__ = ["build_parser", "main", "setup"]

if __name__ == "__main__":
    main()
