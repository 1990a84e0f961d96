#!/usr/bin/env python
"""Train SAVO-TD3, or Tianshou's TD3, on a restricted MuJoCo task.

``--help`` lists every flag and its default.

The same as ``tianshou-qmle train restricted-savo``: a thin script over
:mod:`tianshou_qmle.experiment.commands.restricted_savo`, where the flags and the set-up live.
"""

from tianshou_qmle.experiment.commands.restricted_savo import build_parser, main, setup

__all__ = ["build_parser", "main", "setup"]

if __name__ == "__main__":
    main()
