#!/usr/bin/env python
"""Run an example script over a grid of variants × tasks × seeds and tabulate the results.

Every run is a separate process of an example (one torch thread each), called with the same run
flags, so all variants get the same environment wrappers, seeds, budget and evaluation protocol
(greedy, ``--eval-episodes`` episodes). Each run writes the examples' ``--summary-json``; this
script collects them into ``OUT/summary.json`` and a Markdown table ``OUT/table.md`` (mean ±
standard error across seeds of the final evaluation return, and env steps/s).

A variant is ``NAME=FLAGS``: the flags it adds to the example's command line.

    python benchmarks/run_matrix.py --script examples/mujoco_iq.py \\
        --tasks InvertedPendulum-v5 --seeds 0 1 2 --total-steps 10000 --workers 2 \\
        --variant "iq=--algo iq" --variant "miq=--algo miq" --variant "sac=--algo sac"

Runs whose summary already exists in OUT are skipped, so an interrupted matrix resumes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Run:
    variant: str
    flags: tuple[str, ...]
    task: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant}__{self.task}__seed{self.seed}"


def parse_variant(text: str) -> tuple[str, tuple[str, ...]]:
    name, sep, flags = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--variant expects NAME=FLAGS, got {text!r}")
    return name, tuple(shlex.split(flags))


def command(run: Run, args: argparse.Namespace, out: Path) -> list[str]:
    return [
        sys.executable, args.script, "--task", run.task, "--seed", str(run.seed),
        "--total-steps", str(args.total_steps), "--threads", "1", "--no-progress",
        "--logdir", str(out / "log" / run.variant), "--summary-json", str(out / f"{run.name}.json"),
        *args.extra, *run.flags,
    ]


def execute(run: Run, args: argparse.Namespace, out: Path) -> dict | None:
    summary_path = out / f"{run.name}.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    if args.tabulate_only:
        return None
    log_path = out / f"{run.name}.log"
    started = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.run(command(run, args, out), stdout=log, stderr=subprocess.STDOUT, check=False)
    status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {log_path})"
    print(f"{run.name}: {status} in {time.perf_counter() - started:.0f}s", flush=True)
    return json.loads(summary_path.read_text()) if summary_path.exists() else None


def mean_sem(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    sem = float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else 0.0
    return float(arr.mean()), sem


def tabulate(runs: list[Run], results: dict[str, dict], args: argparse.Namespace) -> str:
    variants = list(dict.fromkeys(r.variant for r in runs))
    lines = [
        f"Final greedy evaluation return, mean ± s.e. over seeds {args.seeds}, "
        f"{args.total_steps} env steps ({Path(args.script).name}).",
        "",
        "| task | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for task in args.tasks:
        cells = []
        for variant in variants:
            got = [results[r.name] for r in runs
                   if r.variant == variant and r.task == task and r.name in results]
            if not got:
                cells.append("—")
                continue
            m, se = mean_sem([g["eval_return_mean"] for g in got])
            speed = np.mean([g["env_steps_per_second"] for g in got])
            cells.append(f"{m:.1f} ± {se:.1f} (n={len(got)}, {speed:.0f} steps/s)")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--script", required=True, help="the example script to run, e.g. examples/mujoco_iq.py")
    p.add_argument("--tasks", nargs="+", required=True, help="tasks, passed as --task")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds, passed as --seed")
    p.add_argument("--total-steps", type=int, required=True, help="env steps per run, warm-up included")
    p.add_argument("--variant", type=parse_variant, action="append", required=True,
                   help="NAME=FLAGS; repeat for each variant")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel (one core each)")
    p.add_argument("--out", default="benchmarks/results/matrix", help="output directory")
    p.add_argument("--tabulate-only", action="store_true",
                   help="run nothing; tabulate the summaries already in OUT")
    p.add_argument("extra", nargs=argparse.REMAINDER,
                   help="after --, flags passed to every run (e.g. -- --epoch-steps 5000)")
    args = p.parse_args(argv)
    if args.extra and args.extra[0] == "--":
        args.extra = args.extra[1:]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [Run(name, flags, task, seed) for task in args.tasks for seed in args.seeds
            for name, flags in args.variant]
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        outcomes = list(pool.map(lambda r: execute(r, args, out), runs))
    results = {r.name: o for r, o in zip(runs, outcomes, strict=True) if o is not None}
    table = tabulate(runs, results, args)
    (out / "table.md").write_text(table)
    report = {"args": {k: v for k, v in vars(args).items() if k != "variant"},
              "variants": {name: list(flags) for name, flags in args.variant},
              "results": results, "failed": [r.name for r in runs if r.name not in results]}
    (out / "summary.json").write_text(json.dumps(report, indent=2))
    print(table)
    return report


if __name__ == "__main__":
    main()
