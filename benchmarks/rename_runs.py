#!/usr/bin/env python
"""Rename finished learning runs when a default changes, so that every name says what ran.

A run is named after the flags that differ from the defaults of its day (``miq``,
``miq+no-munchausen-clip``). When a default changes, the runs made under the old default must
take the old setting into their name, and the runs that measured the new setting as a variant
become the default's runs. This tool does that to a tier's directory (``benchmarks/results/
learning/TIER``):

* moves ``runs/TASK/OLD__seedS.json`` to ``NEW__seedS.json`` and its log alike;
* rewrites ``algorithm``, ``label``, ``hyperparameter_source`` and ``protocol.algorithm`` from the
  harness's entry for NEW, and appends the former identity, with ``--note``, to ``renamed_from``;
* with ``--set-missing KEY VALUE``, records a hyperparameter that the run's code did not have yet,
  at the value that code used (VALUE is JSON, e.g. ``0.0`` or ``true``).

It checks everything first and then writes; a new name may be an old name of another run, since the
files move in two phases. Regenerate the tier's report afterwards (``learning.py --report-only``).

    python benchmarks/rename_runs.py --dir benchmarks/results/learning/iq100k \\
        --rename "miq+probability-floor=0.01" miq --rename miq "miq+probability-floor=0" \\
        --note "the default floor became 0.01" --dry-run
    python benchmarks/rename_runs.py --dir benchmarks/results/learning/iq100k \\
        --append "+probability-floor=0" --bases iq miq --unless probability-floor --note "..."
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make `benchmarks` importable
from benchmarks.harness.algorithms import AlgorithmEntry, entry_for
from benchmarks.harness.spec import RunSpec, log_path, result_path

STAGING_SUFFIX = ".renaming"


@dataclass(frozen=True)
class Move:
    """One run's rename: where its JSON and log are, where they go, and the rewritten record."""

    tier: Path
    spec: RunSpec
    renamed: RunSpec
    record: dict[str, Any]

    @property
    def run(self) -> Path:
        return result_path(self.tier, self.spec)

    @property
    def target(self) -> Path:
        return result_path(self.tier, self.renamed)


def finished_runs(tier: Path) -> list[tuple[RunSpec, dict[str, Any]]]:
    """Every run JSON under ``tier`` with the spec its ``protocol`` records.

    :raises ValueError: for a JSON whose protocol is not a run spec, or that lies where another
        spec's result belongs.
    """
    runs = []
    for path in sorted((tier / "runs").glob("*/*.json")):
        record = json.loads(path.read_text())
        try:
            spec = RunSpec(**record["protocol"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path} does not record a run protocol: {err}") from err
        if result_path(tier, spec) != path:
            raise ValueError(f"{path} records {spec.name}, whose result belongs at {result_path(tier, spec)}")
        runs.append((spec, record))
    if not runs:
        raise ValueError(f"no runs under {tier / 'runs'}")
    return runs


def appended_names(
    names: Sequence[str], *, suffix: str, bases: Sequence[str], unless: Sequence[str] = ()
) -> dict[str, str]:
    """``name → name + suffix`` for every name whose base (before the first ``+``) is in ``bases`` and
    that contains none of ``unless``."""
    return {
        name: name + suffix
        for name in names
        if name.split("+", 1)[0] in bases and not any(text in name for text in unless)
    }


def renamed_record(
    record: dict[str, Any], *, renamed: RunSpec, entry: AlgorithmEntry, note: str, missing: Mapping[str, Any]
) -> dict[str, Any]:
    """``record`` as the run ``renamed``, with its former identity appended to ``renamed_from``."""
    out = copy.deepcopy(record)
    former = {"algorithm": record["algorithm"], "label": record.get("label"),
              "hyperparameter_source": record.get("hyperparameter_source"), "note": note}
    earlier = out.get("renamed_from")
    out["renamed_from"] = ([earlier] if isinstance(earlier, dict) else list(earlier or [])) + [former]
    out["algorithm"], out["label"] = renamed.algorithm, entry.label
    out["hyperparameter_source"] = entry.source
    out["protocol"] = renamed.protocol()
    hyperparameters = out.setdefault("hyperparameters", {})
    for key, value in missing.items():
        hyperparameters.setdefault(key, value)
    return out


def plan(
    tier: Path,
    renames: Mapping[str, str],
    *,
    note: str,
    missing: Mapping[str, Any] | None = None,
    lookup: Callable[[str], AlgorithmEntry] = entry_for,
) -> list[Move]:
    """Every move that ``renames`` asks of the runs under ``tier``, checked and nothing written.

    :raises ValueError: for an unknown new name, a rename onto a run that stays, or two runs that
        would end with one name.
    """
    runs = finished_runs(tier)
    entries = {new: lookup(new) for new in set(renames.values())}  # fails early on a bad name
    moves = []
    for spec, record in runs:
        if spec.algorithm not in renames:
            continue
        renamed = replace(spec, algorithm=renames[spec.algorithm])
        moves.append(Move(tier=tier, spec=spec, renamed=renamed,
                          record=renamed_record(record, renamed=renamed, entry=entries[renamed.algorithm],
                                                note=note, missing=missing or {})))
    leaving = {m.run for m in moves}
    for target, count in Counter(m.target for m in moves).items():
        if count > 1:
            raise ValueError(f"two runs would be renamed to {target}")
        if target.exists() and target not in leaving:
            raise ValueError(
                f"{target} exists and is not renamed itself; rename it too, or drop this rename")
    return moves


def apply(moves: Sequence[Move]) -> None:
    """Write the moves in two phases, so a new name may be the old name of another moved run."""
    staged = []
    for move in moves:
        staged_run = move.run.with_name(move.run.name + STAGING_SUFFIX)
        staged_run.write_text(json.dumps(move.record, indent=2) + "\n")
        move.run.unlink()
        log = log_path(move.tier, move.spec)
        staged_log = None
        if log.exists():
            staged_log = log.with_name(log.name + STAGING_SUFFIX)
            log.rename(staged_log)
        staged.append((move, staged_run, staged_log))
    for move, staged_run, staged_log in staged:
        staged_run.rename(move.target)
        if staged_log is not None:
            staged_log.rename(log_path(move.tier, move.renamed))


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--set-missing VALUE must be JSON (0.0, true, \"x\"), got {text!r}") from err


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, required=True, help="the tier's directory, holding runs/ and logs/")
    p.add_argument("--rename", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                   help="rename every run of algorithm OLD to NEW (repeatable)")
    p.add_argument("--append", metavar="SUFFIX", help="append SUFFIX to the names selected by --bases")
    p.add_argument("--bases", nargs="+", default=[], help="with --append: the base algorithms it applies to")
    p.add_argument("--unless", nargs="+", default=[],
                   help="with --append: skip names that contain any of these texts")
    p.add_argument("--set-missing", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="record hyperparameter KEY = VALUE (JSON) in runs that lack it")
    p.add_argument("--note", required=True, help="why the runs were renamed (kept in renamed_from)")
    p.add_argument("--dry-run", action="store_true", help="print the moves and write nothing")
    return p


def requested_renames(args: argparse.Namespace, names: Sequence[str]) -> dict[str, str]:
    renames = dict(args.rename)
    if args.append is not None:
        if not args.bases:
            raise SystemExit("--append needs --bases")
        appended = appended_names(names, suffix=args.append, bases=args.bases, unless=args.unless)
        for old, new in appended.items():
            renames.setdefault(old, new)  # an explicit --rename wins
    if not renames:
        raise SystemExit("nothing to rename: give --rename OLD NEW or --append SUFFIX --bases …")
    return renames


def main(argv: list[str] | None = None) -> list[Move]:
    args = build_parser().parse_args(argv)
    try:
        names = sorted({spec.algorithm for spec, _ in finished_runs(args.dir)})
        moves = plan(args.dir, requested_renames(args, names), note=args.note,
                     missing={key: json_value(value) for key, value in args.set_missing})
    except ValueError as err:
        raise SystemExit(f"rename_runs: {err}") from err
    for move in moves:
        print(f"{move.spec.task}: {move.spec.algorithm}__seed{move.spec.seed} → "
              f"{move.renamed.algorithm}__seed{move.spec.seed}")
    if not args.dry_run:
        apply(moves)
        print(f"renamed {len(moves)} runs; now run learning.py --report-only over the tier")
    return moves


if __name__ == "__main__":
    main()
