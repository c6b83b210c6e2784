"""Round trip: a study run by evalkit, exported in each format the importer reads (written with the
producers' own writers where they have one), re-imported, gives the same per-run scores."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import yaml

from evalkit import importers, metrics, runner, spec, store

pytest.importorskip("tensorboard")
pytest.importorskip("stable_baselines3")

STUDY = """
name = "trip"
seed = 7
runs = 2
[envs.CartPole-v1]
steps = 400
[evaluation]
every = 200
episodes = 2
[algorithms.random]
agent = "random"
sweep = { repeat = [1, 3] }
"""


@pytest.fixture(scope="module")
def study_table(tmp_path_factory):
    root = tmp_path_factory.mktemp("trip")
    path = root / "trip.toml"
    path.write_text(STUDY)
    runner.run_study(spec.load_study(path), root / "results", runner.Options(backend="serial", progress=False))
    table = store.load(root / "results" / "trip")
    assert table["run_id"].nunique() == 4 and (table["mode"] == "eval").any()
    return table


def per_run(table: pd.DataFrame, key: str, mode: str = "train", metric: str = "auc") -> dict:
    s = metrics.run_scores(table, metric, mode=mode)
    return {(r["algorithm"], r["env"], int(r["hp.repeat"]), int(r[key])): r["score"] for _, r in s.iterrows()}


def runs_of(table):
    for _, g in table.groupby("run_id", sort=True):
        first = g.iloc[0]
        yield first, g[g["mode"] == "train"], g[g["mode"] == "eval"]


def export_tensorboard(table, out):
    from torch.utils.tensorboard import SummaryWriter
    for first, train, ev in runs_of(table):
        args = {"exp_name": first["algorithm"], "seed": int(first["seed"]), "env_id": first["env"],
                "total_timesteps": int(first["budget"]), "repeat": int(first["hp.repeat"])}
        w = SummaryWriter(str(out / "runs" / f"{first['env']}__{first['algorithm']}__{first['seed']}__{first['run_id']}"))
        w.add_text("hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in args.items()))
        for _, r in train.iterrows():
            w.add_scalar("charts/episodic_return", r["return"], r["step"])
            w.add_scalar("charts/episodic_length", r["length"], r["step"])
        for _, r in ev.iterrows():
            w.add_scalar("eval/episodic_return", r["return"], r["step"])
        w.close()
    return {}


def _monitor(path, env, train):
    from stable_baselines3.common.monitor import ResultsWriter
    writer = ResultsWriter(str(path), header={"t_start": 1700000000.0, "env_id": env})
    for k, (_, r) in enumerate(train.iterrows()):
        writer.write_row({"r": r["return"], "l": int(r["length"]), "t": 0.01 * k})
    writer.close()


def export_monitor(table, out):
    for first, train, _ in runs_of(table):
        _monitor(out / first["algorithm"] / f"repeat{first['hp.repeat']}_seed{first['seed']}", first["env"], train)
    return {"pattern": "{algorithm}/repeat{hp.repeat}_seed{seed}", "steps": 400}  # Monitor has no budget


def export_zoo(table, out):
    for n, (first, train, ev) in enumerate(runs_of(table), start=1):
        run_dir = out / first["algorithm"] / f"{first['env']}_{n}"
        (run_dir / first["env"]).mkdir(parents=True)
        with open(run_dir / first["env"] / "config.yml", "w") as f:
            yaml.dump(OrderedDict([("n_timesteps", int(first["budget"])), ("repeat", int(first["hp.repeat"]))]), f)
        with open(run_dir / first["env"] / "args.yml", "w") as f:
            yaml.dump(OrderedDict([("algo", first["algorithm"]), ("env", first["env"]), ("seed", int(first["seed"]))]), f)
        _monitor(run_dir / "0", first["env"], train)
        steps = sorted(ev["step"].unique())
        np.savez(run_dir / "evaluations.npz", timesteps=np.array(steps),
                 results=np.array([ev[ev["step"] == s]["return"].to_numpy() for s in steps]),
                 ep_lengths=np.array([ev[ev["step"] == s]["length"].to_numpy() for s in steps]))
    return {}


def export_wandb(table, out):
    columns, steps = {}, sorted(table[table["mode"] == "train"]["step"].unique())
    for first, train, _ in runs_of(table):
        name = f"{first['env']}__{first['algorithm']}__{first['seed']}__r{first['hp.repeat']}"
        by_step = dict(zip(train["step"], train["return"]))
        columns[f"{name} - charts/episodic_return"] = [by_step.get(s, "") for s in steps]
        columns[f"{name} - charts/episodic_return__MIN"] = columns[f"{name} - charts/episodic_return"]
        files = out / "wandb" / f"run-{first['run_id']}" / "files"
        files.mkdir(parents=True)
        config = {"wandb_version": 1, "_wandb": {"desc": None, "value": {"cli_version": "0.16.0"}},
                  **{k: {"desc": None, "value": v} for k, v in {"exp_name": first["algorithm"], "env_id": first["env"],
                                                                "seed": int(first["seed"]),
                                                                "repeat": int(first["hp.repeat"])}.items()}}
        (files / "config.yaml").write_text(yaml.safe_dump(config))
    pd.DataFrame({"Step": steps, **columns}).to_csv(out / "chart.csv", index=False)
    return {"pattern": "{env}__{algorithm}__{seed}__r{hp.repeat}", "steps": 400}


def export_scores(table, out):
    runs = metrics.run_scores(table)
    for (alg, repeat), g in runs.groupby(["algorithm", "hp.repeat"]):
        g = g.sort_values("seed_index")
        (out / f"repeat{repeat}").mkdir(parents=True)
        (out / f"repeat{repeat}" / f"{alg}.json").write_text(json.dumps({e: gg["score"].tolist() for e, gg in g.groupby("env")}))
    return {"pattern": "repeat{hp.repeat}/{algorithm}"}


def export_table(table, out):
    out.mkdir()
    t = table.rename(columns={"seed_index": "run"})[["algorithm", "env", "run", "step", "return", "length", "mode",
                                                      "hp.repeat"]]
    t.to_csv(out / "long.csv", index=False)
    return {"steps": 400}


# format -> (exporter, identity key the format keeps, formats with evaluation rows)
EXPORTS = {"tensorboard": (export_tensorboard, "seed", True), "monitor": (export_monitor, "seed", False),
           "zoo": (export_zoo, "seed", True), "wandb": (export_wandb, "seed", False),
           "scores": (export_scores, "seed_index", False), "table": (export_table, "seed_index", True)}


@pytest.mark.parametrize("fmt", list(EXPORTS))
def test_exported_and_reimported_runs_keep_their_scores(study_table, tmp_path, fmt):
    export, key, has_eval = EXPORTS[fmt]
    options = export(study_table, tmp_path / "export")
    summary = importers.import_path(tmp_path / "export", "back", tmp_path / "r", **options)
    assert summary.added == 4 and not summary.problems
    back = store.load(tmp_path / "r" / "back")
    assert per_run(back, key) == per_run(study_table, key)
    if has_eval:
        assert per_run(back, key, "eval", "final") == per_run(study_table, key, "eval", "final")
    if fmt != "scores":  # a score file keeps one number per run, not its episodes
        assert per_run(back, key, metric="final") == per_run(study_table, key, metric="final")
    # the same export imported again: nothing new
    again = importers.import_path(tmp_path / "export", "back", tmp_path / "r", **options)
    assert (again.added, again.replaced) == (0, 0) and again.unchanged == summary.sources
