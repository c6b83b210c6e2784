"""Build messy stores fast: write run files for planned runs directly (no training).

``write_planned(study, study_dir, episodes)``: for every run the study plans, ``episodes(run)``
returns the run's episode rows (a list, possibly empty: a run that finished no episode),
``"fail"`` (a failure record instead of a file) or ``None`` (the run is missing).
"""

from __future__ import annotations

import math

from evalkit import runner, spec, store, worker


def rows(returns, budget: int, mode: str = "train", **extras) -> list[dict]:
    """Episode rows with the given returns, ending evenly over ``budget`` steps."""
    n = len(returns)
    out = []
    for i, r in enumerate(returns):
        length = max(1, budget // max(n, 1))
        row = {"mode": mode, "step": min(budget, (i + 1) * length), "episode": i, "return": float(r), "length": length}
        row.update({k: float(v[i]) for k, v in extras.items()})
        out.append(row)
    return out


def write_run(study_dir, run: spec.Run, episode_rows) -> None:
    if episode_rows is None:
        return
    if episode_rows == "fail":
        store.write_failure(study_dir, run.run_id, {"run_id": run.run_id, "error": "planned failure", "attempts": 1})
        return
    outcome = worker.Outcome(run, True, list(episode_rows), 0.01, agent_hash=runner.current_agent_hash(run))
    store.write_run(study_dir, runner.run_metadata(run, outcome), list(episode_rows))


def write_planned(study: spec.Study, study_dir, episodes) -> list[spec.Run]:
    runs = spec.expand(study)
    for r in runs:
        write_run(study_dir, r, episodes(r))
    return runs


def nan() -> float:
    return math.nan
