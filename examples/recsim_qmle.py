#!/usr/bin/env python
"""Train QMLE on the 10,000-item recommender; ``--help`` lists every flag and its default.

The same as ``tianshou-qmle train recsim-qmle``: a thin script over
:mod:`tianshou_qmle.experiment.commands.recsim_qmle`, where the flags and the set-up live.
"""

from tianshou_qmle.experiment.commands.recsim_qmle import build_parser, main, setup

__all__ = ["build_parser", "main", "setup"]

if __name__ == "__main__":
    main()
