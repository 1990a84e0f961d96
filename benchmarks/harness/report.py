"""The aggregate of an invocation: a row per (task, algorithm), the IQM across tasks, Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.harness.stats import iqm_with_ci, mean_sem, normalise, normalise_scores
from benchmarks.harness.tasks import score_range
from benchmarks.harness.tiers import Goal

ROW_KEYS = (
    "task", "algorithm", "label", "seeds", "final_return_mean", "final_return_sem", "env_steps_per_second",
    "gradient_updates_per_second", "peak_rss_mib", "wall_seconds", "cpu_seconds", "cpu_seconds_by_machine",
    "time_to",
)
"""Every field of one row of the aggregate."""

RETURN_THRESHOLDS = (500.0, 700.0)
"""Returns whose first crossing the report times (the 100k tier's 500 and 700 on DMC)."""


def time_to_return(result: dict[str, Any], threshold: float, clock: str = "cpu_seconds") -> float | None:
    """``clock`` seconds at the first evaluation whose mean return reaches ``threshold``; None if
    none does or the curve carries no clock (runs made before the harness recorded it)."""
    for point in result["curve"]:
        if point["return_mean"] >= threshold:
            return point.get(clock)
    return None


def threshold_times(got: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per threshold: the seeds that reached it and the mean CPU and wall seconds they took."""
    times = {}
    for threshold in RETURN_THRESHOLDS:
        cpu = [t for r in got if (t := time_to_return(r, threshold)) is not None]
        wall = [t for r in got if (t := time_to_return(r, threshold, "wall_seconds")) is not None]
        times[f"{threshold:g}"] = {
            "reached": sum(time_to_return(r, threshold, "env_step") is not None for r in got),
            "cpu_seconds": round(float(np.mean(cpu)), 1) if cpu else None,
            "wall_seconds": round(float(np.mean(wall)), 1) if wall else None,
        }
    return times


UNKNOWN_MACHINE = "unknown CPU"
"""The machine key of a run whose JSON records no CPU model."""


def machine_of(result: dict[str, Any]) -> str:
    """The CPU a run ran on, as its model name and vector ISA level ("AMD EPYC [avx2]"): CPU
    seconds are only comparable between runs on the same one. Sessions here get different
    machines, and one model name has come with AVX2 only and with AVX-512 BF16. Runs recorded
    before the ISA was are keyed by the model name alone."""
    machine = result.get("machine") or {}
    model = machine.get("cpu_model") or UNKNOWN_MACHINE
    isa = machine.get("cpu_isa")
    return f"{model} [{isa}]" if isa else model


def cpu_seconds_by_machine(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]] | None:
    """Per CPU model: the runs on it and their mean CPU seconds; None if a run lacks CPU time."""
    if not all("cpu_seconds" in r["timing"] for r in results):
        return None
    grouped: dict[str, list[float]] = {}
    for r in results:
        grouped.setdefault(machine_of(r), []).append(r["timing"]["cpu_seconds"])
    return {m: {"runs": len(v), "cpu_seconds": round(float(np.mean(v)), 2)}
            for m, v in sorted(grouped.items())}


def machine_matched_cpu_ratio(
    ours: dict[str, dict[str, float]], theirs: dict[str, dict[str, float]]
) -> tuple[float | None, dict[str, float]]:
    """Our CPU seconds over theirs, compared within each CPU model both have runs on, then averaged
    over those models weighted by our runs there: ``(ratio or None without a shared model,
    {model: ratio})``."""
    shared = sorted(set(ours) & set(theirs))
    per_machine = {m: ours[m]["cpu_seconds"] / theirs[m]["cpu_seconds"] for m in shared
                   if theirs[m]["cpu_seconds"] > 0}
    if not per_machine:
        return None, {}
    weights = {m: ours[m]["runs"] for m in per_machine}
    pooled = sum(weights[m] * r for m, r in per_machine.items()) / sum(weights.values())
    return round(pooled, 3), {m: round(r, 3) for m, r in per_machine.items()}


def _mean(results: Sequence[dict[str, Any]], key: str) -> float:
    return round(float(np.mean([r[key] for r in results])), 2)


def table_rows(
    results: Sequence[dict[str, Any]], *, tasks: Sequence[str], algorithms: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per requested (task, algorithm), in request order; ``seeds`` is empty where no run
    finished, and the numbers are then None."""
    rows = []
    for task in tasks:
        for algo in algorithms:
            got = sorted((r for r in results if r["task"] == task and r["algorithm"] == algo),
                         key=lambda r: r["seed"])
            row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
            row.update(task=task, algorithm=algo, seeds=[r["seed"] for r in got])
            if got:
                mean, sem = mean_sem([r["final_return_mean"] for r in got])
                row.update(
                    label=got[0]["label"], final_return_mean=round(mean, 2),
                    final_return_sem=None if sem is None else round(sem, 2),
                    env_steps_per_second=_mean(got, "env_steps_per_second"),
                    gradient_updates_per_second=_mean(got, "gradient_updates_per_second"),
                    peak_rss_mib=round(max(r["peak_rss_mib"] for r in got), 1),
                    wall_seconds=_mean([r["timing"] for r in got], "wall_seconds"),
                    cpu_seconds=(_mean([r["timing"] for r in got], "cpu_seconds")
                                 if all("cpu_seconds" in r["timing"] for r in got) else None),
                    cpu_seconds_by_machine=cpu_seconds_by_machine(got),
                    time_to=threshold_times(got),
                )
            rows.append(row)
    return rows


def iqm_section(
    results: Sequence[dict[str, Any]], *, tasks: Sequence[str], algorithms: Sequence[str], reps: int,
    use_rliable: bool | None = None,
) -> dict[str, Any] | None:
    """IQM of normalised final returns across tasks, per algorithm, with its bootstrap interval.

    Uses the seeds every requested task has for that algorithm (a complete ``[runs, tasks]``
    matrix); None with fewer than two tasks, or when no algorithm has such a matrix.
    """
    if len(tasks) < 2:
        return None
    finals: dict[tuple[str, str], list[float]] = {}
    for r in results:
        finals.setdefault((r["task"], r["algorithm"]), []).append(r["final_return_mean"])
    _, ranges = normalise_scores(finals, ranges=score_range)

    def score(result: dict[str, Any]) -> float:
        used = ranges[result["task"]]
        return normalise(result["final_return_mean"], low=used["low"], high=used["high"])

    score_dict, seeds_used = {}, {}
    for algo in algorithms:
        per_task = [{r["seed"]: r for r in results if r["task"] == task and r["algorithm"] == algo}
                    for task in tasks]
        common = sorted(set.intersection(*(set(p) for p in per_task)))
        if common:
            score_dict[algo] = np.array([[score(p[s]) for p in per_task] for s in common], dtype=float)
            seeds_used[algo] = common
    if not score_dict:
        return None
    estimates, method = iqm_with_ci(score_dict, reps=reps, use_rliable=use_rliable)
    return {
        "method": method,
        "normalisation": ranges,
        "algorithms": {
            algo: {"iqm": round(e.value, 4), "ci_low": round(e.low, 4), "ci_high": round(e.high, 4),
                   "seeds": seeds_used[algo]}
            for algo, e in estimates.items()
        },
    }


def _task_verdict(goal: Goal, rows: dict[str, dict[str, Any]], seeds: int) -> dict[str, Any]:
    """Whether ``goal`` holds on one task: ``"yes"``, ``"no"`` or ``"pending"`` (a run, or the CPU
    time a time clause needs, missing),
    with the ratios it rests on; ``provisional`` while any of its rows has fewer than ``seeds``."""
    names = (goal.ours, *goal.against, *((goal.cpu_against,) if goal.cpu_against else ()))
    if any(not rows.get(n, {}).get("seeds") for n in names):
        return {"holds": "pending", "ratios": {}, "provisional": True}
    ours = rows[goal.ours]["final_return_mean"]
    ratios, holds = {}, True
    for base in goal.against:
        theirs = rows[base]["final_return_mean"]
        ratios[base] = None if theirs <= 0 else round(ours / theirs, 3)
        holds &= ours > goal.ratio * theirs if goal.strict else ours >= goal.ratio * theirs
    cpu_ratio, cpu_by_machine = None, {}
    if goal.cpu_against:
        ours_cpu = rows[goal.ours].get("cpu_seconds_by_machine")
        theirs_cpu = rows[goal.cpu_against].get("cpu_seconds_by_machine")
        # pending without CPU time (runs from before the harness recorded it) or a shared CPU model
        if ours_cpu and theirs_cpu:
            cpu_ratio, cpu_by_machine = machine_matched_cpu_ratio(ours_cpu, theirs_cpu)
        if cpu_ratio is None:
            return {"holds": "pending", "ratios": ratios, "cpu_ratio": None, "provisional": True}
        holds &= cpu_ratio <= 1.0
    return {"holds": "yes" if holds else "no", "ratios": ratios, "cpu_ratio": cpu_ratio,
            "cpu_ratio_by_machine": cpu_by_machine,
            "provisional": any(len(rows[n]["seeds"]) < seeds for n in names)}


def goal_section(
    goals: Sequence[Goal], rows: Sequence[dict[str, Any]], *, tasks: Sequence[str], seeds: int
) -> list[dict[str, Any]]:
    """Each goal checked per task from the table's rows (means over the seeds that finished).

    A goal is ``"met"`` once it holds on ``tasks_needed`` tasks, ``"not met"`` once too few tasks
    are left where it could still hold, and ``"open"`` otherwise; verdicts that rest on fewer than
    ``seeds`` seeds per row are marked provisional.
    """
    by_task: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_task.setdefault(row["task"], {})[row["algorithm"]] = row
    sections = []
    for goal in goals:
        per_task = {t: _task_verdict(goal, by_task.get(t, {}), seeds) for t in tasks}
        holding = sum(v["holds"] == "yes" for v in per_task.values())
        possible = sum(v["holds"] != "no" for v in per_task.values())
        status = ("met" if holding >= goal.tasks_needed
                  else "not met" if possible < goal.tasks_needed else "open")
        # a verdict is provisional when the tasks it rests on have rows short of seeds
        deciding = {"met": ("yes",), "not met": ("no",), "open": ("yes", "no", "pending")}[status]
        sections.append({
            "issue": goal.issue, "ours": goal.ours, "against": list(goal.against), "ratio": goal.ratio,
            "strict": goal.strict, "cpu_against": goal.cpu_against, "tasks_needed": goal.tasks_needed,
            "tasks": per_task, "holding": holding, "status": status,
            "provisional": any(v["provisional"] for v in per_task.values() if v["holds"] in deciding),
        })
    return sections


def _goal_markdown(section: dict[str, Any], labels: dict[str, str]) -> list[str]:
    name = labels.get(section["ours"], section["ours"])
    bases = [labels.get(b, b) for b in section["against"]]
    relation = ("above" if section["strict"] else "at least as high as" if section["ratio"] == 1
                else f"at least {section['ratio']:g} ×")
    needed, count = section["tasks_needed"], len(section["tasks"])
    clauses = [f"{relation} {' and '.join(bases)}"] if bases else []
    if section["cpu_against"]:
        slower = labels.get(section["cpu_against"], section["cpu_against"])
        clauses.append(f"in no more CPU seconds than {slower}")
    clause = f"{name} {', '.join(clauses)} on {needed} of {count} tasks"
    status = section["status"]
    if section["provisional"]:
        status += " (provisional: some rows have fewer seeds)"
    cpu_how = ""
    if section["cpu_against"]:
        cpu_how = (" CPU ÷ compares runs on the same CPU only (model and vector ISA; per CPU in "
                   "brackets), averaged over the CPUs both have runs on, weighted by our runs there.")
    lines = ["", f"Goal of issue {section['issue']}: {clause}. **{status}**, holding on "
             f"{section['holding']} task(s). Ratios: {name}'s mean over seeds ÷ the other's.{cpu_how}", ""]
    heads = [f"÷ {b}" for b in bases] + (["CPU ÷"] if section["cpu_against"] else [])
    lines += ["| task | holds | " + " | ".join(heads) + " |", "| --- | --- |" + " ---: |" * len(heads)]
    for task, v in section["tasks"].items():
        cells = [_cell(v["ratios"].get(b), 3) for b in section["against"]]
        if section["cpu_against"]:
            cell = _cell(v.get("cpu_ratio"), 3)
            by_machine = v.get("cpu_ratio_by_machine") or {}
            if len(by_machine) > 1:
                cell += " (" + "; ".join(f"{m}: {r:.3f}" for m, r in by_machine.items()) + ")"
            cells.append(cell)
        lines.append(f"| {task} | {v['holds']} | " + " | ".join(cells) + " |")
    return lines


def _cell(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(aggregate: dict[str, Any]) -> str:
    """The aggregate as Markdown: the protocol, the per-(task, algorithm) table, the IQM table."""
    p = aggregate["protocol"]
    lines = [
        f"# Learning benchmark ({aggregate['tier']} tier)",
        "",
        f"{p['budget']} env steps per run (warm-up included: {p['warmups']}), deterministic evaluation "
        f"over {p['eval_episodes']} episode(s) every {p['eval_interval']} env steps, {p['threads']} torch "
        f"thread(s), device {p['device']}, seeds {p['seeds']}. Final return: the last evaluation, mean ± "
        "standard error across seeds. Speeds: learning phase only (after warm-up, without evaluation).",
        "",
    ]
    machines: dict[str, int] = {}
    for row in aggregate["rows"]:
        for model, entry in (row.get("cpu_seconds_by_machine") or {}).items():
            machines[model] = machines.get(model, 0) + entry["runs"]
    if machines:
        listed = "; ".join(f"{m}: {n}" for m, n in sorted(machines.items()))
        lines += [f"Machines (CPU model [vector ISA]: runs): {listed}. Speeds and CPU seconds differ "
                  "between them; the goal checks compare like with like.", ""]
    lines += [
        "| task | algorithm | final return | seeds | env steps/s | updates/s | peak RSS (MiB) | wall (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in aggregate["rows"]:
        if row["seeds"]:
            sem = "n/a" if row["final_return_sem"] is None else f"{row['final_return_sem']:.1f}"
            final = f"{row['final_return_mean']:.1f} ± {sem}"
        else:
            final = "not run"
        lines.append(
            f"| {row['task']} | {row['label'] or row['algorithm']} | {final} | {len(row['seeds'])} | "
            f"{_cell(row['env_steps_per_second'])} | {_cell(row['gradient_updates_per_second'])} | "
            f"{_cell(row['peak_rss_mib'], 0)} | {_cell(row['wall_seconds'], 0)} |"
        )
    timed = [row for row in aggregate["rows"] if row["seeds"] and row.get("time_to")]
    if timed:
        heads = " | ".join(f"to {t:g}: seeds, CPU s, wall s" for t in RETURN_THRESHOLDS)
        lines += ["", "Time to a return: the first evaluation at or above it (CPU seconds of the run's "
                  "process, which other processes sharing the machine do not inflate, and wall seconds; "
                  "means over the seeds that reached it). Total CPU seconds per run, for comparison.", "",
                  f"| task | algorithm | CPU s per run | {heads} |",
                  "| --- | --- | ---: |" + " --- |" * len(RETURN_THRESHOLDS)]
        for row in timed:
            cells = []
            for t in RETURN_THRESHOLDS:
                entry = row["time_to"][f"{t:g}"]
                cells.append(f"{entry['reached']}/{len(row['seeds'])}, {_cell(entry['cpu_seconds'], 0)}, "
                             f"{_cell(entry['wall_seconds'], 0)}")
            lines.append(f"| {row['task']} | {row['label'] or row['algorithm']} | "
                         f"{_cell(row['cpu_seconds'], 0)} | " + " | ".join(cells) + " |")
    section = aggregate.get("iqm")
    if section:
        lines += ["", f"IQM of normalised final returns across tasks ({section['method']}).", "",
                  "| algorithm | IQM | 95% CI | seeds |", "| --- | ---: | --- | --- |"]
        for algo, e in section["algorithms"].items():
            interval = f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
            lines.append(f"| {algo} | {e['iqm']:.3f} | {interval} | {e['seeds']} |")
        how = sorted(f"{task}: {r['how']} [{r['low']:g}, {r['high']:g}]"
                     for task, r in section["normalisation"].items())
        lines += ["", "Normalisation: " + "; ".join(how) + "."]
    elif aggregate.get("iqm_note"):
        lines += ["", aggregate["iqm_note"]]
    labels = {row["algorithm"]: row["label"] or row["algorithm"] for row in aggregate["rows"]}
    for section in aggregate.get("goals") or []:
        lines += _goal_markdown(section, labels)
    if aggregate.get("missing"):
        lines += ["", "Missing runs: " + ", ".join(aggregate["missing"]) + "."]
    return "\n".join(lines) + "\n"


__all__ = [
    "RETURN_THRESHOLDS", "ROW_KEYS", "UNKNOWN_MACHINE", "cpu_seconds_by_machine", "goal_section",
    "iqm_section", "machine_matched_cpu_ratio", "machine_of", "markdown", "table_rows", "time_to_return",
]
