#!/usr/bin/env python
"""Train SAVO on the recommender with 1-NN over item embeddings; ``--help`` lists every flag and its default.

The same as ``tianshou-qmle train recsim-savo``: a thin script over
:mod:`tianshou_qmle.experiment.commands.recsim_savo`, where the flags and the set-up live.
"""

from tianshou_qmle.experiment.commands.recsim_savo import build_parser, main, setup

__all__ = ["build_parser", "main", "setup"]

if __name__ == "__main__":
    main()
