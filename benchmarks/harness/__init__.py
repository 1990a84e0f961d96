"""The learning-curve benchmark harness behind ``benchmarks/learning.py``.

Our algorithms (QMLE, IQ, SAVO) against Tianshou 2's own DDPG, TD3 and SAC on the same tasks,
seeds, environment wrappers, evaluation protocol and torch threads; one subprocess per
(algorithm, task, seed), a JSON file per run, an aggregate table, and plots.

Modules:

* :mod:`.tasks`: task names (DMC ``domain-task``, gymnasium ids, ``restricted-<name>``), seeded
  envs, score ranges;
* :mod:`.algorithms`: the algorithm registry and the builders with their documented settings;
* :mod:`.tiers`: the tiers (``smoke``, ``quick``, ``100k``, ``iq100k``, ``savo100k``, ``full``),
  warm-up scaling and the time model;
* :mod:`.worker`: one run (warm-up, training segments, evaluations) in its own process;
* :mod:`.executor`: the run list, skipping finished runs, local processes or Ray tasks;
* :mod:`.stats`: mean ± standard error, IQM and its stratified-bootstrap interval (rliable or ours);
* :mod:`.report`: the aggregate table (Markdown and JSON);
* :mod:`.plots`: learning curves, speed bars and the IQM chart;
* :mod:`.meta`: library versions, the machine, the git commit.
"""
