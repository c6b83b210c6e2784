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
    from evalkit import report
    study, study_dir = _study_dir(args)
    text = report.text_report(study, study_dir, reps=args.reps, seed=args.seed)
    print(text)
    if args.text_only or text.endswith("(run 'evalkit run' first)"):
        return 0
    paths = report.write_report(study, study_dir, args.out, reps=args.reps, seed=args.seed,
                                figures=not args.no_figures, latex=args.latex, formats=_formats(args.format))
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
    from evalkit import figures
    study, study_dir = _study_dir(args)
    kinds = figures.KINDS if args.kind == "all" else tuple(k.strip() for k in args.kind.split(",") if k.strip())
    data = figures.load(study, study_dir)
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
    """The table for the terminal: the method, reps and confidence are said once, above it."""
    return df.drop(columns=[c for c in ("method", "reps", "confidence") if c in df.columns]).to_string(
        index=False, float_format=lambda v: f"{v:.4g}")


def _write_table(df, path: Path) -> None:
    """Machine-readable output beside the study: CSV and Parquet of the same table."""
    df.to_csv(path.with_suffix(".csv"), index=False)
    df.to_parquet(path.with_suffix(".parquet"), index=False)


def _phase_runs(study, study_dir: Path, phase: str | None = None):
    """Per-run scores of the stored runs (one phase, or the tuning phase when the study has one)."""
    from evalkit import metrics, status
    table = status.load_current(study, study_dir)
    if table.empty:
        raise EvalkitError(f"{study_dir}: no stored runs (run 'evalkit run' first)")
    if phase is not None:
        table = table[table["phase"] == phase]
    return metrics.run_scores(table, study.metric)


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from evalkit import selection, sensitivity
    study, study_dir = _study_dir(args)
    phase = "tune" if study.tuning else "eval"
    # tuned studies: the full-budget tuning runs (successive halving leaves truncated ones too)
    runs = selection.tuning_scores(study, study_dir) if study.tuning else _phase_runs(study, study_dir, phase)
    hps = args.hyperparameters.split(",") if args.hyperparameters else None
    result = sensitivity.hyperparameter_sensitivity(runs, hyperparameters=hps, reps=args.reps, seed=args.seed,
                                                    normalize=not args.no_normalize)
    table = result.table()
    out = _analysis_dir(study_dir)
    _write_table(table, out / "sensitivity")
    print(f"hyperparameter sensitivity (Adkins, Bowling & White 2024) on the {phase} runs, metric {study.metric}, "
          f"{args.reps} bootstrap resamples, 95% percentile CIs")
    if "method" in table.columns and len(table):
        print(f"method: {table['method'].iloc[0]}")
    print(_compact(table))
    print(f"written: {out / 'sensitivity.csv'}")
    return 0


def cmd_chs(args: argparse.Namespace) -> int:
    from evalkit import chs, selection
    study, study_dir = _study_dir(args)
    stage1 = _phase_runs(study, study_dir, "tune")
    stage2 = _phase_runs(study, study_dir, "eval")
    if stage1.empty or stage2.empty:
        raise EvalkitError(f"{study_dir}: CHS needs stored tuning runs (stage 1) and evaluation runs (stage 2); "
                           f"declare [tuning] select = \"cross_env\" and run the study")
    chosen = selection.load_selection(study_dir)
    if chosen:
        print(f"selection ({chosen['method']}):")
        seen = set()
        for s in chosen["selected"]:
            if s["algorithm"] not in seen:
                seen.add(s["algorithm"])
                print(f"  {s['algorithm']}: {s['setting']}  (stage-1 score {s['tuning_score']:.4f})")
    result = chs.chs_evaluate(stage1, stage2, reps=args.reps, seed=args.seed)
    table = result.table()
    out = _analysis_dir(study_dir)
    _write_table(table, out / "chs")
    print("CHS score of the stage-2 runs against the stage-1 CDFs (Patterson et al. 2024), 95% percentile CIs")
    if "method" in table.columns and len(table):
        print(f"method: {table['method'].iloc[0]}")
    print(_compact(table))
    print(f"written: {out / 'chs.csv'}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from evalkit import audit
    study, study_dir = _study_dir(args)
    result = audit.audit(study, study_dir, reps=args.reps, seed=args.seed)
    out = _analysis_dir(study_dir)
    _write_table(result.table(), out / "audit")
    if len(result.curves):
        _write_table(result.curves, out / "expected_max")
    print(result.render())
    print(f"written: {out / 'audit.csv'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from evalkit import compare
    study, study_dir = _study_dir(args)
    a, b = args.algorithms
    result = compare.compare(study, study_dir, a, b, reps=args.reps, seed=args.seed)
    out = _analysis_dir(study_dir)
    _write_table(result.per_env.astype(str), out / f"compare_{a}_vs_{b}")
    _write_table(result.aggregate, out / f"compare_{a}_vs_{b}_aggregate")
    print(result.render())
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from evalkit import importer
    n = importer.import_file(args.file, args.name, args.root)
    print(f"imported {n} runs into {Path(args.root) / args.name}; analyse with e.g. "
          f"'evalkit report {Path(args.root) / args.name}'")
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
                        "study's batch_seeds, 'auto' = 8); batched runs are stored under their own ids")
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

    p = command("import", cmd_import, "import a CSV/Parquet long table or .npz/JSON score matrices as a study")
    p.add_argument("file", help="CSV or Parquet (algorithm, env, run, step, return[, hp.*, phase]), or .npz/.json")
    p.add_argument("--name", required=True, help="study name for the imported data")
    _add_root(p)

    p = command("clean", cmd_clean, "remove failure records (stored runs are never removed)")
    p.add_argument("study")
    _add_root(p)
    p.add_argument("--failed", action="store_true", help="remove the failure records in failures/")

    p = command("agents", cmd_agents, "list agents and their hyperparameters with defaults and ranges")
    p.add_argument("agent", nargs="?", help="only this agent")
    p.add_argument("--env", help="show the defaults a study gets on this gymnasium env id (per-env tuned defaults)")
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
