"""benchmarks/rename_runs.py: renaming finished runs when a default changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import rename_runs
from benchmarks.harness.spec import RunSpec, log_path, result_path


def write_run(
    tier: Path, task: str, algorithm: str, seed: int, *, final: float, **hyperparameters: object
) -> None:
    spec = RunSpec(algorithm=algorithm, task=task, seed=seed, budget=100_000, warmup=10_000,
                   eval_interval=10_000, eval_episodes=10, threads=1)
    record = {"algorithm": algorithm, "label": f"label of {algorithm}", "hyperparameter_source": "old source",
              "protocol": spec.protocol(), "hyperparameters": dict(hyperparameters),
              "final_return_mean": final}
    run = result_path(tier, spec)
    run.parent.mkdir(parents=True, exist_ok=True)
    run.write_text(json.dumps(record))
    log = log_path(tier, spec)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"log of {algorithm} {final}\n")


def read_run(tier: Path, task: str, name: str) -> dict:
    return json.loads((tier / "runs" / task / f"{name}__seed0.json").read_text())


@pytest.fixture
def tier(tmp_path: Path) -> Path:
    write_run(tmp_path, "Hopper-v5", "miq", 0, final=961.0)
    write_run(tmp_path, "Hopper-v5", "miq+probability-floor=0.01", 0, final=780.0, probability_floor=0.01)
    write_run(tmp_path, "Hopper-v5", "sac-auto", 0, final=950.0)
    return tmp_path


def test_a_new_default_swaps_names_with_the_old_one_and_keeps_the_former_identity(tier: Path):
    renames = {"miq": "miq+probability-floor=0", "miq+probability-floor=0.01": "miq"}
    moves = rename_runs.plan(tier, renames, note="floor 0.01 became the default",
                             missing={"probability_floor": 0.0})
    rename_runs.apply(moves)

    default = read_run(tier, "Hopper-v5", "miq")
    assert default["final_return_mean"] == 780.0 and default["protocol"]["algorithm"] == "miq"
    assert default["hyperparameters"]["probability_floor"] == 0.01  # present: not overwritten
    assert default["renamed_from"] == [{"algorithm": "miq+probability-floor=0.01",
                                        "label": "label of miq+probability-floor=0.01",
                                        "hyperparameter_source": "old source",
                                        "note": "floor 0.01 became the default"}]
    old = read_run(tier, "Hopper-v5", "miq+probability-floor=0")
    assert old["final_return_mean"] == 961.0 and old["hyperparameters"]["probability_floor"] == 0.0
    assert old["label"] != "label of miq" and "--probability-floor 0" in old["hyperparameter_source"]
    logs = tier / "logs" / "Hopper-v5"
    assert (logs / "miq__seed0.log").read_text() == "log of miq+probability-floor=0.01 780.0\n"
    assert (logs / "miq+probability-floor=0__seed0.log").read_text() == "log of miq 961.0\n"
    assert sorted(p.name for p in (tier / "runs" / "Hopper-v5").iterdir()) == [
        "miq+probability-floor=0__seed0.json", "miq__seed0.json", "sac-auto__seed0.json"]


def test_a_second_rename_appends_to_renamed_from(tier: Path):
    rename_runs.apply(rename_runs.plan(tier, {"miq": "miq+twin"}, note="first"))
    rename_runs.apply(rename_runs.plan(tier, {"miq+twin": "miq"}, note="second"))
    assert [r["note"] for r in read_run(tier, "Hopper-v5", "miq")["renamed_from"]] == ["first", "second"]


def test_renaming_onto_a_run_that_stays_fails_before_anything_is_written(tier: Path):
    before = {p: p.read_text() for p in tier.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"miq__seed0.json exists and is not renamed"):
        rename_runs.plan(tier, {"miq+probability-floor=0.01": "miq"}, note="x")
    with pytest.raises(ValueError, match="two runs would be renamed"):
        rename_runs.plan(tier, {"miq+probability-floor=0.01": "miq+twin", "miq": "miq+twin"}, note="x")
    with pytest.raises(ValueError, match="unknown algorithm"):
        rename_runs.plan(tier, {"miq": "no-such-agent"}, note="x")
    misplaced = tier / "runs" / "Walker2d-v5" / "miq__seed0.json"
    misplaced.parent.mkdir()
    misplaced.write_text((tier / "runs" / "Hopper-v5" / "miq__seed0.json").read_text())
    with pytest.raises(ValueError, match="whose result belongs at"):
        rename_runs.plan(tier, {"miq": "miq+twin"}, note="x")
    misplaced.unlink()
    misplaced.parent.rmdir()
    assert {p: p.read_text() for p in tier.rglob("*") if p.is_file()} == before


def test_append_selects_by_base_and_skips_names_that_already_say_it():
    names = ["iq", "miq", "miq+twin", "miq+probability-floor=0.1", "sac-auto", "miq-paper"]
    assert rename_runs.appended_names(names, suffix="+probability-floor=0", bases=["iq", "miq"],
                                      unless=["probability-floor"]) == {
        "iq": "iq+probability-floor=0",
        "miq": "miq+probability-floor=0",
        "miq+twin": "miq+twin+probability-floor=0",
    }


def test_cli_dry_run_prints_the_moves_and_writes_nothing(tier: Path, capsys):
    before = sorted(p.name for p in tier.rglob("*.json"))
    moves = rename_runs.main(["--dir", str(tier), "--append", "+probability-floor=0", "--bases", "miq",
                              "--unless", "probability-floor", "--note", "n", "--dry-run"])
    assert [(m.spec.algorithm, m.renamed.algorithm) for m in moves] == [("miq", "miq+probability-floor=0")]
    assert "miq__seed0 → miq+probability-floor=0__seed0" in capsys.readouterr().out
    assert sorted(p.name for p in tier.rglob("*.json")) == before
    with pytest.raises(SystemExit, match="nothing to rename"):
        rename_runs.main(["--dir", str(tier), "--note", "n"])
    with pytest.raises(SystemExit, match="VALUE must be JSON"):
        rename_runs.main(["--dir", str(tier), "--rename", "miq", "miq+twin", "--set-missing", "k", "zero",
                          "--note", "n"])
