"""The runnable experiments: one module per use case, shared by the ``tianshou-qmle`` command,
the thin scripts in ``examples/`` and the tests.

Each command module has

* ``NAME``: how ``tianshou-qmle train NAME`` calls it;
* ``build_parser()``: its flags (``--help`` is its module docstring);
* ``setup(args)``: validates the flags, seeds, and builds the environments, algorithm, replay
  buffer and schedule (a :class:`~tianshou_qmle.experiment.runner.RunSetup`);
* ``make_env(args, render_mode)``: one environment of the task, for ``watch`` and videos;
* ``main(argv)``: parse, set up, train and evaluate; returns the summary.
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType
from typing import Any

from tianshou_qmle.experiment.runner import run_setup

COMMAND_MODULES: dict[str, str] = {
    "dmc-qmle": "dmc_qmle",
    "dmc-qmle-discrete": "dmc_qmle_discrete",
    "recsim-qmle": "recsim_qmle",
    "restricted-savo": "restricted_savo",
    "recsim-savo": "recsim_savo",
    "mujoco-iq": "mujoco_iq",
    "dmc-iq": "dmc_iq",
}
"""Command name → module of this package."""


def load_command(name: str) -> ModuleType:
    """The command module ``name`` (``dmc-qmle``, …); a ``ValueError`` lists the known ones."""
    if name not in COMMAND_MODULES:
        raise ValueError(f"unknown command {name!r}; known: {', '.join(COMMAND_MODULES)}")
    return importlib.import_module(f"{__name__}.{COMMAND_MODULES[name]}")


def run_command(module: ModuleType, argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv`` with the command's flags, set up and run it; returns the summary."""
    args = module.build_parser().parse_args(argv)
    return run_setup(args, module.setup(args), command=module.NAME)


def args_from_config(module: ModuleType, saved: dict[str, Any]) -> argparse.Namespace:
    """The command's flags at their defaults, overwritten by those a checkpoint recorded (flags
    the command no longer has are dropped)."""
    args = module.build_parser().parse_args([])
    for key, value in saved.items():
        if hasattr(args, key):
            setattr(args, key, tuple(value) if isinstance(getattr(args, key), tuple) else value)
    return args


__all__ = ["COMMAND_MODULES", "args_from_config", "load_command", "run_command"]
