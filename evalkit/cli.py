"""The ``evalkit`` command line. Every user mistake ends in one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from evalkit.errors import EvalkitError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit status 2), not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default="results", metavar="DIR",
                   help="results root; the study's files go to DIR/<study name>/ (default: results)")


def _study_dir(args: argparse.Namespace):
    """The study and its results folder, from a study file or from a results folder (imports)."""
    from evalkit import spec
    if Path(args.study).is_dir():
        return spec.study_from_store(args.study), Path(args.study)
    study = spec.load_study(args.study)
    return study, spec.results_dir(study, args.root)


def _add_setting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setting", metavar="HP=V,...",
                   help="the setting comparison figures and tables use for a swept algorithm, e.g. "
                        "'alpha=0.2, epsilon=0.05' or 'sarsa: alpha=0.2; q_learning: alpha=0.8' (default: the "
                        "selected one in a tuned study, else each algorithm's best per env, with a "
                        "maximization-bias warning)")


# ------------------------------------------------------------------ commands


def cmd_run(args: argparse.Namespace) -> int:
    from evalkit import runner, spec
    study = spec.load_study(args.study)
    if args.workers < 1:
        raise EvalkitError(f"--workers: expected an integer >= 1, found {args.workers}")
    if args.retries < 0:
        raise EvalkitError(f"--retries: expected an integer >= 0, found {args.retries}")
    if args.timeout is not None and args.timeout <= 0:
        raise EvalkitError(f"--timeout: expected seconds > 0, found {args.timeout}")
    if args.batch_seeds is not None:
        if args.batch_seeds < 1:
            raise EvalkitError(f"--batch-seeds: expected an integer >= 1, found {args.batch_seeds}")
        study = dataclasses.replace(study, batch_seeds=args.batch_seeds)
    if args.dry_run:
        return _dry_run(study, args)
    options = runner.Options(backend="serial" if args.serial else "ray", workers=args.workers,
                             address=args.address, retries=args.retries, timeout_s=args.timeout,
                             rerun_stale=args.rerun_stale, progress=not args.no_progress,
                             dashboard=args.dashboard)
    summary = runner.run_study(study, args.root, options)
    study_dir = spec.results_dir(study, args.root)
    print(f"{study.name}: {summary.completed} runs completed, {summary.skipped} already stored, "
          f"{len(summary.failed)} failed -> {study_dir}")
    if summary.orphans:
        print(f"warning: {summary.orphans} stored runs match no run of the current study file "
              f"(kept; see 'evalkit status')", file=sys.stderr)
    if summary.failed:
        print(f"error: {len(summary.failed)} runs failed after {args.retries} retries; records in "
              f"{study_dir / 'failures'}; rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0


def _dry_run(study, args: argparse.Namespace) -> int:
    from evalkit import spec
    runs = spec.expand(study)
    for r in runs:
        print(r.describe())
    t = study.tuning
    if t is not None and t.search == "optuna":
        print(f"tuning: Optuna (Ray Tune's OptunaSearch) proposes {t.budget} settings per algorithm in batches of "
              f"{t.batch} while the study runs, {t.runs} tuning runs each (runs listed: those already proposed)")
    blocks = {}  # issue 21: the seed-block choice per (algorithm, env, setting) and its reason
    for r in runs:
        blocks.setdefault((r.algorithm, r.env, r.setting), r)
    for (alg_name, env_name, setting), r in blocks.items():
        n = study.tuning.runs if r.phase == "tune" else study.runs
        block, reason = spec.batch_choice(study, study.algorithm(alg_name), n, r.config)
        print(f"seed blocks: {alg_name} on {env_name} ({setting}): {block} seed{'s' if block > 1 else ''} "
              f"per process ({reason})")
    print(f"{len(runs)} runs" + (f" (tuning stage; then {study.runs} fresh-seed evaluation runs per "
                                 f"algorithm x env of the selected setting)" if t else ""))
    print("code this study executes:")
    for alg in study.algorithms:
        if alg.command is not None:
            print(f"  {alg.name}: command {alg.command!r}")
        else:
            from evalkit import registry
            info = registry.resolve_agent(alg.agent)
            print(f"  {alg.name}: agent {alg.agent!r} ({info.kind}: {info.module}.{getattr(info.train, '__name__', 'train')})")
    for env in study.envs:
        if env.entry or ":" in env.id:
            print(f"  env {env.name}: {env.entry or env.id}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from evalkit import status
    study, study_dir = _study_dir(args)
    table = status.study_status(study, study_dir)
    print(status.render(table))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from evalkit import report, results
    study, study_dir = _study_dir(args)
    loaded = results.load(study, study_dir)  # one load per command, handed to every part of the report
    text = report.text_report(study, study_dir, reps=args.reps, seed=args.seed, results=loaded, setting=args.setting)
    print(text)
    if args.text_only or text.endswith("(run 'evalkit run' first)"):
        return 0
    paths = report.write_report(study, study_dir, args.out, reps=args.reps, seed=args.seed,
                                figures=not args.no_figures, latex=args.latex, formats=_formats(args.format),
                                results=loaded, setting=args.setting)
    for p in paths:
        print(f"written: {p}")
    if not args.no_figures:
        print(f"figures: {Path(args.out or study_dir) / 'figures'}")
    return 0


def _formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in ("pdf", "png", "svg")]
    if bad or not formats:
        raise EvalkitError(f"--format: expected a comma-separated subset of pdf,png,svg, found {text!r}")
    return formats


def cmd_plot(args: argparse.Namespace) -> int:
    from evalkit import figures, results
    study, study_dir = _study_dir(args)
    kinds = figures.KINDS if args.kind == "all" else tuple(k.strip() for k in args.kind.split(",") if k.strip())
    data = figures.load(study, study_dir, results=results.load(study, study_dir), setting=args.setting)
    built = figures.build(data, kinds, size=args.size, reps=args.reps, seed=args.seed)
    if not built:
        raise EvalkitError(f"{study_dir}: none of the requested figures ({', '.join(kinds)}) applies to the "
                           f"stored runs of this study")
    out = Path(args.out or Path(study_dir) / "figures")
    for name, paths in figures.write(built, out, _formats(args.format)).items():
        print(f"{name}: " + ", ".join(str(p) for p in paths))
    for note in data.notes:
        print(f"note: {note}")
    return 0


def _analysis_dir(study_dir: Path) -> Path:
    out = Path(study_dir) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _compact(df):
    """The table for the terminal, within 100 columns (one quantity per line when wider): the method,
    reps and confidence are said once, above it; the full table is in the CSV."""
    from evalkit import tables
    return tables.render(df)


def _write_table(df, path: Path) -> None:
    """Machine-readable output beside the study: CSV and Parquet of the same table."""
    df.to_csv(path.with_suffix(".csv"), index=False)
    df.to_parquet(path.with_suffix(".parquet"), index=False)


def _phase_runs(study, study_dir: Path, phase: str | None = None, results=None, rung: int | None = None):
    """Per-run table of one phase: one row per planned run, with ``used`` and ``reason``."""
    from evalkit import results as results_mod
    res = results if results is not None else results_mod.load(study, study_dir)
    if res.empty:
        raise EvalkitError(f"{study_dir}: no stored runs (run 'evalkit run' first)")
    return res.runs(phase, study.metric, rung=rung)


def _print_accounting(runs, what: str) -> None:
    """The accounting rule in every output: n used of planned, excluded runs with their reasons."""
    from evalkit import accounting
    print(accounting.summary_note(runs, what))
    for line in accounting.note_lines(runs, ("algorithm", "env"), "  excluded"):
        print(line)


def _halving(results) -> bool:
    cat = results.catalog
    return bool(len(cat)) and "rung" in cat.columns and bool((cat["rung"] >= 0).any())


def _rung_budget(runs) -> str:
    b = runs.loc[runs["used"].astype(bool), "budget"] if "budget" in runs.columns else []
    if not len(b):
        return "no used run"
    lo, hi = int(b.min()), int(b.max())
    return f"{lo:,} env steps" if lo == hi else f"{lo:,}-{hi:,} env steps (per env)"


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from evalkit import results as results_mod
    from evalkit import sensitivity
    study, study_dir = _study_dir(args)
    res = results_mod.load(study, study_dir)
    tuned = (res.catalog["phase"] == "tune").any() if len(res.catalog) else False
    phase = "tune" if tuned else "eval"
    halving = _halving(res)
    # Adkins et al. compare every setting at one budget: under successive halving that is rung 0 (the
    # only budget every setting ran) unless --rung names another
    rung = args.rung if args.rung is not None else (0 if halving else None)
    runs = _phase_runs(study, study_dir, phase, res, rung)
    hps = args.hyperparameters.split(",") if args.hyperparameters else None
    result = sensitivity.hyperparameter_sensitivity(runs, hyperparameters=hps, reps=args.reps, seed=args.seed,
                                                    normalize=not args.no_normalize)
    from evalkit import tables
    table = tables.readable_settings(result.table(), runs)  # settings by their hyperparameters, not ids
    out = _analysis_dir(study_dir)
    _write_table(table, out / "sensitivity")
    print(tables.fit(f"hyperparameter sensitivity (Adkins, Bowling & White 2024) on the {phase} runs, metric "
                     f"{study.metric}, {args.reps} bootstrap resamples, 95% percentile CIs"))
    if halving:
        print(tables.fit(f"budget: successive-halving rung {rung if rung is not None else 'final'} "
                         f"({_rung_budget(runs)}); settings are compared at this common budget (--rung K for another)"))
    if "method" in table.columns and len(table):
        print(tables.fit(f"method: {table['method'].iloc[0]}"))
    _print_accounting(runs, f"{phase} runs")
    print(tables.fit(f"divergence: {accounting_policy()}"))
    for n in result.notes:
        print(tables.fit(f"note: {n}"))
    print(_compact(table))
    print(f"written: {out / 'sensitivity.csv'}")
    return 0


def accounting_policy() -> str:
    from evalkit import accounting
    return accounting.DIVERGENCE_POLICY


def cmd_chs(args: argparse.Namespace) -> int:
    from evalkit import accounting, chs
    from evalkit import results as results_mod
    study, study_dir = _study_dir(args)
    res = results_mod.load(study, study_dir)
    halving = _halving(res)
    stage1 = _phase_runs(study, study_dir, "tune", res)  # full budget: the budget stage 2 runs at
    stage2 = _phase_runs(study, study_dir, "eval", res)
    if not accounting.of(stage1).used or not accounting.of(stage2).used:
        raise EvalkitError(f"{study_dir}: CHS needs stored tuning runs (stage 1) and evaluation runs (stage 2); "
                           f"declare [tuning] select = \"cross_env\" and run the study")
    chosen = res.selection
    if chosen:
        print(f"selection ({chosen['method']}):")
        seen = set()
        for s in chosen["selected"]:
            if s["algorithm"] not in seen:
                seen.add(s["algorithm"])
                from evalkit.labels import setting_text
                print(f"  {s['algorithm']}: {setting_text(s['setting'])}  (stage-1 score {s['tuning_score']:.4f})")
    result = chs.chs_evaluate(stage1, stage2, reps=args.reps, seed=args.seed)
    from evalkit import tables
    table = tables.readable_settings(result.table(), stage1)
    out = _analysis_dir(study_dir)
    _write_table(table, out / "chs")
    print("CHS score of the stage-2 runs against the stage-1 CDFs (Patterson et al. 2024), 95% percentile CIs")
    if "method" in table.columns and len(table):
        print(tables.fit(f"method: {table['method'].iloc[0]}"))
    if halving:
        print(tables.fit(f"budget: the full budget ({_rung_budget(stage1)}), the budget of stage 2; settings stopped "
                         f"at an earlier successive-halving rung are excluded from stage 1 (stopped-at-rung)"))
    _print_accounting(stage1, "stage 1 (tuning runs)")
    _print_accounting(stage2, "stage 2 (evaluation runs)")
    print(tables.fit(f"divergence: {accounting.CHS_DIVERGENCE}; the CDF normalizer pools every algorithm's stage-1 "
                     f"runs by definition, so an algorithm's score depends on which algorithms are compared"))
    print(_compact(table))
    print(f"written: {out / 'chs.csv'}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from evalkit import audit, results
    study, study_dir = _study_dir(args)
    result = audit.audit(study, study_dir, reps=args.reps, seed=args.seed, results=results.load(study, study_dir))
    out = _analysis_dir(study_dir)
    _write_table(result.table(), out / "audit")
    if len(result.curves):
        _write_table(result.curves, out / "expected_max")
    from evalkit import tables
    print(tables.fit(result.render()))
    print(f"written: {out / 'audit.csv'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from evalkit import compare, results
    study, study_dir = _study_dir(args)
    a, b = args.algorithms
    result = compare.compare(study, study_dir, a, b, reps=args.reps, seed=args.seed,
                             results=results.load(study, study_dir))
    out = _analysis_dir(study_dir)
    _write_table(result.per_env.astype(str), out / f"compare_{a}_vs_{b}")
    _write_table(result.aggregate, out / f"compare_{a}_vs_{b}_aggregate")
    from evalkit import tables
    print(tables.render_comparison(result))
    print(f"written: {out / f'compare_{a}_vs_{b}.csv'}")
    return 0


# ------------------------------------------------------------------ reliability (Chan et al. 2020)


def _reliability_planned(res):
    """Planned evaluation-phase runs of the catalog with the reason a run may have no episode rows
    (failed / missing; '' for a stored run, counted as no-episode when it has none)."""
    import pandas as pd
    cat = res.catalog[res.catalog["phase"] == "eval"]
    return pd.DataFrame({"run_id": cat["run_id"], "algorithm": cat["algorithm"], "env": cat["env"],
                         "seed_index": cat["seed_index"],
                         "reason": cat["status"].where(cat["status"] != "done", "")})


def cmd_reliability(args: argparse.Namespace) -> int:
    from evalkit import reliability as rel
    from evalkit import results as results_mod
    study, study_dir = _study_dir(args)
    for name in ("reps", "permutations", "points"):
        if getattr(args, name) < (2 if name == "points" else 1):
            raise EvalkitError(f"--{name}: expected a positive integer, found {getattr(args, name)}")
    res = results_mod.load(study, study_dir)  # one load per command
    table = res.episodes
    table = table[table["phase"] == "eval"] if len(table) else table
    if table.empty:
        raise EvalkitError(f"{study_dir}: no stored evaluation-phase runs (run 'evalkit run' first)")
    result = rel.compute(table, points=args.points, window=args.window, alpha=args.alpha,
                         smoothing=args.smoothing, eval_points=args.eval_points,
                         planned=_reliability_planned(res), normalize=args.normalize)
    ranks = rel.rank_table(result, reps=args.reps, seed=args.seed)
    tests = rel.permutation_tests(result, reps=args.permutations, seed=args.seed)
    out = _analysis_dir(study_dir)
    _write_table(ranks, out / "reliability")
    _write_table(result.runs, out / "reliability_runs")
    _write_table(tests, out / "reliability_tests")
    _write_table(result.accounting, out / "reliability_accounting")
    print(rel.render(result, ranks, tests, width=100))
    print(f"written to {out}:")
    print("  reliability.csv (ranks), reliability_runs.csv, reliability_tests.csv, reliability_accounting.csv")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from evalkit import importers
    s = importers.import_path(args.path, args.name, args.root, fmt=args.format, pattern=args.pattern, tag=args.tag,
                              reference=args.reference, phase=args.phase, steps=args.steps, on_error=args.on_error,
                              workers=args.workers, progress=not args.no_progress)
    for line in s.problems:
        print(f"skipped: {line}", file=sys.stderr)
    for note in s.notes:
        print(f"note: {note}")
    formats = ", ".join(f"{n} {f}" for f, n in sorted(s.formats.items())) or "none"
    rate = f", {s.sources / s.seconds:.1f} sources/s" if s.seconds > 0 and s.sources else ""
    print(f"imported {s.added} new and {s.replaced} updated runs from {s.sources} sources ({formats}){rate}; "
          f"{s.unchanged} sources unchanged since the last import, {len(s.problems)} skipped, {s.ignored} files "
          f"of no known format -> {s.study_dir}")
    print(f"analyse with e.g. 'evalkit report {s.study_dir}', 'evalkit audit {s.study_dir}', "
          f"'evalkit sensitivity {s.study_dir}'")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    study, study_dir = _study_dir(args)
    if not args.failed:
        raise EvalkitError("clean: expected --failed (the only thing clean removes: failure records)")
    records = sorted((study_dir / "failures").glob("*.json"))
    for p in records:
        p.unlink()
    print(f"removed {len(records)} failure records from {study_dir / 'failures'}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    import importlib

    from evalkit import registry
    infos = registry.list_agents() if args.agent is None else [registry.resolve_agent(args.agent)]
    for info in infos:
        mod = importlib.import_module(info.module)
        env_defaults = getattr(mod, "ENV_DEFAULTS", {})
        tuned = {}
        if args.env is not None:  # issue 21: the defaults a study without a config gets on this env
            import gymnasium as gym
            import evalkit.envs  # noqa: F401  (registers the custom envs)
            if args.env not in gym.registry:
                raise EvalkitError(f"--env: expected a registered gymnasium environment id, found {args.env!r}")
            tuned = env_defaults.get(args.env, {})
        print(f"{info.name}  [{info.kind}: {info.module}]  {info.doc}")
        if args.env is not None:
            source = getattr(mod, "ENV_DEFAULTS_SOURCE", {}).get(args.env)
            print(f"    defaults for {args.env}: " + (f"tuned per env ({source})" if args.env in env_defaults
                                                      else "the agent's generic defaults (no per-env setting)"))
        elif env_defaults:
            print(f"    per-env defaults for: {', '.join(env_defaults)} (see --env)")
        for h in info.hyperparameters.values():
            rng = (f"choices {list(h.choices)}" if h.choices else
                   f"range [{h.low}, {h.high}]" if h.low is not None or h.high is not None else "")
            scale = " log" if h.log else ""
            value, mark = (tuned[h.name], "*") if h.name in tuned else (h.default, " ")
            print(f"   {mark}{h.name:24s} {h.type.__name__:5s} = {value!r:12}  {rng}{scale}  {h.help}")
        if tuned:
            print("    (* = per-env default; the study's config overrides any of these)")
        print()
    return 0


def cmd_slurm(args: argparse.Namespace) -> int:
    from evalkit import slurm, spec
    study = spec.load_study(args.study)  # a study that cannot run is refused here, not on the cluster
    out = Path(args.out or f"{Path(args.study).stem}.sbatch")
    job = slurm.Job(study=Path(args.study).resolve(), root=Path(args.root).resolve(), nodes=args.nodes,
                    cpus_per_node=args.cpus_per_node, time=args.time, partition=args.partition,
                    gpus_per_node=args.gpus_per_node, retries=args.retries, job_name=f"evalkit-{study.name}",
                    workdir=Path.cwd())
    path = slurm.write_script(job, out)
    print(f"written: {path} ({job.nodes} nodes x {job.cpus_per_node} CPUs, time limit {job.time})")
    if args.submit:
        print(slurm.submit(path))
    else:
        print(f"submit it with: sbatch {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evalkit", description="Run and judge multi-seed RL experiments.")
    parser.add_argument("--version", action="version", version=f"evalkit {__import__('evalkit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, fn: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=fn)
        return p

    p = command("run", cmd_run, "run every missing run of a study (resumable; Ctrl-C keeps completed runs)")
    p.add_argument("study", help="study file (TOML)")
    _add_root(p)
    p.add_argument("--workers", type=int, default=2, help="CPUs of the embedded Ray instance (default: 2)")
    p.add_argument("--address", help="join an existing Ray cluster instead (e.g. 'auto' after 'ray start --head')")
    p.add_argument("--serial", action="store_true", help="run in this process, one run at a time (debugging)")
    p.add_argument("--retries", type=int, default=1, help="retries of a failing run (default: 1)")
    p.add_argument("--timeout", type=float, help="seconds a run may take before it is stopped and failed")
    p.add_argument("--batch-seeds", type=int, metavar="N",
                   help="seeds per block for agents that train seeds together (1 = never; default: the "
                        "study's batch_seeds; 'auto' = the agent's measured block table, shown by --dry-run); "
                        "batched runs are stored under their own ids")
    p.add_argument("--rerun-stale", action="store_true", help="redo runs whose agent code changed since")
    p.add_argument("--dry-run", action="store_true", help="print the runs and the code they execute; run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard (on 127.0.0.1)")

    p = command("status", cmd_status, "done / failed / missing / stale runs per algorithm x env")
    p.add_argument("study")
    _add_root(p)

    p = command("report", cmd_report, "score tables with confidence intervals; writes report.md, a "
                "self-contained report.html and the figures beside the study's runs")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples (default: 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--out", help="folder for the report files (default: the study's results folder)")
    p.add_argument("--latex", action="store_true", help="also write the tables as booktabs LaTeX (report_tables.tex)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--format", default="pdf,png", help="figure formats (default: pdf,png)")
    p.add_argument("--text-only", action="store_true", help="print the table; write no files")
    _add_setting(p)

    p = command("plot", cmd_plot, "paper figures: learning curves, aggregates, probability of improvement, "
                "profiles, score distributions, sensitivity, expected max (PDF and PNG)")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--kind", default="all", help="comma-separated subset of " + ",".join(
        ("curves", "eval_curves", "normalized_curves", "aggregates", "improvement", "profiles", "distributions",
         "sensitivity", "expected_max")) + " (default: all that apply)")
    p.add_argument("--out", help="folder for the figures (default: <results>/<study>/figures)")
    p.add_argument("--size", choices=("single", "double"), default="double",
                   help="figure width: one column (3.5 in) or two (7 in)")
    p.add_argument("--format", default="pdf,png", help="comma-separated: pdf, png, svg (default: pdf,png)")
    p.add_argument("--reps", type=int, default=2_000, help="bootstrap resamples (default: 2000)")
    p.add_argument("--seed", type=int, default=0)
    _add_setting(p)

    p = command("compare", cmd_compare, "compare two algorithms per env and across envs: CIs, tolerance "
                "intervals, tests, probability of improvement, runs needed")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--algorithms", nargs=2, required=True, metavar=("A", "B"), help="the two algorithm labels")
    p.add_argument("--reps", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)

    p = command("sensitivity", cmd_sensitivity, "hyperparameter sensitivity and effective dimensionality "
                "(Adkins et al. 2024)")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--hyperparameters", help="comma-separated subset to analyse (default: every swept one)")
    p.add_argument("--no-normalize", action="store_true", help="scores are already normalized")
    p.add_argument("--rung", type=int, default=None, metavar="K",
                   help="successive halving: compare settings at rung K's budget (default: rung 0, where every "
                        "setting ran)")
    p.add_argument("--reps", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)

    p = command("chs", cmd_chs, "cross-environment hyperparameter setting benchmark (Patterson et al. 2024)")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--reps", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)

    p = command("audit", cmd_audit, "tuning-fairness audit: budgets, ranges, seeds, edges, runs, budget curves")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--reps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)

    p = command("reliability", cmd_reliability, "reliability metrics (Chan et al. 2020): dispersion and risk "
                "across time, across runs and of fixed policies, ranked per env with bootstrap CIs")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--points", type=int, default=50, help="step-grid windows of the curves (default: 50)")
    p.add_argument("--window", type=float, default=0.25,
                   help="within-run window, fraction of the budget (default: 0.25)")
    p.add_argument("--eval-points", type=int, default=20,
                   help="evaluation points of the across-run metrics (default: 20, the paper's)")
    p.add_argument("--alpha", type=float, default=0.05, help="CVaR tail fraction (default: 0.05)")
    p.add_argument("--smoothing", type=float, default=0.1,
                   help="low-pass cutoff period for across-run metrics, fraction of the budget; 0 = none "
                        "(default: 0.1)")
    p.add_argument("--normalize", choices=("none", "curve_range"), default="none",
                   help="curve_range: divide each run's metrics by its curve range (95th percentile - first "
                        "value), as in the paper's experiments (default: none, return units)")
    p.add_argument("--reps", type=int, default=1000, help="bootstrap resamples of the ranks (default: 1000)")
    p.add_argument("--permutations", type=int, default=1000, help="permutations per test (default: 1000)")
    p.add_argument("--seed", type=int, default=0)

    p = command("import", cmd_import, "import existing results (TensorBoard, SB3 monitor, rl-zoo3, W&B, JSON "
                "scores, CSV/Parquet) with their hyperparameters as a study")
    p.add_argument("path", help="a file or a folder of runs (formats are detected; see --format)")
    p.add_argument("--name", required=True, help="study name for the imported data")
    _add_root(p)
    p.add_argument("--format", choices=("tensorboard", "monitor", "zoo", "wandb", "scores", "table", "matrix"),
                   help="read only this format (default: detect per file)")
    p.add_argument("--pattern", help='identity from the path where the files do not record it, e.g. '
                   '"{algorithm}/{env}__{seed}" (fields: algorithm, env, seed, run, hp.NAME, _)')
    p.add_argument("--tag", help="the episodic-return tag or metric (default per layout: charts/episodic_return, "
                   "rollout/ep_rew_mean)")
    p.add_argument("--reference", metavar="HIGH,LOW",
                   help="min-max normalize: human.json,random.json ({task: score}, the 1 then the 0) or one CSV")
    p.add_argument("--phase", choices=("tune", "eval"), default="eval",
                   help="store the runs as tuning (stage 1) or evaluation runs (default: eval)")
    p.add_argument("--steps", type=int, help="step budget of runs whose files do not record it (default: their "
                   "last logged step); 'final' scores the last 10%% of it")
    p.add_argument("--on-error", choices=("skip", "stop"), default="stop",
                   help="a malformed source: skip it (one line each) or import nothing (default: stop)")
    p.add_argument("--workers", type=int, default=2, help="reader processes (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = command("clean", cmd_clean, "remove failure records (stored runs are never removed)")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--failed", action="store_true", help="remove the failure records in failures/")

    p = command("agents", cmd_agents, "list agents and their hyperparameters with defaults and ranges")
    p.add_argument("agent", nargs="?", help="only this agent")
    p.add_argument("--env", help="show the defaults a study gets on this gymnasium env id (per-env tuned defaults)")

    p = command("slurm", cmd_slurm, "write an sbatch script that starts a Ray cluster on a SLURM allocation "
                "and runs the study on it (--submit: and submit it)")
    p.add_argument("study", help="study file (TOML)")
    _add_root(p)
    p.add_argument("--nodes", type=int, required=True, help="nodes of the allocation (the first hosts the Ray head)")
    p.add_argument("--cpus-per-node", type=int, required=True, help="CPUs per node given to Ray")
    p.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node given to Ray (default: 0)")
    p.add_argument("--time", required=True, help="the job's time limit, HH:MM:SS")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--retries", type=int, default=1, help="retries of a failing run (default: 1)")
    p.add_argument("--out", help="script path (default: <study file stem>.sbatch)")
    p.add_argument("--submit", action="store_true", help="submit the script with sbatch")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # like `python -m`, import user agents ("mypkg.module:train") from the working directory
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from evalkit.runner import Interrupted
    try:
        return int(args.func(args) or 0)
    except Interrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except EvalkitError as exc:
        print("evalkit: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
