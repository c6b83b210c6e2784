"""rl-zoo3 log folders: ``<log>/<algo>/<Env>_<n>/`` per run.

What rl-zoo3's ``ExperimentManager`` writes there and what is read:

* ``<Env>/config.yml``: the hyperparameters used (``yaml.dump`` of an ``OrderedDict``) -> ``hp.*``;
* ``<Env>/args.yml``: the command-line arguments -> ``algo``, ``env``, ``seed`` (identity only);
* ``0.monitor.csv``, ``1.monitor.csv``, ...: training episodes of the ``n_envs`` sub-environments;
* ``evaluations.npz`` (``EvalCallback``): ``timesteps (k,)``, ``results (k, episodes)``,
  ``ep_lengths (k, episodes)`` -> evaluation rows (``mode = "eval"``), read with ``allow_pickle=False``.

The run index ``n`` of the folder name pairs runs across envs. Nothing else in the folder (saved
models, ``vecnormalize.pkl``) is opened.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from evalkit.importers.monitor import VEC_MONITOR, monitor_episodes
from evalkit.importers.records import Episodes, ImportProblem, RunRecord, flatten
from evalkit.importers.safe_yaml import load_yaml

RUN_DIR = re.compile(r"^(?P<env>.+)_(?P<n>\d+)$")


def zoo_env_dir(run_dir: Path) -> Path | None:
    """``<Env>_<n>/<Env>/`` holding config.yml, or None when ``run_dir`` is not an rl-zoo3 run."""
    m = RUN_DIR.match(run_dir.name)
    if not m:
        return None
    inner = run_dir / m.group("env")
    return inner if (inner / "config.yml").is_file() else None


def _mapping(path: Path) -> dict:
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ImportProblem(path, f"expected a mapping of names to values, found {type(data).__name__}")
    return data


def evaluation_episodes(path: Path) -> Episodes:
    """Evaluation rows of ``evaluations.npz``: one per evaluation episode, at the evaluation's step."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as exc:
        raise ImportProblem(path, f"refused: the file needs pickle to load ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ImportProblem(path, f"expected an .npz archive ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("timesteps", "results") if k not in arrays]
    if missing:
        raise ImportProblem(path, f"expected arrays timesteps and results (EvalCallback); missing {missing}")
    steps, results = arrays["timesteps"].reshape(-1), arrays["results"]
    if results.ndim == 1:
        results = results[:, None]
    if results.ndim != 2 or len(results) != len(steps) or not np.issubdtype(results.dtype, np.number):
        raise ImportProblem(path, f"results: expected a numeric (evaluations, episodes) array for "
                            f"{len(steps)} timesteps, found shape {results.shape}")
    lengths = arrays.get("ep_lengths")
    if lengths is None or lengths.reshape(results.shape[0], -1).shape != results.shape:
        lengths = np.zeros(results.shape, np.int64)
    lengths = lengths.reshape(results.shape)
    n = results.shape[1]
    return Episodes.of(np.repeat(steps, n), results.reshape(-1), lengths.reshape(-1), "eval")


def read_zoo_run(run_dir: Path, source: str) -> list[RunRecord]:
    """One run from an rl-zoo3 run folder."""
    inner = zoo_env_dir(run_dir)
    if inner is None:
        raise ImportProblem(run_dir, "expected an rl-zoo3 run folder <Env>_<n>/ with <Env>/config.yml")
    config = _mapping(inner / "config.yml")
    args = _mapping(inner / "args.yml") if (inner / "args.yml").is_file() else {}
    monitors = sorted((p for p in run_dir.iterdir() if VEC_MONITOR.match(p.name)), key=lambda p: int(p.name.split(".")[0]))
    parts = []
    if monitors:
        parts.append(monitor_episodes(monitors)[0])
    if (run_dir / "evaluations.npz").is_file():
        parts.append(evaluation_episodes(run_dir / "evaluations.npz"))
    if not parts:
        raise ImportProblem(run_dir, "expected N.monitor.csv files or evaluations.npz beside the config; found neither")
    seed = args.get("seed")
    budget = config.get("n_timesteps")
    if isinstance(args.get("n_timesteps"), int) and args["n_timesteps"] > 0:
        budget = args["n_timesteps"]
    return [RunRecord(source=source, episodes=Episodes.concat(parts),
                      algorithm=str(args["algo"]) if args.get("algo") else run_dir.parent.name,
                      env=str(args["env"]) if args.get("env") else inner.name,
                      seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                      run=int(RUN_DIR.match(run_dir.name).group("n")),
                      config=flatten(config), budget=int(budget) if isinstance(budget, (int, float)) else None)]
