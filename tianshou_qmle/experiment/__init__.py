"""Everything that turns a configuration into a run, shared by every entry point (examples, the
benchmark harness): the presets, the flag builders of each algorithm and the run harness.

The algorithms themselves live in :mod:`tianshou_qmle.algorithm`; nothing here changes how they
learn, only how they are configured and driven.
"""
