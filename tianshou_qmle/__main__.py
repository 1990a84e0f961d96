"""``python -m tianshou_qmle``: the ``tianshou-qmle`` command."""

from tianshou_qmle.experiment.cli import console_main

console_main()
