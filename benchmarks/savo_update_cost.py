#!/usr/bin/env python
"""What one SAVO gradient update costs against Tianshou's TD3, and where SAVO's time goes.

Every agent is built exactly as ``examples/restricted_savo.py`` builds it (Table 3: [256, 256]
MLPs, batch 256, DeepSet list encoder with FiLM, surrogate critics; TD3 with Tianshou's
``mujoco_td3.py`` settings) on the same restricted task. One replay buffer is filled with uniformly
random transitions of the real environment and shared by all agents. Then, in one process, on one
torch thread, the agents take turns: each round times ``--updates`` consecutive updates of every
agent (in a rotating order), so a change in the machine's load hits all agents alike.

* ``update_cpu_ms``: median over rounds of the mean CPU time (this thread's, ``time.thread_time``)
  of one full update: sample, TD target, critics, surrogates, and the delayed actor and target
  step every ``update_actor_freq`` updates, so one update is the average of both kinds;
* ``ratio_to_td3``: the median of the per-round ratios to TD3's update in the same round;
* ``phases_cpu_ms``: SAVO's update split into its steps (the TD target, the twin critics, the
  twin-critic values at the proposals, the surrogates' step, the actors' step averaged over all
  updates, Polyak), timed around the algorithm's own methods in a separate pass.

Agents: ``td3`` and ``savo-L`` for each list length L in ``--list-lengths`` (L actions: μ and
L − 1 successive actors; the paper's 3). Issue 14's goal: SAVO at L = 3 within 2.5× TD3.
Writes ``savo_update_cost.json`` (with machine, versions, commit) and ``savo_update_cost.png``.

    python benchmarks/savo_update_cost.py
    python benchmarks/savo_update_cost.py --task Walker2d --list-lengths 1 3 5 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from tianshou.algorithm.algorithm_base import Algorithm
from tianshou.data import Collector, ReplayBuffer
from tianshou.env import DummyVectorEnv
from tianshou.utils.torch_utils import policy_within_training_step

from tianshou_qmle.env.restricted import RESTRICTED_TASKS
from tianshou_qmle.experiment.commands import restricted_savo
from tianshou_qmle.experiment.savo_factory import build_algorithm
from tianshou_qmle.utils import seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `benchmarks` importable
from benchmarks.harness.meta import git_commit, library_versions, machine, now_iso
from benchmarks.harness.timing import mean_update_cpu_ms, median_ratios, rotating_rounds

GOAL_RATIO_AT_PAPER_LENGTH = 2.5
PAPER_LIST_LENGTH = 3
PHASES = {
    "td_target": "_target_q",
    "critics": "_update_critics",
    "proposal_values": "_twin_min_values",
    "surrogates": "_update_surrogates",
    "actors": "_update_actors",
    "polyak": "_update_lagged_network_weights",
}


def agent_args(agent: str, bench: argparse.Namespace) -> argparse.Namespace:
    """The example's flags for ``td3`` or ``savo-L``."""
    flags = ["--task", bench.task, "--seed", str(bench.seed), "--buffer-size", str(bench.fill_steps)]
    if agent == "td3":
        flags += ["--algo", "td3"]
    else:
        flags += ["--algo", "savo", "--list-length", agent.removeprefix("savo-")]
    return restricted_savo.build_parser().parse_args(flags)


def filled_buffer(bench: argparse.Namespace, algorithm: Algorithm) -> ReplayBuffer:
    """``--fill-steps`` uniformly random transitions of the real restricted task."""
    args = agent_args("td3", bench)
    envs = DummyVectorEnv([lambda: restricted_savo.make_env(args)])
    envs.seed(bench.seed)
    buffer = ReplayBuffer(bench.fill_steps)
    collector = Collector(algorithm.policy, envs, buffer)
    collector.collect(n_step=bench.fill_steps, random=True, reset_before_collect=True)
    envs.close()
    return buffer


def build_agents(bench: argparse.Namespace) -> dict[str, Algorithm]:
    agents = {}
    for agent in ["td3", *(f"savo-{length}" for length in bench.list_lengths)]:
        seed_everything(bench.seed)
        args = agent_args(agent, bench)
        agents[agent] = build_algorithm(args, restricted_savo.make_env(args))
    return agents


def interleaved_rounds(
    agents: dict[str, Algorithm], buffer: ReplayBuffer, bench: argparse.Namespace
) -> dict[str, list[float]]:
    """Per agent, the mean CPU ms of one update in each round; the order rotates every round."""
    for algorithm in agents.values():  # untimed: first-call allocations, optimizer state
        mean_update_cpu_ms(algorithm, buffer, updates=bench.warmup_updates, batch_size=bench.batch_size)

    def one_round(name: str) -> float:
        return mean_update_cpu_ms(agents[name], buffer, updates=bench.updates, batch_size=bench.batch_size)

    return rotating_rounds(list(agents), one_round, rounds=bench.rounds)


@contextmanager
def timed_methods(algorithm: Algorithm, methods: dict[str, str]) -> Iterator[dict[str, float]]:
    """Accumulate this thread's CPU seconds spent in each of ``algorithm``'s named methods."""
    spent = dict.fromkeys(methods, 0.0)

    def timed(phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[phase] += time.thread_time() - start
        return wrapper

    present = {phase: name for phase, name in methods.items() if hasattr(algorithm, name)}
    for phase, name in present.items():
        setattr(algorithm, name, timed(phase, getattr(algorithm, name)))
    try:
        yield spent
    finally:
        for name in present.values():
            delattr(algorithm, name)  # the instance attribute shadowed the class's method


def phase_breakdown(
    algorithm: Algorithm, buffer: ReplayBuffer, bench: argparse.Namespace
) -> dict[str, float]:
    """CPU ms per update in each step of SAVO's update, and the rest (sampling, n-step returns…)."""
    updates = bench.updates * bench.rounds
    with timed_methods(algorithm, PHASES) as spent:
        total = mean_update_cpu_ms(algorithm, buffer, updates=updates, batch_size=bench.batch_size)
    phases = {phase: seconds * 1e3 / updates for phase, seconds in spent.items()}
    phases["other"] = total - sum(phases.values())
    return {phase: round(ms, 3) for phase, ms in phases.items()}


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    rows = {}
    for name, per_round in times.items():
        ratio, low, high = median_ratios(per_round, times["td3"])
        rows[name] = {
            "update_cpu_ms": round(statistics.median(per_round), 3),
            "update_cpu_ms_per_round": [round(ms, 3) for ms in per_round],
            "ratio_to_td3": round(ratio, 3),
            "ratio_to_td3_range": [round(low, 3), round(high, 3)],
        }
    return rows


def plot(rows: dict[str, dict[str, Any]], bench: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 3, 4))
    for i, name in enumerate(names):
        phases = rows[name].get("phases_cpu_ms")
        if phases is None:
            ax.bar(i, rows[name]["update_cpu_ms"], color="tab:gray", label="TD3 update" if i == 0 else None)
            continue
        bottom = 0.0
        for j, (phase, ms) in enumerate(phases.items()):
            label = phase if name == names[-1] else None
            ax.bar(i, ms, bottom=bottom, color=plt.get_cmap("tab10")(j), label=label)
            bottom += ms
        ax.text(i, bottom, f"{rows[name]['ratio_to_td3']:.2f}× TD3", ha="center", va="bottom", fontsize=8)
    td3_ms = rows["td3"]["update_cpu_ms"]
    ax.axhline(GOAL_RATIO_AT_PAPER_LENGTH * td3_ms, color="k", ls="--", lw=0.8,
               label=f"goal: {GOAL_RATIO_AT_PAPER_LENGTH}× TD3")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.set_ylabel("CPU ms per gradient update")
    title = f"restricted {bench.task}, batch {bench.batch_size}, {bench.threads} torch thread, CPU"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="Hopper", choices=list(RESTRICTED_TASKS), help="restricted MuJoCo task")
    p.add_argument("--list-lengths", type=int, nargs="+", default=[1, PAPER_LIST_LENGTH],
                   help="SAVO list lengths to time (actions in the list, μ's included)")
    p.add_argument("--updates", type=int, default=100, help="timed updates per agent per round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are reported)")
    p.add_argument("--warmup-updates", type=int, default=10, help="untimed updates per agent first")
    p.add_argument("--fill-steps", type=int, default=5000, help="random env steps in the shared buffer")
    p.add_argument("--batch-size", type=int, default=256, help="replay batch size (Table 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of every agent, the env and the buffer")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="benchmarks/results/savo", help="output directory")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    bench = build_parser().parse_args(argv)
    if any(length < 1 for length in bench.list_lengths):
        raise SystemExit(f"--list-lengths must be ≥ 1, got {bench.list_lengths}")
    torch.set_num_threads(bench.threads)
    agents = build_agents(bench)
    buffer = filled_buffer(bench, agents["td3"])
    with ExitStack() as stack:
        for algorithm in agents.values():
            stack.enter_context(policy_within_training_step(algorithm.policy))
        rows = summarise(interleaved_rounds(agents, buffer, bench))
        for name, algorithm in agents.items():
            if name != "td3":
                rows[name]["phases_cpu_ms"] = phase_breakdown(algorithm, buffer, bench)
    report = {
        "args": vars(bench), "machine": machine(torch_threads=bench.threads), "versions": library_versions(),
        "git": git_commit(), "date": now_iso(), "results": rows,
        "goal": {"ratio_to_td3_at_paper_list_length": GOAL_RATIO_AT_PAPER_LENGTH,
                 "met": rows.get(f"savo-{PAPER_LIST_LENGTH}", {}).get("ratio_to_td3", float("inf"))
                 <= GOAL_RATIO_AT_PAPER_LENGTH},
    }
    out = Path(bench.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "savo_update_cost.json").write_text(json.dumps(report, indent=2))
    plot(rows, bench, out / "savo_update_cost.png")
    for name, row in rows.items():
        phases = " ".join(f"{k}={v}" for k, v in row.get("phases_cpu_ms", {}).items())
        print(f"{name:8s} {row['update_cpu_ms']:7.2f} CPU ms/update  {row['ratio_to_td3']:.2f}× TD3 "
              f"(rounds {row['ratio_to_td3_range'][0]:.2f}-{row['ratio_to_td3_range'][1]:.2f})  {phases}")
    print(f"wrote {out / 'savo_update_cost.json'}")
    return report


if __name__ == "__main__":
    main()
