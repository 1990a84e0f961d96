#!/usr/bin/env python
"""Learning curves of our algorithms against Tianshou 2's own DDPG, TD3 and SAC, side by side.

Every algorithm of one invocation gets the same tasks, seeds, environment wrappers, env-step
budget, evaluation protocol (deterministic actions, N episodes at every evaluation interval) and
torch threads; each (algorithm, task, seed) runs in a process of its own. Writes, under OUT:

  runs/TASK/ALGO__seedS.json   the curve, speeds, peak RSS, versions, machine, commit, date
  logs/TASK/ALGO__seedS.log    the run's output
  summary.json, table.md       final return mean ± s.e. across seeds and env steps/s per task ×
                               algorithm; IQM across tasks (rliable, or our bootstrap without it);
                               for the 100k, iq100k and savo100k tiers, their issue's goal checked
                               per task (met / not met / open, provisional below 3 seeds)
  plots/                       curves_TASK.png (mean ± s.e.), curves.png, speed.png, iqm.png

The summary covers the runs of the invocation only: after finishing part of a tier, regenerate
the tier's whole table with --tier NAME --report-only.

Runs whose JSON exists are skipped, so an interrupted invocation resumes where it stopped; each
run also checkpoints after every evaluation (OUT/checkpoints, deleted once its JSON is written),
and --resume continues a killed run from there.

Tiers (every preset is overridable by the flags below):
  smoke  1 task, QMLE and TD3, 1 seed, 2000 env steps: a wiring check (about 2 minutes)
  quick  6 DMC tasks × QMLE, DDPG, TD3, SAC × 3 seeds at the budget that fits 1 h on 2 free cores
  100k   3 DMC tasks × QMLE (paper), QMLE (efficient), TD3, auto-α SAC × 3 seeds × 100 000 env
         steps, 10-episode evaluation every 10 000 steps (about 19 CPU-hours; several sittings)
  iq100k Hopper-v5, Walker2d-v5, InvertedDoublePendulum-v5 × IQ, M-IQ, M-IQ (paper τ), auto-α
         SAC × 3 seeds × 100 000 env steps, the same evaluation (issue 13)
  savo100k  restricted InvertedPendulum, InvertedDoublePendulum, Hopper (the paper's layout) ×
         SAVO, SAVO with list length 1, TD3 × 3 seeds × 100 000 env steps (issue 14)
  full   paper scale: 1M env steps, 10 seeds (days of CPU: use --workers or --ray)

  python benchmarks/learning.py --tier smoke
  python benchmarks/learning.py --tier quick --dry-run           # the runs and the estimated time
  python benchmarks/learning.py --tier quick
  python benchmarks/learning.py --tasks walker-walk Hopper-v5 --algorithms qmle td3 sac \\
      --seeds 0 1 2 --steps 50000 --eval-interval 5000 --workers 2
  python benchmarks/learning.py --tier full --ray --ray-address auto
  python benchmarks/learning.py --tier quick --report-only       # tables and plots of OUT only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import plots  # noqa: E402
from benchmarks.harness.algorithms import entry_for, registry  # noqa: E402
from benchmarks.harness.executor import (  # noqa: E402
    Outcome,
    ProtocolMismatchError,
    RayUnavailableError,
    load_result,
    run_all,
    runs_for,
)
from benchmarks.harness.meta import git_commit, library_versions, machine, now_iso, usable_cpus  # noqa: E402
from benchmarks.harness.report import goal_section, iqm_section, markdown, table_rows  # noqa: E402
from benchmarks.harness.spec import RunSpec, result_path  # noqa: E402
from benchmarks.harness.stats import rliable_available  # noqa: E402
from benchmarks.harness.tiers import REFERENCE_SPEEDS, Tier, estimate_seconds, hours, scaled_warmup, tiers  # noqa: E402


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's line breaks."""


def build_parser() -> argparse.ArgumentParser:
    algorithms = registry()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    tier_names = list(tiers({name: e.warmup for name, e in algorithms.items()}, cpus=1))
    p.add_argument("--tier", choices=tier_names, default="smoke", help="preset to start from")
    grid = p.add_argument_group("what runs (None: the tier's preset)")
    grid.add_argument("--tasks", nargs="+", default=None,
                      help="DMC 'domain-task' names, gymnasium ids and/or SAVO's restricted tasks "
                           "(e.g. walker-walk Hopper-v5 restricted-Hopper)")
    grid.add_argument("--algorithms", nargs="+", default=None,
                      help="; ".join(f"{e.name}: {e.source}" for e in algorithms.values())
                      + "; or a variant: a QMLE, IQ or SAVO entry and its flags joined by '+' "
                        "(e.g. qmle+update-every=2+n-step=3, savo+surrogate-critics=online)")
    grid.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds")
    grid.add_argument("--num-seeds", type=int, default=None, help="seeds 0 … N-1 (instead of --seeds)")
    protocol = p.add_argument_group("protocol (None: the tier's preset), the same for every algorithm")
    protocol.add_argument("--steps", type=int, default=None, help="env-step budget per run, warm-up included")
    protocol.add_argument("--eval-interval", type=int, default=None,
                          help="env steps between deterministic evaluations (the last is at --steps)")
    protocol.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation")
    protocol.add_argument("--warmup", type=int, default=None,
                          help="random steps for every algorithm; None: each algorithm's documented "
                               "number, scaled to the budget below 1M steps")
    protocol.add_argument("--threads", type=int, default=None, help="torch threads per run")
    protocol.add_argument("--device", default="cpu", help="torch device of every run")
    execution = p.add_argument_group("execution")
    execution.add_argument("--workers", type=int, default=None, help="runs at once as local processes")
    execution.add_argument("--ray", action="store_true",
                           help="run each (algorithm, task, seed) as a Ray task (needs `pip install ray`)")
    execution.add_argument("--ray-address", default=None,
                           help="Ray cluster to join (e.g. auto); None starts a local one")
    execution.add_argument("--out", default=None,
                           help="output folder; None: benchmarks/results/learning/TIER")
    execution.add_argument("--resume", action="store_true",
                           help="continue killed runs from their checkpoints (OUT/checkpoints, written "
                                "after every evaluation) instead of starting them again")
    execution.add_argument("--dry-run", action="store_true",
                           help="print the runs and the estimate; run nothing")
    execution.add_argument("--report-only", action="store_true",
                           help="run nothing; aggregate and plot the runs already in OUT")
    stats = p.add_argument_group("statistics")
    stats.add_argument("--bootstrap-reps", type=int, default=10_000,
                       help="bootstrap replications of the IQM CI")
    stats.add_argument("--no-rliable", action="store_true",
                       help="use our IQM bootstrap even if rliable is installed")
    return p


def resolve(args: argparse.Namespace) -> tuple[Tier, list[RunSpec], Path]:
    """The tier's presets overridden by the flags, the runs, and the output folder."""
    registered = registry()
    tier = tiers({name: e.warmup for name, e in registered.items()}, cpus=usable_cpus())[args.tier]
    tasks = tuple(args.tasks or tier.tasks)
    # a tier's preset may name entries this checkout lacks (e.g. savo); explicit names must exist
    names = args.algorithms or [a for a in tier.algorithms if a in registered]
    entries = {name: entry_for(name) for name in names}
    algorithms = tuple(entries)
    seeds = tuple(args.seeds if args.seeds is not None else
                  range(args.num_seeds) if args.num_seeds is not None else tier.seeds)
    budget = args.steps or tier.budget
    warmups = {a: args.warmup if args.warmup is not None else scaled_warmup(entries[a].warmup, budget=budget)
               for a in algorithms}
    specs = runs_for(
        tasks=tasks, algorithms=algorithms, seeds=seeds, warmups=warmups, budget=budget,
        eval_interval=args.eval_interval or min(tier.eval_interval, budget),
        eval_episodes=args.eval_episodes or tier.eval_episodes, threads=args.threads or tier.threads,
        device=args.device,
    )
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / "learning" / tier.name
    return tier, specs, out


def describe_plan(specs: list[RunSpec], *, workers: int) -> tuple[str, float | None]:
    """A line on the runs and, where every algorithm has a reference speed, the estimated time."""
    unknown = sorted({s.algorithm for s in specs} - set(REFERENCE_SPEEDS))
    line = f"{len(specs)} runs, {workers} at once"
    if unknown:
        return f"{line}; no time estimate (no reference speed for {', '.join(unknown)})", None
    seconds = estimate_seconds(specs)
    return (f"{line}; time model: {hours(seconds)} of CPU, about {hours(seconds / workers)} of wall time "
            f"on {workers} free core(s)"), seconds


def progress(total: int) -> Any:
    """A ``report`` callback printing one line per finished run."""
    count = {"n": 0}

    def report(outcome: Outcome) -> None:
        count["n"] += 1
        spent = f" in {outcome.seconds:.0f}s" if outcome.seconds else ""
        detail = f": {outcome.message}" if outcome.message else ""
        print(f"[{count['n']}/{total}] {outcome.spec.name}: {outcome.status}{spent}{detail}", flush=True)

    return report


def aggregate(
    specs: list[RunSpec], results: list[dict[str, Any]], *, tier: Tier, args: argparse.Namespace
) -> dict[str, Any]:
    """The invocation's summary: protocol, rows, IQM, missing runs, provenance."""
    tasks = list(dict.fromkeys(s.task for s in specs))
    algorithms = list(dict.fromkeys(s.algorithm for s in specs))
    first = specs[0]
    finished = {(r["algorithm"], r["task"], r["seed"]) for r in results}
    section = iqm_section(results, tasks=tasks, algorithms=algorithms, reps=args.bootstrap_reps,
                          use_rliable=False if args.no_rliable else None)
    rows = table_rows(results, tasks=tasks, algorithms=algorithms)
    for row in rows:  # rows of runs not finished yet carry no label of their own
        row["label"] = row["label"] or entry_for(row["algorithm"]).label
    return {
        "tier": tier.name,
        "protocol": {
            "tasks": tasks, "algorithms": algorithms, "seeds": sorted({s.seed for s in specs}),
            "budget": first.budget, "warmups": {s.algorithm: s.warmup for s in specs},
            "eval_interval": first.eval_interval, "eval_episodes": first.eval_episodes,
            "threads": first.threads, "device": first.device,
        },
        "rows": rows,
        "goals": goal_section([g for g in tier.goals if {g.ours, *g.against} <= set(algorithms)], rows,
                              tasks=tasks, seeds=len({s.seed for s in specs})),
        "iqm": section,
        "iqm_note": None if section else "IQM across tasks: needs at least two tasks.",
        "missing": [s.name for s in specs if (s.algorithm, s.task, s.seed) not in finished],
        "versions": library_versions(),
        "machine": machine(torch_threads=first.threads),
        "git": git_commit(),
        "date": now_iso(),
    }


def write_plots(summary: dict[str, Any], results: list[dict[str, Any]], *, out: Path) -> list[str]:
    tasks, algorithms = summary["protocol"]["tasks"], summary["protocol"]["algorithms"]
    folder = out / "plots"
    paths = [plots.plot_curves(results, task=t, algorithms=algorithms, path=folder / f"curves_{t}.png")
             for t in tasks]
    if len(tasks) > 1:
        paths.append(plots.plot_curve_grid(results, tasks=tasks, algorithms=algorithms,
                                           path=folder / "curves.png"))
    paths.append(plots.plot_speed(summary["rows"], tasks=tasks, algorithms=algorithms,
                                  path=folder / "speed.png", threads=summary["protocol"]["threads"]))
    if summary["iqm"]:
        labels = {r["algorithm"]: r["label"] for r in results}
        paths.append(plots.plot_iqm(summary["iqm"], path=folder / "iqm.png", labels=labels))
    return [str(p.relative_to(out)) for p in paths]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    try:
        tier, specs, out = resolve(args)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    workers = args.workers or tier.workers
    plan, estimate = describe_plan(specs, workers=workers)
    print(f"{tier.name} tier → {out}: {plan}", flush=True)
    if not rliable_available() or args.no_rliable:
        print("IQM intervals: rliable not used; our own IQM and percentile stratified bootstrap "
              "(pip install rliable for rliable's)", flush=True)
    if args.dry_run:
        for spec in specs:
            print(f"  {spec.name}: {spec.budget} steps, warm-up {spec.warmup}, eval every "
                  f"{spec.eval_interval} × {spec.eval_episodes} episodes")
        return {"runs": [s.name for s in specs], "estimate_seconds": estimate}
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    if not args.report_only:
        try:
            outcomes = run_all(specs, out=out, workers=workers, use_ray=args.ray,
                               ray_address=args.ray_address, report=progress(len(specs)),
                               resume=args.resume)
        except (RayUnavailableError, ProtocolMismatchError) as err:
            raise SystemExit(str(err)) from err
    results = [r for r in (load_result(out, s) for s in specs) if r is not None]
    if not results:
        failed = [o.spec.name for o in outcomes if o.status == "failed"]
        raise SystemExit(f"no finished runs in {out}" + (f"; failed: {', '.join(failed)} (see {out / 'logs'})"
                                                          if failed else ""))
    summary = aggregate(specs, results, tier=tier, args=args)
    summary["outcomes"] = {o.spec.name: o.status for o in outcomes}
    summary["failed"] = [o.spec.name for o in outcomes if o.status == "failed"]
    summary["estimate_seconds"] = estimate
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    summary["runs"] = [str(result_path(out, s).relative_to(out)) for s in specs
                       if result_path(out, s).exists()]
    summary["plots"] = write_plots(summary, results, out=out)
    table = markdown(summary)
    (out / "table.md").write_text(table)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(table, flush=True)
    print(f"wrote {out / 'summary.json'}, {out / 'table.md'} and {len(summary['plots'])} plots "
          f"in {summary['wall_seconds']:.0f}s", flush=True)
    return summary


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    report = main()
    sys.exit(1 if report.get("failed") else 0)
