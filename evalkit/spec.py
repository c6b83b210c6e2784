"""Study files: parse (tomllib), validate every key before any run starts, and expand into runs.

A study names environments with step budgets, algorithms with an agent, a fixed config and a
sweep, a number of runs per setting and a metric (see DESIGN.md section 2 and the README).
Every mistake raises :class:`StudyError` naming the file, the key path, what was expected and
what was found.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from evalkit import seeding
from evalkit.errors import EvalkitError, StudyError, show

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
METRICS = ("auc", "auc_steps", "final")
DISTRIBUTIONS = ("loguniform", "uniform", "choice", "randint")
SEARCHES = ("grid", "random", "optuna")
SELECTS = ("per_env", "cross_env")
MODES = ("standard", "tuning_agnostic")

TOP_KEYS = {"name", "description", "seed", "runs", "metric", "envs", "algorithms", "evaluation",
            "tuning", "resources", "mode", "batch_seeds"}
DEFAULT_BATCH = 8  # seeds per block when an agent can train seeds together and batch_seeds = "auto"
ENV_KEYS = {"steps", "id", "entry", "kwargs", "reference"}
ALG_KEYS = {"agent", "config", "sweep", "samples", "env_config", "envs", "resources", "command",
            "hyperparameters", "log_format", "log_pattern"}
RESOURCE_KEYS = {"cpus", "gpus", "memory_mb", "timeout_s"}
TUNING_KEYS = {"runs", "select", "search", "budget", "batch", "scheduler", "eta", "min_steps"}
SCHEDULERS = ("none", "successive_halving")
EVAL_KEYS = {"every", "episodes"}


@dataclass(frozen=True)
class Resources:
    """Per-run resource request, passed to Ray; ``memory_mb`` is also enforced in the worker."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class EnvSpec:
    """One environment of a study. ``name`` is the TOML key (used in paths and tables)."""

    name: str
    id: str
    steps: int
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    entry: str | None = None
    reference: tuple[float, float] | None = None


@dataclass(frozen=True)
class Axis:
    """One swept hyperparameter: a grid list or a distribution (Ray Tune's sampling primitives)."""

    name: str
    kind: str  # "grid" | "loguniform" | "uniform" | "choice" | "randint"
    values: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "loguniform":
            lo, hi = self.values
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if self.kind == "uniform":
            return float(rng.uniform(*self.values))
        if self.kind == "randint":  # upper bound exclusive, as in ray.tune.randint
            return int(rng.integers(self.values[0], self.values[1]))
        return self.values[int(rng.integers(len(self.values)))]

    def tune_domain(self) -> Any:
        """The equivalent ``ray.tune`` search-space object."""
        from ray import tune
        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        return {"loguniform": tune.loguniform, "uniform": tune.uniform, "randint": tune.randint,
                "choice": lambda *v: tune.choice(list(v))}[self.kind](*self.values)


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm of a study: an agent, fixed config, per-env overrides and a sweep."""

    name: str
    agent: str
    config: Mapping[str, Any]
    sweep: tuple[Axis, ...]
    samples: int | None
    env_config: Mapping[str, Mapping[str, Any]]
    resources: Resources
    command: str | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    log_format: str | None = None
    log_pattern: str | None = None
    envs: tuple[str, ...] | None = None  # the study envs this algorithm runs on (None: all)


@dataclass(frozen=True)
class Evaluation:
    every: int
    episodes: int


@dataclass(frozen=True)
class Tuning:
    """The one two-stage protocol: select on tuning seeds, report on fresh evaluation seeds."""

    runs: int = 3
    select: str = "per_env"
    search: str = "grid"
    budget: int | None = None  # candidate settings per algorithm, the same for every algorithm
    batch: int = 4  # settings proposed per round by a model-based searcher (optuna)
    scheduler: str = "none"  # "successive_halving": early stopping with restarts, same for all
    eta: int = 3
    min_steps: int | None = None


@dataclass(frozen=True)
class Study:
    path: Path
    name: str
    seed: int
    runs: int
    metric: str
    envs: tuple[EnvSpec, ...]
    algorithms: tuple[AlgorithmSpec, ...]
    evaluation: Evaluation | None
    tuning: Tuning | None
    resources: Resources
    mode: str = "standard"
    description: str = ""
    batch_seeds: int | str = "auto"  # "auto" | 1 (never) | N seeds per block

    def env(self, name: str) -> EnvSpec:
        return next(e for e in self.envs if e.name == name)

    def algorithm(self, name: str) -> AlgorithmSpec:
        return next(a for a in self.algorithms if a.name == name)

    def envs_of(self, alg: AlgorithmSpec) -> tuple[EnvSpec, ...]:
        """The envs an algorithm runs on (``envs = [...]`` in its table; default every env)."""
        return self.envs if alg.envs is None else tuple(e for e in self.envs if e.name in alg.envs)

    @property
    def final_fraction(self) -> float:
        return float(self.metric.split(":")[1]) if self.metric.startswith("final:") else 0.1

    @property
    def metric_name(self) -> str:
        return self.metric.split(":")[0]


@dataclass(frozen=True)
class Run:
    """One seeded run: everything a worker needs, and the identity it is stored under."""

    run_id: str
    study: str
    algorithm: str
    agent: str
    env: str
    env_id: str
    env_kwargs: Mapping[str, Any]
    entry: str | None
    phase: str  # "tune" | "eval"
    seed_index: int
    seed: int
    eval_seed: int
    steps: int
    config: Mapping[str, Any]
    setting: str
    setting_values: Mapping[str, Any]
    evaluation: Evaluation | None
    resources: Resources
    command: str | None = None
    log_format: str | None = None
    log_pattern: str | None = None
    batch: int = 1  # seeds trained together in one process (fixed blocks of seed indices)

    @property
    def block_key(self) -> tuple:
        """Identity of the fixed seed block this run belongs to (seed indices b*batch..)."""
        return (self.algorithm, self.setting, self.env, self.phase, self.steps, self.seed_index // self.batch)

    def describe(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.setting_values.items())
        return (f"{self.run_id}  {self.phase:4s}  {self.algorithm:>12s}  {self.env:>16s}  "
                f"seed[{self.seed_index}]={self.seed}  steps={self.steps}" + (f"  {hp}" if hp else "")
                + (f"  batch={self.batch}" if self.batch > 1 else ""))


# ---------------------------------------------------------------- parsing helpers


class _Checker:
    """Validation helpers bound to one file, so every error names it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, expected: str, found: str | None = None) -> StudyError:
        return StudyError(self.path, key, expected, found)

    def table(self, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, "a table", show(value))
        return value

    def keys(self, table: dict, allowed: set[str], key: str) -> None:
        for k in table:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                raise self.fail(where, f"one of the known keys ({', '.join(sorted(allowed))})", f"unknown key {k!r}")

    def int_(self, value: Any, key: str, minimum: int | None = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "an integer", show(value))
        if minimum is not None and value < minimum:
            raise self.fail(key, f"an integer >= {minimum}", show(value))
        return value

    def num(self, value: Any, key: str, minimum: float | None = None, strict: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, "a finite number", show(value))
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            raise self.fail(key, f"a number {'>' if strict else '>='} {minimum}", show(value))
        return float(value)

    def str_(self, value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(key, "a string", show(value))
        if choices is not None and value not in choices:
            raise self.fail(key, f"one of {', '.join(choices)}", show(value))
        return value

    def name(self, value: Any, key: str) -> str:
        value = self.str_(value, key)
        if not NAME_RE.match(value) or ".." in value:
            raise self.fail(key, "a name of letters, digits, '_', '-' and '.' (no path separators or '..')",
                            show(value))
        return value


def load_study(path: str | Path) -> Study:
    """Read and validate a study file. Raises :class:`StudyError` on the first problem found."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(path, "", "an existing study file", "no such file") from None
    except IsADirectoryError:
        raise StudyError(path, "", "a TOML file", "a directory") from None
    except UnicodeDecodeError as exc:
        raise StudyError(path, "", "UTF-8 text", f"undecodable bytes ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(path, "", "valid TOML", f"a syntax error: {exc}") from None
    return parse_study(raw, path)


def parse_study(raw: dict, path: str | Path = "<study>") -> Study:
    """Validate a parsed TOML document (a dict) and build the :class:`Study`."""
    c = _Checker(Path(path))
    c.keys(raw, TOP_KEYS, "")
    for required in ("name", "envs", "algorithms"):
        if required not in raw:
            raise c.fail(required, "this key to be present", "nothing")
    name = c.name(raw["name"], "name")
    seed = c.int_(raw.get("seed", 0), "seed", minimum=0)
    runs = c.int_(raw.get("runs", 5), "runs")
    metric = c.str_(raw.get("metric", "auc"), "metric")
    base = metric.split(":")[0]
    if base not in METRICS or (":" in metric and base != "final"):
        raise c.fail("metric", "auc, auc_steps, final or final:<fraction>", show(metric))
    if ":" in metric:
        try:
            frac = float(metric.split(":", 1)[1])
        except ValueError:
            raise c.fail("metric", "final:<fraction in (0, 1]>", show(metric)) from None
        if not 0 < frac <= 1:
            raise c.fail("metric", "final:<fraction in (0, 1]>", show(metric))
    resources = _resources(c, raw.get("resources", {}), "resources", Resources())
    envs = _envs(c, c.table(raw["envs"], "envs"))
    evaluation = None
    if "evaluation" in raw:
        ev = c.table(raw["evaluation"], "evaluation")
        c.keys(ev, EVAL_KEYS, "evaluation")
        evaluation = Evaluation(c.int_(ev.get("every", 10_000), "evaluation.every"),
                                c.int_(ev.get("episodes", 10), "evaluation.episodes"))
    tuning = None
    if "tuning" in raw:
        t = c.table(raw["tuning"], "tuning")
        c.keys(t, TUNING_KEYS, "tuning")
        tuning = Tuning(runs=c.int_(t.get("runs", 3), "tuning.runs"),
                        select=c.str_(t.get("select", "per_env"), "tuning.select", SELECTS),
                        search=c.str_(t.get("search", "grid"), "tuning.search", SEARCHES),
                        budget=c.int_(t["budget"], "tuning.budget") if "budget" in t else None,
                        batch=c.int_(t.get("batch", 4), "tuning.batch"),
                        scheduler=c.str_(t.get("scheduler", "none"), "tuning.scheduler", SCHEDULERS),
                        eta=c.int_(t.get("eta", 3), "tuning.eta", minimum=2),
                        min_steps=c.int_(t["min_steps"], "tuning.min_steps") if "min_steps" in t else None)
        if tuning.search in ("random", "optuna") and tuning.budget is None:
            raise c.fail("tuning.budget", f"the number of settings per algorithm for search = {tuning.search!r}",
                         "nothing")
        if tuning.scheduler != "none" and tuning.min_steps is None:
            raise c.fail("tuning.min_steps", "the smallest step budget of successive halving", "nothing")
    mode = c.str_(raw.get("mode", "standard"), "mode", MODES)
    batch_seeds = raw.get("batch_seeds", "auto")
    if batch_seeds != "auto":
        batch_seeds = c.int_(batch_seeds, "batch_seeds")
    description = c.str_(raw.get("description", ""), "description")
    algs = _algorithms(c, c.table(raw["algorithms"], "algorithms"), envs, resources, tuning, mode)
    return Study(Path(path), name, seed, runs, metric, envs, algs, evaluation, tuning, resources,
                 mode, description, batch_seeds)


def _resources(c: _Checker, raw: Any, key: str, default: Resources) -> Resources:
    t = c.table(raw, key)
    c.keys(t, RESOURCE_KEYS, key)
    return Resources(
        cpus=c.num(t["cpus"], f"{key}.cpus", 0, strict=True) if "cpus" in t else default.cpus,
        gpus=c.num(t["gpus"], f"{key}.gpus", 0) if "gpus" in t else default.gpus,
        memory_mb=c.int_(t["memory_mb"], f"{key}.memory_mb") if "memory_mb" in t else default.memory_mb,
        timeout_s=c.num(t["timeout_s"], f"{key}.timeout_s", 0, strict=True) if "timeout_s" in t else default.timeout_s,
    )


def _envs(c: _Checker, raw: dict) -> tuple[EnvSpec, ...]:
    if not raw:
        raise c.fail("envs", "at least one environment table", "an empty table")
    import evalkit.envs  # noqa: F401  (registers CliffWorld / PuddleWorld)
    out = []
    for name, t in raw.items():
        key = f"envs.{name}"
        c.name(name, key)
        t = c.table(t, key)
        c.keys(t, ENV_KEYS, key)
        if "steps" not in t:
            raise c.fail(f"{key}.steps", "a step budget (integer >= 1)", "nothing")
        steps = c.int_(t["steps"], f"{key}.steps")
        env_id = c.str_(t.get("id", name), f"{key}.id")
        kwargs = c.table(t.get("kwargs", {}), f"{key}.kwargs")
        entry = c.str_(t["entry"], f"{key}.entry") if "entry" in t else None
        reference = None
        if "reference" in t:
            ref = c.table(t["reference"], f"{key}.reference")
            c.keys(ref, {"low", "high"}, f"{key}.reference")
            if set(ref) != {"low", "high"}:
                raise c.fail(f"{key}.reference", "both low and high", show(ref))
            lo = c.num(ref["low"], f"{key}.reference.low")
            hi = c.num(ref["high"], f"{key}.reference.high")
            if not lo < hi:
                raise c.fail(f"{key}.reference", "low < high", f"low={lo}, high={hi}")
            reference = (lo, hi)
        _check_env_exists(c, key, env_id, entry)
        out.append(EnvSpec(name, env_id, steps, dict(kwargs), entry, reference))
    return tuple(out)


def _check_env_exists(c: _Checker, key: str, env_id: str, entry: str | None) -> None:
    import gymnasium as gym
    if entry is not None:
        module, _, attr = entry.partition(":")
        if not module or not attr:
            raise c.fail(f"{key}.entry", "an import path 'package.module:Class'", show(entry))
        try:
            mod = importlib.import_module(module)
        except Exception as exc:
            raise c.fail(f"{key}.entry", "an importable module", f"{module!r} ({type(exc).__name__}: {exc})") from None
        if not hasattr(mod, attr):
            raise c.fail(f"{key}.entry", f"a class {attr!r} in module {module!r}", "no such attribute")
        return
    if ":" in env_id:  # gymnasium's "module:EnvId" form imports the module, which registers the id
        module = env_id.split(":")[0]
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise c.fail(f"{key}.id", "an importable module before ':'", f"{module!r} ({exc})") from None
        env_id = env_id.split(":", 1)[1]
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.75)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise c.fail(key if key.endswith(".id") else f"{key}", "a registered gymnasium environment id, or "
                     "'entry = \"module:Class\"'" + hint, show(env_id))


def _algorithms(c: _Checker, raw: dict, envs: tuple[EnvSpec, ...], default_res: Resources,
                tuning: Tuning | None, mode: str) -> tuple[AlgorithmSpec, ...]:
    from evalkit import registry
    if not raw:
        raise c.fail("algorithms", "at least one algorithm table", "an empty table")
    env_names = {e.name for e in envs}
    out = []
    for name, t in raw.items():
        key = f"algorithms.{name}"
        c.name(name, key)
        t = c.table(t, key)
        c.keys(t, ALG_KEYS, key)
        command = c.str_(t["command"], f"{key}.command") if "command" in t else None
        if command is None and "agent" not in t:
            raise c.fail(f"{key}.agent", "an agent name (see `evalkit agents`) or a 'command'", "nothing")
        if command is not None and "agent" in t:
            raise c.fail(key, "either 'agent' or 'command', not both", "both")
        hp_decl = c.table(t.get("hyperparameters", {}), f"{key}.hyperparameters")
        if command is not None:
            agent = "command"
            known = _declared_hyperparameters(c, hp_decl, f"{key}.hyperparameters")
        else:
            agent = c.str_(t["agent"], f"{key}.agent")
            try:
                info = registry.resolve_agent(agent)
            except EvalkitError as exc:
                raise c.fail(f"{key}.agent", "a known agent (see `evalkit agents`) or 'package.module:function'",
                             f"{agent!r}: {exc}") from None
            known = {n: (h.type, h.low, h.high, h.choices) for n, h in info.hyperparameters.items()}
            if info.config_cls is None:
                known = _declared_hyperparameters(c, hp_decl, f"{key}.hyperparameters")
        config = c.table(t.get("config", {}), f"{key}.config")
        for k, v in config.items():
            _check_value(c, known, k, v, f"{key}.config.{k}", agent)
        alg_envs = None
        if "envs" in t:
            if not isinstance(t["envs"], list) or not t["envs"]:
                raise c.fail(f"{key}.envs", "a non-empty list of env names of this study", show(t["envs"]))
            for e in t["envs"]:
                if e not in env_names:
                    raise c.fail(f"{key}.envs", f"env names of this study ({', '.join(sorted(env_names))})", show(e))
            alg_envs = tuple(t["envs"])
        env_config = c.table(t.get("env_config", {}), f"{key}.env_config")
        for env_name, overrides in env_config.items():
            if env_name not in env_names:
                raise c.fail(f"{key}.env_config.{env_name}", f"an env of this study ({', '.join(sorted(env_names))})",
                             show(env_name))
            for k, v in c.table(overrides, f"{key}.env_config.{env_name}").items():
                _check_value(c, known, k, v, f"{key}.env_config.{env_name}.{k}", agent)
        sweep = _sweep(c, c.table(t.get("sweep", {}), f"{key}.sweep"), known, key, agent)
        has_dist = any(a.kind != "grid" for a in sweep)
        samples = c.int_(t["samples"], f"{key}.samples") if "samples" in t else None
        if tuning is not None and tuning.budget is not None and tuning.search == "grid":
            size = math.prod(len(a.values) for a in sweep if a.kind == "grid")
            if has_dist:
                raise c.fail(f"{key}.sweep", "grid lists only with search = 'grid' (use 'random' or 'optuna' "
                             "for distributions)", "a distribution")
            if size < tuning.budget:
                raise c.fail(f"{key}.sweep", f"a grid of at least tuning.budget = {tuning.budget} settings, "
                             f"so every algorithm gets the same budget", f"{size} settings")
        if samples is None and has_dist:
            if tuning is not None and tuning.budget is not None:
                samples = tuning.budget
            elif mode != "tuning_agnostic":
                raise c.fail(f"{key}.samples", "the number of settings to draw from the sweep's distributions "
                             "(or [tuning] budget)", "nothing")
        resources = _resources(c, t.get("resources", {}), f"{key}.resources", default_res)
        log_format = c.str_(t["log_format"], f"{key}.log_format", ("jsonl", "csv", "stdout")) if "log_format" in t else None
        log_pattern = c.str_(t["log_pattern"], f"{key}.log_pattern") if "log_pattern" in t else None
        if log_pattern is not None:
            try:
                pattern = re.compile(log_pattern)
            except re.error as exc:
                raise c.fail(f"{key}.log_pattern", "a valid regular expression", f"{log_pattern!r} ({exc})") from None
            if not {"step", "ret"} <= set(pattern.groupindex):
                raise c.fail(f"{key}.log_pattern", "named groups (?P<step>...) and (?P<ret>...)", show(log_pattern))
        if command is not None:
            from evalkit.command import check_template
            check_template(c, command, f"{key}.command", set(known))
        out.append(AlgorithmSpec(name, agent, dict(config), sweep, samples, {k: dict(v) for k, v in env_config.items()},
                                 resources, command, dict(hp_decl), log_format, log_pattern, alg_envs))
    return tuple(out)


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def _declared_hyperparameters(c: _Checker, decl: dict, key: str) -> dict:
    """Hyperparameters declared in the study file for agents without a Config dataclass.

    Each entry: ``name = { type = "float", default = 0.1, low = 0, high = 1 }``.
    """
    out = {}
    for n, spec in decl.items():
        spec = c.table(spec, f"{key}.{n}")
        c.keys(spec, {"type", "default", "low", "high", "choices"}, f"{key}.{n}")
        typ = _TYPES[c.str_(spec.get("type", "float"), f"{key}.{n}.type", tuple(_TYPES))]
        out[n] = (typ, spec.get("low"), spec.get("high"), tuple(spec["choices"]) if "choices" in spec else None)
        if "default" in spec:
            _check_value(c, out, n, spec["default"], f"{key}.{n}.default", "command")
    return out


def declared_defaults(alg: AlgorithmSpec) -> dict:
    return {n: s["default"] for n, s in alg.hyperparameters.items() if "default" in s}


def _check_value(c: _Checker, known: dict, name: str, value: Any, key: str, agent: str) -> None:
    if name not in known:
        from agents.common import RENAMED  # issue 21: an old name gets a hint naming the new one
        if RENAMED.get(name) in known:
            raise c.fail(key, f"{RENAMED[name]!r} (renamed: one vocabulary across agents, see the README)",
                         f"the old name {name!r}")
        raise c.fail(key, f"a hyperparameter of agent {agent!r} ({', '.join(known) or 'none'})", f"unknown {name!r}")
    typ, low, high, choices = known[name]
    ok = (isinstance(value, bool) if typ is bool else
          isinstance(value, int) and not isinstance(value, bool) if typ is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if typ is float else
          isinstance(value, str) if typ is str else True)
    if not ok:
        raise c.fail(key, f"a value of type {typ.__name__}", show(value))
    if choices is not None and value not in choices:
        raise c.fail(key, f"one of {list(choices)}", show(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            raise c.fail(key, f"a value in [{low}, {high}]", show(value))


def _sweep(c: _Checker, raw: dict, known: dict, key: str, agent: str) -> tuple[Axis, ...]:
    axes = []
    for name in sorted(raw):
        value = raw[name]
        k = f"{key}.sweep.{name}"
        if isinstance(value, list):
            if not value:
                raise c.fail(k, "a non-empty list of values", "an empty list")
            for v in value:
                _check_value(c, known, name, v, k, agent)
            if len({json.dumps(v) for v in value}) != len(value):
                raise c.fail(k, "distinct values", show(value))
            axes.append(Axis(name, "grid", tuple(value)))
        elif isinstance(value, dict):
            if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
                raise c.fail(k, f"a list or a distribution, one of {{{', '.join(d + ' = [...]' for d in DISTRIBUTIONS)}}}", show(value))
            kind, args = next(iter(value.items()))
            if not isinstance(args, list) or not args:
                raise c.fail(f"{k}.{kind}", "a non-empty list of arguments", show(args))
            if kind in ("loguniform", "uniform", "randint"):
                if len(args) != 2:
                    raise c.fail(f"{k}.{kind}", "[low, high]", show(args))
                lo, hi = (c.num(a, f"{k}.{kind}") for a in args)
                if not lo < hi or (kind == "loguniform" and lo <= 0):
                    raise c.fail(f"{k}.{kind}", "0 < low < high" if kind == "loguniform" else "low < high", show(args))
                if kind == "randint" and not all(isinstance(a, int) for a in args):
                    raise c.fail(f"{k}.{kind}", "integer bounds", show(args))
                for v in (args[0], args[1] - 1 if kind == "randint" else args[1]):
                    _check_value(c, known, name, int(v) if kind == "randint" else float(v), k, agent)
            else:
                for v in args:
                    _check_value(c, known, name, v, k, agent)
            axes.append(Axis(name, kind, tuple(args)))
        else:
            raise c.fail(k, "a list of values or a distribution table", show(value))
    return tuple(axes)


# ---------------------------------------------------------------- expansion


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the input to every hash evalkit takes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def settings(study: Study, alg: AlgorithmSpec) -> list[dict[str, Any]]:
    """The swept settings of an algorithm, as ``{hyperparameter: value}`` dicts.

    Grid axes form a Cartesian product; distribution axes are drawn ``samples`` times for each
    grid point (Ray Tune's ``grid_search`` x ``num_samples`` semantics) from a generator seeded
    by the study seed and the algorithm name, so the draw is reproducible.
    """
    rng = np.random.default_rng(seeding.derive(study.seed, "sweep", alg.name))
    tuning = study.tuning
    if tuning is not None and tuning.search == "random":
        # random search: every axis is a distribution (grid lists become uniform choices)
        return [{a.name: (a.values[int(rng.integers(len(a.values)))] if a.kind == "grid" else a.sample(rng))
                 for a in alg.sweep} for _ in range(tuning.budget)]
    grid = [a for a in alg.sweep if a.kind == "grid"]
    dists = [a for a in alg.sweep if a.kind != "grid"]
    points = [dict(zip([a.name for a in grid], combo)) for combo in itertools.product(*[a.values for a in grid])]
    if tuning is not None and tuning.budget is not None and len(points) > tuning.budget:
        keep = sorted(rng.choice(len(points), size=tuning.budget, replace=False))
        points = [points[i] for i in keep]
    if not dists or study.mode == "tuning_agnostic":
        return points
    out = []
    for point in points:
        for _ in range(alg.samples or 1):
            out.append({**point, **{a.name: a.sample(rng) for a in dists}})
    return out


def setting_id(values: Mapping[str, Any]) -> str:
    """8 hex digits identifying a sweep point (``"default"`` when nothing is swept)."""
    return seeding.short_hash(canonical_json(dict(values)), 8) if values else "default"


def agent_defaults(alg: AlgorithmSpec) -> dict[str, Any]:
    if alg.command is not None or alg.agent == "command":
        return declared_defaults(alg)
    from evalkit import registry
    info = registry.resolve_agent(alg.agent)
    if info.config_cls is None:
        return declared_defaults(alg)
    return {n: h.default for n, h in info.hyperparameters.items()}


def env_defaults(alg: AlgorithmSpec, env_id: str) -> dict[str, Any]:
    """The agent's tuned defaults for ``env_id`` (its module's ``ENV_DEFAULTS``, rl-zoo3 style; issue
    21): they replace the agent's Config defaults for that env, and the study's config overrides
    them. Empty for command and imported agents and for envs the agent ships nothing for."""
    if alg.command is not None or alg.agent in ("command", "imported"):
        return {}
    from evalkit import registry
    mod = importlib.import_module(registry.resolve_agent(alg.agent).module)
    return dict(getattr(mod, "ENV_DEFAULTS", {}).get(env_id, {}))


def resolved_config(alg: AlgorithmSpec, env: EnvSpec, values: Mapping[str, Any],
                    defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config a run trains with (and its id hashes): agent defaults <- the agent's defaults for
    this env id <- algorithm config <- env overrides <- sweep setting."""
    defaults = agent_defaults(alg) if defaults is None else defaults
    return {**defaults, **env_defaults(alg, env.id), **alg.config, **alg.env_config.get(env.name, {}), **values}


def supports_batching(alg: AlgorithmSpec) -> bool:
    """Whether the algorithm's agent can train several seeds in one process (``train_batch``)."""
    if alg.command is not None or alg.agent in ("command", "imported"):
        return False
    from evalkit import registry
    info = registry.resolve_agent(alg.agent)
    return hasattr(importlib.import_module(info.module), "train_batch")


def batch_size(study: Study, alg: AlgorithmSpec, n_runs: int, config: Mapping[str, Any] | None = None) -> int:
    """Seeds per block for an algorithm's runs of one setting (1 = unbatched): :func:`batch_choice`."""
    return batch_choice(study, alg, n_runs, config)[0]


def batch_choice(study: Study, alg: AlgorithmSpec, n_runs: int,
                 config: Mapping[str, Any] | None = None) -> tuple[int, str]:
    """Seeds per block for an algorithm's runs of one setting, and why.

    Blocks are fixed by the study: seed indices ``[k*B, (k+1)*B)``; a block holds fewer seeds only
    when the study has fewer runs. ``batch_seeds = "auto"`` (issue 21) asks the agent module's
    ``batch_block(config, n_runs)``, a pure function of the resolved ``config`` and the number of
    seeds backed by a measured table (``agents.dqn.AUTO_BLOCKS``, ``agents.ppo.AUTO_BLOCKS``), so
    batching is never chosen where it was measured slower; an agent with ``train_batch`` but no
    such rule gets :data:`DEFAULT_BATCH`.
    """
    if study.batch_seeds != "auto":
        want = int(study.batch_seeds)
        if want <= 1 or n_runs < 2 or not supports_batching(alg):
            return 1, "batch_seeds = 1" if want <= 1 else "no seed batching for this agent or one run"
        return want, f"batch_seeds = {want} (study or --batch-seeds)"
    if n_runs < 2 or not supports_batching(alg):
        return 1, "the agent has no train_batch" if n_runs >= 2 else "one run"
    from evalkit import registry
    mod = importlib.import_module(registry.resolve_agent(alg.agent).module)
    rule = getattr(mod, "batch_block", None)
    if rule is None:
        return DEFAULT_BATCH, f"the agent declares no block table; evalkit's fallback {DEFAULT_BATCH}"
    block, reason = rule(dict(config if config is not None else agent_defaults(alg)), n_runs)
    return max(1, int(block)), reason


def make_run(study: Study, alg: AlgorithmSpec, env: EnvSpec, values: Mapping[str, Any], phase: str,
             seed_index: int, defaults: Mapping[str, Any] | None = None, steps: int | None = None,
             batch: int = 1, n_runs: int | None = None) -> Run:
    """Build one :class:`Run`: config = agent defaults <- the agent's defaults for the env id <-
    algorithm config <- env overrides <- setting (:func:`resolved_config`).

    ``steps`` overrides the env's budget (a successive-halving rung); it is part of the run's id.
    ``batch`` > 1 trains the run in a block of seeds; the block size and the block's member count
    (``n_runs``) are part of the id, so batched and unbatched results never mix.
    """
    defaults = agent_defaults(alg) if defaults is None else defaults
    if steps is not None:
        env = dataclasses.replace(env, steps=min(int(steps), env.steps))
    config = resolved_config(alg, env, values, defaults)
    seed = seeding.run_seed(study.seed, env.name, phase, seed_index)
    identity = {"study": study.name, "algorithm": alg.name, "agent": alg.agent, "env": env.name,
                "env_id": env.id, "env_kwargs": dict(env.kwargs), "config": config, "phase": phase,
                "seed_index": seed_index, "steps": env.steps,
                "evaluation": [study.evaluation.every, study.evaluation.episodes] if study.evaluation else None}
    if alg.command is not None:
        identity["command"] = alg.command
    if batch > 1:
        first = seed_index // batch * batch
        identity["batch"] = [batch, min(batch, (n_runs or batch) - first)]
    return Run(run_id=seeding.short_hash(canonical_json(identity), 16), study=study.name, algorithm=alg.name,
               agent=alg.agent, env=env.name, env_id=env.id, env_kwargs=dict(env.kwargs), entry=env.entry,
               phase=phase, seed_index=seed_index, seed=seed,
               eval_seed=seeding.run_seed(study.seed, env.name, "evaluation-env", seed_index),
               steps=env.steps, config=config, setting=setting_id(values), setting_values=dict(values),
               evaluation=study.evaluation, resources=alg.resources, command=alg.command,
               log_format=alg.log_format, log_pattern=alg.log_pattern, batch=batch)


def agnostic_values(study: Study, alg: AlgorithmSpec, env: EnvSpec, seed_index: int) -> dict[str, Any]:
    """Tuning-agnostic mode (Jordan et al. 2020): each run draws its own hyperparameters."""
    rng = np.random.default_rng(seeding.derive(study.seed, "agnostic", alg.name, env.name, seed_index))
    return {a.name: (a.values[int(rng.integers(len(a.values)))] if a.kind == "grid" else a.sample(rng))
            for a in alg.sweep}


def expand(study: Study, proposals: Mapping[str, list[dict[str, Any]]] | None = None) -> list[Run]:
    """The runs a study needs before any selection: tuning runs if ``[tuning]``, else evaluation runs.

    With a model-based search the settings are the recorded ``proposals[algorithm]`` so far.
    Evaluation runs of a tuned study depend on the tuning results: see :func:`evaluation_runs`.
    """
    runs = []
    for alg in study.algorithms:
        defaults = agent_defaults(alg)
        if study.tuning is not None and study.tuning.search == "optuna":
            points = list((proposals or {}).get(alg.name, []))
        else:
            points = settings(study, alg)
        for env in study.envs_of(alg):
            if study.mode == "tuning_agnostic":
                for i in range(study.runs):
                    # every run is its own draw: one "setting" for the whole distribution
                    run = make_run(study, alg, env, agnostic_values(study, alg, env, i), "eval", i, defaults)
                    runs.append(dataclasses.replace(run, setting="agnostic"))
                continue
            phase, n = ("tune", study.tuning.runs) if study.tuning else ("eval", study.runs)
            for values in points:
                batch = batch_size(study, alg, n, resolved_config(alg, env, values, defaults))
                for i in range(n):
                    runs.append(make_run(study, alg, env, values, phase, i, defaults, batch=batch, n_runs=n))
    return runs


def evaluation_runs(study: Study, selection: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[Run]:
    """Fresh-seed evaluation runs of the selected setting per ``(algorithm, env)``."""
    runs = []
    for alg in study.algorithms:
        defaults = agent_defaults(alg)
        for env in study.envs_of(alg):
            values = selection[(alg.name, env.name)]
            batch = batch_size(study, alg, study.runs, resolved_config(alg, env, values, defaults))
            runs.extend(make_run(study, alg, env, values, "eval", i, defaults, batch=batch, n_runs=study.runs)
                        for i in range(study.runs))
    return runs


def results_dir(study: Study, root: str | Path = "results") -> Path:
    """``<root>/<study name>``: every file evalkit writes for this study lives below it."""
    return Path(root) / study.name


def study_from_store(study_dir: str | Path) -> Study:
    """A read-only :class:`Study` describing an imported (or study-file-less) results folder.

    Envs, algorithms and swept hyperparameters are read back from the stored runs; the metric is
    ``auc`` unless ``study.json`` beside the runs says otherwise.
    """
    from evalkit import store
    study_dir = Path(study_dir)
    index = store.stored_index(study_dir)
    if index.empty:
        raise EvalkitError(f"{study_dir}: expected a study file or a results folder with stored runs, found none")
    info = {}
    if (study_dir / "study.json").exists():
        info = json.loads((study_dir / "study.json").read_text())
    budgets = index.groupby("env")["budget"].max().clip(lower=1)
    envs = tuple(EnvSpec(e, e, int(budgets[e])) for e in sorted(budgets.index))
    algs = []
    # one parse per distinct config: a sweep has few settings and many runs
    configs = index.drop_duplicates(["algorithm", "config"])
    for a in sorted(index["algorithm"].unique()):
        values: dict[str, set] = {}
        for text in configs.loc[configs["algorithm"] == a, "config"]:
            for k, v in json.loads(text).items():
                values.setdefault(k, set()).add(canonical_json(v))
        sweep = tuple(Axis(k, "grid", tuple(json.loads(v) for v in sorted(vs))) for k, vs in sorted(values.items())
                      if len(vs) > 1)
        algs.append(AlgorithmSpec(a, "imported", {}, sweep, None, {}, Resources()))
    return Study(study_dir, study_dir.name, 0, int(index["seed_index"].max()) + 1, info.get("metric", "auc"),
                 envs, tuple(algs), None, None, Resources())
