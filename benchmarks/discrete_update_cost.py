#!/usr/bin/env python
"""What one gradient update costs QMLE, DQN and BDQN on bang-off-bang DMC tasks as d grows.

For each task (default: finger-spin d = 2, walker-walk d = 6, humanoid-walk d = 21, dog-walk d = 38;
K = 3 bins per dimension, so K^d joint actions), each agent is built exactly as
``examples/dmc_qmle_discrete.py`` builds it (Table 1 budgets: QMLE m_target 100, m_greedy 1000,
ratios 0.9/0.1; batch 256; prioritized replay), its replay buffer is filled with uniformly random
transitions of the real environment, and then, on one torch thread, in one process, with the same
seed for every agent:

* ``update_cpu_ms`` / ``update_ms``: median CPU / wall time of one full update (sample, TD targets,
  gradient step, priority write-back) over ``--repeats`` updates after ``--warmup-updates`` untimed
  ones; CPU time (of the calling thread, one torch thread) is what an update costs even when other
  processes share the machine and stretch wall time;
* ``act_cpu_ms`` / ``act_ms``: the same for one greedy action for one state;
* ``rss_growth_mb``: peak resident memory above the level before the timed updates, sampled every
  millisecond by a background thread during them (allocations the process already holds from
  earlier agents are reused, so this is a lower bound on what the update needs);
* ``largest_tensor_mb`` and ``allocated_mb``: the largest tensor storage created, and all tensor
  storage created, during one update, recorded by a ``TorchDispatchMode`` over every operator
  (forward and backward);
* ``gflops``: floating point operations of one update (``torch.utils.flop_counter``);
* ``parameters``: trainable parameters of the online network(s).

DQN needs the joint ``Discrete(K^d)`` space; where K^d exceeds the example's
``--max-joint-actions`` it is marked intractable with the size its output layer alone would need.
Writes ``discrete_update_cost.json`` (with machine, library versions and git commit) and
``discrete_update_cost.png`` into ``--out`` and prints a table with the ratios to QMLE.

    python benchmarks/discrete_update_cost.py
    python benchmarks/discrete_update_cost.py --tasks finger-spin walker-walk --repeats 10
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from tianshou.data import Batch, Collector
from tianshou.env import DummyVectorEnv
from tianshou.utils.torch_utils import policy_within_training_step
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from tianshou_qmle import make_replay_buffer
from tianshou_qmle.experiment.commands import dmc_qmle_discrete
from tianshou_qmle.utils import seed_everything

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = ("finger-spin", "walker-walk", "humanoid-walk", "dog-walk")
ALGORITHMS = ("qmle", "dqn", "bdqn")
MB = 1024.0**2


def load_script(path: Path, name: str) -> ModuleType:
    """Import a script of this repository (examples and benchmarks are not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# the flags and the set-up live in the package; examples/dmc_qmle_discrete.py is a thin script over them
EXAMPLE = dmc_qmle_discrete


class TensorAllocationRecorder(TorchDispatchMode):
    """Records the storage of every tensor an operator creates (views and in-place results of
    its inputs excluded): the largest one and the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.largest_bytes = 0
        self.largest_shape: tuple[int, ...] = ()
        self.largest_op = ""
        self.total_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {storage_ptr(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or storage_ptr(t) in inputs:
                continue
            nbytes = t.untyped_storage().nbytes()
            self.total_bytes += nbytes
            if nbytes > self.largest_bytes:
                self.largest_bytes, self.largest_shape, self.largest_op = nbytes, tuple(t.shape), str(func)
        return out


def storage_ptr(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRssSampler:
    """Context manager sampling the resident set size every ``interval`` seconds in a thread;
    ``growth_bytes`` is the peak above the level at entry."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRssSampler:
        self.baseline = self.peak = current_rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())

    @property
    def growth_bytes(self) -> int:
        return self.peak - self.baseline


def median_ms(fn: Callable[[], Any], *, repeats: int, warmup: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed
    calls. CPU time is this thread's (``time.thread_time``): with one torch thread it is what the
    call costs, even while other processes share the cores and stretch the wall time."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu.append((time.thread_time() - start_cpu) * 1e3)
        wall.append((time.perf_counter() - start) * 1e3)
    return float(np.median(wall)), float(np.median(cpu))


def example_args(algo: str, task: str, bench: argparse.Namespace) -> argparse.Namespace:
    """The example's own defaults for ``algo`` on ``task`` (Table 1), with the benchmark's budgets."""
    return EXAMPLE.build_parser().parse_args([
        "--algo", algo, "--task", task, "--action-bins", str(bench.action_bins), "--seed", str(bench.seed),
        "--m-greedy", str(bench.m_greedy), "--m-target", str(bench.m_target),
        "--batch-size", str(bench.batch_size), "--buffer-size", str(bench.buffer_size),
    ])


def dqn_intractable(args: argparse.Namespace) -> str | None:
    """The example's refusal message when DQN cannot enumerate the joint actions, else None."""
    try:
        EXAMPLE.check_dqn_tractable(args)
    except SystemExit as refusal:
        return str(refusal)
    return None


def count_parameters(algorithm: torch.nn.Module) -> int:
    model = algorithm.policy.model
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def measure(algo: str, task: str, bench: argparse.Namespace) -> dict[str, Any]:
    """Build ``algo`` as the example does, fill its buffer with random transitions, time and
    measure its update."""
    args = example_args(algo, task, bench)
    base_env = EXAMPLE.make_discrete_env(task, action_bins=args.action_bins)
    row: dict[str, Any] = {"task": task, "algorithm": algo, **EXAMPLE.discretisation_facts(base_env)}
    base_env.close()
    if algo == "dqn" and (refusal := dqn_intractable(args)) is not None:
        # Q-values of one batch (float32) and the output layer's weights (2·hidden inputs each)
        joint = row["joint_actions"]
        row.update(status="intractable", reason=refusal,
                   batch_q_values_bytes=4 * args.batch_size * joint,
                   output_layer_bytes=4 * (2 * args.hidden + 1) * joint)
        return row
    seed_everything(bench.seed)
    envs = DummyVectorEnv([EXAMPLE.env_factory(args)])
    envs.seed([bench.seed])
    env = EXAMPLE.env_factory(args)()
    algorithm = EXAMPLE.build_algorithm(args, env)
    buffer = make_replay_buffer(size=args.buffer_size, num_envs=1, prioritized=True,
                                        alpha=args.alpha, beta=args.beta, seed=bench.seed)
    collector = Collector(algorithm, envs, buffer, exploration_noise=True)
    collector.reset()
    collector.collect(n_step=bench.fill_steps, random=True)

    def update() -> None:
        algorithm.update(buffer, args.batch_size)

    with policy_within_training_step(algorithm.policy):
        with PeakRssSampler() as rss:
            update_ms, update_cpu_ms = median_ms(update, repeats=bench.repeats, warmup=bench.warmup_updates)
        recorder = TensorAllocationRecorder()
        with recorder:
            update()
        flops = FlopCounterMode(display=False)
        with flops:
            update()
    obs = Batch(obs=envs.reset()[0], info={})
    with torch.inference_mode():
        act_ms, act_cpu_ms = median_ms(lambda: algorithm.policy(obs), repeats=bench.repeats, warmup=2)
    envs.close()
    row.update(
        status="ok", update_ms=round(update_ms, 3), update_cpu_ms=round(update_cpu_ms, 3),
        act_ms=round(act_ms, 3), act_cpu_ms=round(act_cpu_ms, 3),
        rss_growth_mb=round(rss.growth_bytes / MB, 1),
        largest_tensor_mb=round(recorder.largest_bytes / MB, 3),
        largest_tensor_shape=list(recorder.largest_shape), largest_tensor_op=recorder.largest_op,
        allocated_mb=round(recorder.total_bytes / MB, 1),
        gflops=round(flops.get_total_flops() / 1e9, 3), parameters=count_parameters(algorithm),
    )
    return row


def ratios_to_qmle(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task, each baseline's update time, largest tensor and FLOPs divided by QMLE's."""
    by_key = {(r["task"], r["algorithm"]): r for r in rows if r["status"] == "ok"}
    ratios: dict[str, dict[str, float]] = {}
    for (task, algo), row in by_key.items():
        qmle = by_key.get((task, "qmle"))
        if algo == "qmle" or qmle is None:
            continue
        for key in ("update_cpu_ms", "update_ms", "largest_tensor_mb", "gflops"):
            if qmle[key]:
                ratios.setdefault(task, {})[f"{algo}_over_qmle_{key}"] = round(row[key] / qmle[key], 4)
    return ratios


def describe_machine() -> dict[str, Any]:
    speed = load_script(ROOT / "benchmarks" / "speed_qmle_vs_td3.py", "speed_qmle_vs_td3")
    info = speed.machine()
    info.update(gymnasium=version("gymnasium"), mujoco=version("mujoco"),
                dm_control=version("dm_control"), shimmy=version("shimmy"),
                load_average=[round(x, 2) for x in os.getloadavg()])
    return info


def format_table(rows: list[dict[str, Any]]) -> str:
    header = ("| task | d | K^d | agent | CPU ms / update | wall ms / update | CPU ms / action "
              "| GFLOP / update | largest tensor MB | allocated MB / update | peak RSS growth MB "
              "| parameters |")
    lines = [header, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        head = f"| {r['task']} | {r['action_dims']} | {r['joint_actions']:.3g} | {r['algorithm']} |"
        if r["status"] != "ok":
            need = r["output_layer_bytes"] / 1024**3
            dashes = " — |" * 7
            lines.append(f"{head} intractable: output layer alone {need:.3g} GiB |{dashes}")
            continue
        lines.append(
            f"{head} {r['update_cpu_ms']:.2f} | {r['update_ms']:.2f} | {r['act_cpu_ms']:.2f} | "
            f"{r['gflops']:.3f} | {r['largest_tensor_mb']:.2f} | {r['allocated_mb']:.1f} | "
            f"{r['rss_growth_mb']:.1f} | {r['parameters']:,} |"
        )
    return "\n".join(lines)


def task_label(task: str, by_key: dict[tuple[str, str], dict[str, Any]]) -> str:
    dims = next((r["action_dims"] for (t, _), r in by_key.items() if t == task), "?")
    return f"{task}\nd={dims}"


def plot(rows: list[dict[str, Any]], bench: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"qmle": "tab:blue", "dqn": "tab:orange", "bdqn": "tab:green"}
    tasks = bench.tasks
    by_key = {(r["task"], r["algorithm"]): r for r in rows}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "update_cpu_ms", "CPU ms per gradient update"),
                           (axes[1], "largest_tensor_mb", "largest tensor per update (MB)")):
        for j, algo in enumerate(ALGORITHMS):
            for i, task in enumerate(tasks):
                row = by_key.get((task, algo))
                if row is None:
                    continue
                x = i + (j - 1) * 0.27
                if row["status"] == "ok":
                    ax.bar(x, row[key], width=0.27, color=colours[algo],
                           label=algo if i == 0 else None)
                else:
                    ax.text(x, 0.02, f"intractable\n{row['action_bins']}^{row['action_dims']}",
                            transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7,
                            rotation=90, color=colours[algo])
        ax.set_yscale("log")
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([task_label(t, by_key) for t in tasks], fontsize=8)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"K = {bench.action_bins} bins per dimension, batch {bench.batch_size}, QMLE m_target "
                 f"{bench.m_target}, {bench.threads} torch thread(s), CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="DMC tasks (domain-task)")
    p.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS,
                   help="agents, each built as examples/dmc_qmle_discrete.py builds it")
    p.add_argument("--action-bins", type=int, default=3, help="K bins per action dimension")
    p.add_argument("--fill-steps", type=int, default=3000,
                   help="uniformly random env steps put in the buffer before timing")
    p.add_argument("--repeats", type=int, default=20, help="timed updates (the median is reported)")
    p.add_argument("--warmup-updates", type=int, default=3, help="untimed updates before timing")
    p.add_argument("--batch-size", type=int, default=256, help="replay batch size (Table 1)")
    p.add_argument("--m-target", type=int, default=100, help="QMLE candidates per TD target (Table 1)")
    p.add_argument("--m-greedy", type=int, default=1000, help="QMLE candidates per action (Table 1)")
    p.add_argument("--buffer-size", type=int, default=1_000_000, help="replay capacity (Table 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of every agent, env and buffer")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="benchmarks/results/discrete", help="output directory")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    bench = build_parser().parse_args(argv)
    torch.set_num_threads(bench.threads)
    rows = []
    for task in bench.tasks:
        for algo in bench.algorithms:
            row = measure(algo, task, bench)
            rows.append(row)
            print(json.dumps({k: row[k] for k in row if k not in ("reason", "largest_tensor_op")}),
                  flush=True)
    report = {
        "args": vars(bench), "machine": describe_machine(), "results": rows,
        "ratios": ratios_to_qmle(rows), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(bench.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "discrete_update_cost.json").write_text(json.dumps(report, indent=2))
    plot(rows, bench, out / "discrete_update_cost.png")
    print(format_table(rows))
    for task, task_ratios in report["ratios"].items():
        print(task, " ".join(f"{k}={v}" for k, v in task_ratios.items()))
    print(f"wrote {out / 'discrete_update_cost.json'}")
    return report


if __name__ == "__main__":
    main()
