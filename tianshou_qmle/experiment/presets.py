"""Named configurations of QMLE, in one place that every entry point reads.

* ``paper``: the paper's agent, Table 1 of Tavakoli et al. (arXiv 2410.06317), App. B: tuned for
  millions of env steps (one update per 10 env steps, 100 target and 1000 greedy candidates).
* ``efficient``: ours, for budgets of about 100k env steps. It is not in the paper; every value
  that differs from Table 1 is there because a sweep here showed that it helps at that budget
  (``benchmarks/README.md``, "QMLE at 100k env steps").

A preset is a mapping from the flag names of :func:`~tianshou_qmle.experiment.qmle_factory.
add_qmle_arguments` (as attributes: ``m_target``, ``update_every``, …) to values. Examples and the
benchmark harness use them as flag defaults, so any flag given on the command line still wins; in
Python, :func:`~tianshou_qmle.experiment.qmle_factory.qmle_config` returns a preset's values with
overrides, ready for :func:`~tianshou_qmle.experiment.qmle_factory.build_qmle_from_args`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final


@dataclass(frozen=True, kw_only=True)
class Preset:
    """One named configuration."""

    name: str
    summary: str
    """One line for ``--help`` and the docs."""
    values: Mapping[str, Any]
    """Flag attribute → value, for every flag the preset family sets."""
    origin: str
    """``"paper"`` or ``"ours"``."""

    def changes_from(self, other: Preset) -> dict[str, tuple[Any, Any]]:
        """``{flag: (other's value, this preset's value)}`` where the two differ."""
        return {k: (other.values[k], v) for k, v in self.values.items() if other.values.get(k) != v}


TABLE1_VALUES: Mapping[str, Any] = MappingProxyType({
    "m_target": 100,
    "m_greedy": 1000,
    "ratios": (0.9, 0.01, 0.09),
    "uniform_grid_share": 0.0,
    "delta_std": 0.05,
    "hidden": 128,
    "lr": 5e-4,
    "gamma": 0.99,
    "n_step": 1,
    "batch_size": 256,
    "update_every": 10,
    "target_update_env_steps": 2000,
    "buffer_size": 1_000_000,
    "uniform_replay": False,
    "alpha": 0.6,
    "beta": 0.2,
    "eps": 0.1,
    "scoring_dtype": "auto",
    "compile_scoring": False,
})
"""Table 1 and App. B, flag by flag. ``scoring_dtype`` is numerics, not a Table 1 setting: "auto"
scores candidates in bf16 where the CPU or GPU has native bf16 (winners re-scored in float32;
learning curves matched float32 within noise, ``benchmarks/results/learning/bf16``); pass
``--scoring-dtype float32`` for the paper's arithmetic. ``compile_scoring`` is speed only (the same
values within float rounding)."""

PAPER = Preset(
    name="paper", origin="paper", values=TABLE1_VALUES,
    summary="the paper's agent (Table 1): 1 update per 10 env steps, m_target 100, m_greedy 1000",
)

EFFICIENT = Preset(
    name="efficient", origin="ours",
    values=MappingProxyType({
        **TABLE1_VALUES,
        "update_every": 2,
        "m_target": 20,
        "m_greedy": 200,
        "n_step": 3,
        "target_update_env_steps": 200,
        "compile_scoring": True,
    }),
    summary="ours, for ~100k env steps: 1 update per 2 env steps, m_target 20, m_greedy 200, 3-step "
            "returns, target copies every 200 env steps, compiled scoring",
)

QMLE_PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in (PAPER, EFFICIENT)})
"""Every QMLE preset by name."""

DEFAULT_QMLE_PRESET: Final = "efficient"
"""What ``examples/dmc_qmle.py``, ``build_qmle_agent`` and ``QMLEParams`` use without a preset:
``efficient``, because the 100k tier measured it well ahead of the paper's agent at that budget
(``benchmarks/README.md``); ``paper`` stays one flag away."""


def qmle_preset(name: str) -> Preset:
    """The preset ``name``; a ``ValueError`` names the known ones."""
    try:
        return QMLE_PRESETS[name]
    except KeyError:
        raise ValueError(f"preset must be one of {', '.join(QMLE_PRESETS)}, got {name!r}") from None


class PresetArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with a ``--preset`` flag whose values become the other flags' defaults.

    Flags given on the command line win over the preset, wherever they appear; ``--help`` shows
    the defaults of the preset it is given with (``--preset paper --help``).

    :param presets: the presets ``--preset`` chooses from.
    :param default_preset: the preset without ``--preset``.
    """

    def __init__(self, *args: Any, presets: Mapping[str, Preset], default_preset: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if default_preset not in presets:
            raise ValueError(f"default_preset {default_preset!r} is not one of {', '.join(presets)}")
        self.presets = presets
        self.add_argument(
            "--preset", choices=list(presets), default=default_preset,
            help="configuration the other flags default to: "
                 + "; ".join(f"{p.name}: {p.summary}" for p in presets.values()),
        )

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        probe = argparse.ArgumentParser(add_help=False)
        probe.add_argument("--preset", default=self.get_default("preset"))
        known, _ = probe.parse_known_args(args)
        if known.preset in self.presets:  # an unknown name is rejected by the full parse below
            self.set_defaults(**self.presets[known.preset].values)
        return super().parse_known_args(args, namespace)


__all__ = [
    "DEFAULT_QMLE_PRESET",
    "EFFICIENT",
    "PAPER",
    "QMLE_PRESETS",
    "TABLE1_VALUES",
    "Preset",
    "PresetArgumentParser",
    "qmle_preset",
]
