#!/usr/bin/env python
"""What one env step of training costs each agent of ``benchmarks/learning.py``, split into acting
and updating, measured in one process.

Every agent is a harness entry (``qmle-efficient``, ``td3``, ``sac-auto``, ``miq``, ``savo``, …),
built exactly as the harness builds it: the same environment wrappers, replay buffer and schedule.
Each gets its own environment and buffer with ``--fill-steps`` uniformly random transitions. Then
the agents take turns for ``--rounds`` rounds, in an order that rotates every round, so that a
change of the machine's load hits every agent alike. In each round an agent

* makes ``--updates`` consecutive gradient updates (``update_cpu_ms``: CPU ms of one), and
* collects ``--collect-steps`` env steps with its exploration, as its trainer does
  (``collect_cpu_ms``: CPU ms of one env step: the policy's forward pass and noise, the env step
  and the buffer's add; the environments run in this thread).

Per env step of training, ``step_cpu_ms = collect_cpu_ms + updates_per_env_step × update_cpu_ms``
(the schedule's updates per env step: 1 for Tianshou's TD3 and SAC, 0.5 for QMLE's efficient
preset). All times are this thread's CPU time, medians over rounds; ratios are medians of the
per-round ratios to ``--baseline``. Evaluation, warm-up and start-up are not included (the 100k
tier's JSONs give those per run).

Writes ``step_cost_<task>.json`` (with machine, versions, commit) and ``step_cost_<task>.png``.

    python benchmarks/step_cost.py                                # QMLE efficient, TD3, SAC on cartpole
    python benchmarks/step_cost.py --task walker-walk --algorithms qmle-efficient qmle td3
    python benchmarks/step_cost.py --task Hopper-v5 --algorithms miq sac-auto --baseline sac-auto
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from tianshou.data import Collector
from tianshou.utils.torch_utils import policy_within_training_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `benchmarks` importable
from benchmarks.harness.algorithms import Agent, entry_for
from benchmarks.harness.meta import git_commit, library_versions, machine, now_iso
from benchmarks.harness.tasks import make_task_envs
from benchmarks.harness.timing import mean_update_cpu_ms, median_ratios, rotating_rounds
from tianshou_qmle.utils import seed_everything

DEFAULT_ALGORITHMS = ("qmle-efficient", "td3", "sac-auto")


class TimedAgent:
    """One harness agent with its own training env, collector and filled buffer."""

    def __init__(self, name: str, bench: argparse.Namespace) -> None:
        seed_everything(bench.seed)
        env, train_envs, _ = make_task_envs(bench.task, seed=bench.seed, num_test_envs=1)
        capacity = bench.fill_steps + bench.collect_steps * (bench.rounds + 1) + bench.warmup_updates
        build = entry_for(name).build
        self.agent: Agent = build(env=env, seed=bench.seed, device="cpu", buffer_size=capacity)
        self.collector = Collector(self.agent.algorithm, train_envs, self.agent.buffer,
                                   exploration_noise=True)
        self.collector.reset()
        self.collector.collect(n_step=bench.fill_steps, random=True)

    def update_cpu_ms(self, updates: int) -> float:
        return mean_update_cpu_ms(self.agent.algorithm, self.agent.buffer, updates=updates,
                                  batch_size=self.agent.schedule.batch_size)

    def collect_cpu_ms(self, steps: int) -> float:
        start = time.thread_time()
        self.collector.collect(n_step=steps)
        return (time.thread_time() - start) * 1e3 / steps


def measure(bench: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per agent: the medians, per-round values and ratios to the baseline."""
    torch.set_num_threads(bench.threads)
    agents = {name: TimedAgent(name, bench) for name in bench.algorithms}
    with ExitStack() as stack:
        for timed in agents.values():
            stack.enter_context(policy_within_training_step(timed.agent.algorithm.policy))
        for timed in agents.values():  # untimed: first-call allocations, compilation, optimizer state
            timed.update_cpu_ms(bench.warmup_updates)
            timed.collect_cpu_ms(bench.warmup_updates)

        def one_round(name: str) -> tuple[float, float]:
            return agents[name].update_cpu_ms(bench.updates), agents[name].collect_cpu_ms(bench.collect_steps)

        rounds = rotating_rounds(list(agents), one_round, rounds=bench.rounds)
    per_step = {name: [c + agents[name].agent.schedule.updates_per_env_step * u for u, c in got]
                for name, got in rounds.items()}
    rows = {}
    for name, got in rounds.items():
        updates, collects = [u for u, _ in got], [c for _, c in got]
        ratio, low, high = median_ratios(per_step[name], per_step[bench.baseline])
        rows[name] = {
            "label": entry_for(name).label,
            "updates_per_env_step": agents[name].agent.schedule.updates_per_env_step,
            "update_cpu_ms": round(statistics.median(updates), 3),
            "collect_cpu_ms": round(statistics.median(collects), 3),
            "step_cpu_ms": round(statistics.median(per_step[name]), 3),
            "step_ratio_to_baseline": round(ratio, 3),
            "step_ratio_range": [round(low, 3), round(high, 3)],
            "per_round": {"update_cpu_ms": [round(u, 3) for u in updates],
                          "collect_cpu_ms": [round(c, 3) for c in collects]},
        }
    return rows


def plot(rows: dict[str, dict[str, Any]], bench: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(1.8 * len(names) + 2.5, 4))
    for i, name in enumerate(names):
        row = rows[name]
        acting, updating = row["collect_cpu_ms"], row["updates_per_env_step"] * row["update_cpu_ms"]
        ax.bar(i, acting, color="tab:orange", label="acting (collect)" if i == 0 else None)
        ax.bar(i, updating, bottom=acting, color="tab:blue", label="updates" if i == 0 else None)
        ax.text(i, acting + updating, f"{row['step_ratio_to_baseline']:.2f}×", ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([rows[n]["label"] for n in names], fontsize=8)
    ax.set_ylabel("CPU ms per training env step")
    ax.set_title(f"{bench.task}, {bench.threads} torch thread, ratios to {rows[bench.baseline]['label']}",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="cartpole-swingup",
                   help="a DMC 'domain-task', gymnasium id or restricted-<name> task of the harness")
    p.add_argument("--algorithms", nargs="+", default=list(DEFAULT_ALGORITHMS),
                   help="harness entries to time (benchmarks/learning.py --help lists them)")
    p.add_argument("--baseline", default="td3", help="the entry the ratios divide by (one of --algorithms)")
    p.add_argument("--updates", type=int, default=100, help="timed updates per agent per round")
    p.add_argument("--collect-steps", type=int, default=300, help="timed env steps per agent per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are reported)")
    p.add_argument("--warmup-updates", type=int, default=10,
                   help="untimed updates and env steps per agent first")
    p.add_argument("--fill-steps", type=int, default=3000, help="random env steps in each agent's buffer")
    p.add_argument("--seed", type=int, default=0, help="seed of every agent, env and buffer")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="benchmarks/results/speed", help="output directory")
    return p


def check(bench: argparse.Namespace) -> None:
    for flag in ("updates", "collect_steps", "rounds", "fill_steps", "threads"):
        if getattr(bench, flag) < 1:
            raise SystemExit(f"--{flag.replace('_', '-')} must be ≥ 1, got {getattr(bench, flag)}")
    for name in bench.algorithms:
        try:
            entry_for(name)
        except ValueError as err:
            raise SystemExit(f"--algorithms: {err}") from err
    if bench.baseline not in bench.algorithms:
        raise SystemExit(f"--baseline {bench.baseline!r} must be one of --algorithms {bench.algorithms}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    bench = build_parser().parse_args(argv)
    check(bench)
    rows = measure(bench)
    report = {"args": vars(bench), "machine": machine(torch_threads=bench.threads),
              "versions": library_versions(), "git": git_commit(), "date": now_iso(), "results": rows}
    out = Path(bench.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"step_cost_{bench.task}.json").write_text(json.dumps(report, indent=2))
    plot(rows, bench, out / f"step_cost_{bench.task}.png")
    for row in rows.values():
        low, high = row["step_ratio_range"]
        print(f"{row['label']:24s} acting {row['collect_cpu_ms']:6.2f} + {row['updates_per_env_step']:.2f} × "
              f"update {row['update_cpu_ms']:6.2f} = {row['step_cpu_ms']:6.2f} CPU ms/env step  "
              f"{row['step_ratio_to_baseline']:.2f}× {bench.baseline} (rounds {low:.2f}-{high:.2f})")
    print(f"wrote {out / f'step_cost_{bench.task}.json'} and .png")
    return report


if __name__ == "__main__":
    main()
