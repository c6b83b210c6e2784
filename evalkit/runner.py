"""Executes a study's runs through Ray (or serially, in-process), resumably.

A run is done when its Parquet file exists and reads back; everything else is (re)run. Each run
is one Ray task returning its episodes to the driver, which writes every file. A run that fails
is recorded in ``failures/<run_id>.json`` and retried up to ``retries`` times; the others go on.
Ctrl-C cancels what is in flight and keeps every completed run.

On a cluster (``address``): runs whose node dies are retried on the other nodes (cause
``node lost``, naming the node), a lost head ends the study in one line, and a run whose resource
request no node can meet is refused before anything runs. Run files record node id and hostname.
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from evalkit import catalog, packing, spec, store, worker
from evalkit.errors import EvalkitError
from evalkit.spec import Run, Study


#: a partition's run files are merged into one compacted file once it holds this many (end of a run)
COMPACT_MIN_FILES = 256


class _StageFailed(Exception):
    """A tuning round had failed runs: later rounds and selection cannot be computed yet."""


class Interrupted(EvalkitError):
    """Ctrl-C: completed runs are kept; rerunning the same command resumes."""


@dataclass(frozen=True)
class Options:
    backend: str = "ray"  # "ray" | "serial"
    workers: int = 2
    address: str | None = None
    retries: int = 1
    timeout_s: float | None = None
    rerun_stale: bool = False
    progress: bool = True
    dashboard: bool = False
    pack: int | None = None  # runs per Ray task for many short runs (None: automatic; 1: never)


@dataclass
class Summary:
    planned: int = 0
    skipped: int = 0
    seen: set = field(default_factory=set)
    completed: int = 0
    failed: list[str] = field(default_factory=list)
    orphans: int = 0
    selection: dict | None = None
    lost_packs: int = 0  # packs of short runs whose task died; their runs were retried one by one

    @property
    def ok(self) -> bool:
        return not self.failed


class StudyLock:
    """An exclusive lock on a study's results folder, so two runners never run the same study.

    The second runner says who holds the lock and waits for it; once it gets the lock it
    rescans the store, so nothing the first one finished is run again.
    """

    def __init__(self, study_dir: Path, announce: Callable[[str], None]) -> None:
        self.path = Path(study_dir) / ".lock"
        self.announce = announce
        self.fh = None

    def __enter__(self) -> "StudyLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "another process"
            self.announce(f"another evalkit run ({holder}) is running this study; waiting for it to finish "
                          f"(Ctrl-C to stop waiting)")
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"pid {os.getpid()}")
        self.fh.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.truncate(0)
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()


def _eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_metadata(run: Run, outcome: worker.Outcome) -> dict:
    """Everything stored in a run file's footer."""
    return {
        "run_id": run.run_id, "study": run.study, "algorithm": run.algorithm, "agent": run.agent,
        "env": run.env, "env_id": run.env_id, "env_kwargs": dict(run.env_kwargs), "phase": run.phase,
        "seed_index": run.seed_index, "seed": run.seed, "eval_seed": run.eval_seed, "setting": run.setting,
        "setting_values": dict(run.setting_values), "config": dict(run.config), "steps": run.steps,
        "command": run.command, "wall_s": round(outcome.wall_s, 3),
        "node_id": outcome.node_id, "hostname": outcome.hostname, "cpu": outcome.cpu,
        "status": "diverged" if worker.diverged(outcome.rows) else "complete",
        "agent_hash": outcome.agent_hash or current_agent_hash(run), "git_commit": store.git_commit(),
        "versions": store.versions(),
    }


# where a run's code identity is computed (the catalog needs it too, below the runner)
current_agent_hash = catalog.current_agent_hash
stale_runs = catalog.stale_runs


Unit = tuple  # the runs executed together: one run, or one fixed block of seeds (batched agents)


def make_units(todo: list[Run], all_runs: list[Run]) -> list[Unit]:
    """Group what must run into units. A batched block with any run missing is recomputed whole
    (its membership is fixed by the study: the block of seed indices it belongs to)."""
    blocks: dict[tuple, list[Run]] = collections.defaultdict(list)
    for r in all_runs:
        if r.batch > 1:
            blocks[r.block_key].append(r)
    units, seen = [], set()
    for r in todo:
        if r.batch <= 1:
            units.append((r,))
        elif r.block_key not in seen:
            seen.add(r.block_key)
            units.append(tuple(sorted(blocks[r.block_key], key=lambda x: x.seed_index)))
    return units


class _Execution:
    """One pass over a list of units with one backend; records results as they arrive."""

    def __init__(self, study_dir: Path, options: Options, summary: Summary) -> None:
        self.dir, self.opt, self.summary = study_dir, options, summary
        self.attempts: dict[tuple, int] = collections.Counter()
        # failed attempts of a unit that may still succeed: stored with the run, so a run retried
        # after a lost node says so even once its failure record is gone
        self.history: dict[tuple, list[dict]] = collections.defaultdict(list)

    def record(self, unit: Unit, outcomes: list[worker.Outcome], bar: tqdm, queue: collections.deque) -> None:
        """Store a unit's successful runs; a failed unit is retried whole (a batch is atomic)."""
        if isinstance(unit, packing.Pack):  # many single runs in one task: recorded run by run
            return packing.record_pack(self, unit, outcomes, bar, queue)
        if all(o.ok for o in outcomes):
            return self.store([(unit, outcomes)], bar)
        key = tuple(r.run_id for r in unit)
        self.attempts[key] += 1
        attempts = self.attempts[key]
        final = attempts > self.opt.retries
        failed = next(o for o in outcomes if not o.ok)
        self.history[key].append({"attempt": attempts, "cause": failed.cause, "node_id": failed.node_id,
                                  "hostname": failed.hostname,
                                  "error": (failed.error.strip().splitlines() or [""])[-1]})
        for run in unit:
            store.write_failure(self.dir, run.run_id, {
                "run_id": run.run_id, "algorithm": run.algorithm, "env": run.env, "phase": run.phase,
                "seed_index": run.seed_index, "seed": run.seed, "config": dict(run.config),
                "batch": [r.run_id for r in unit] if len(unit) > 1 else None,
                "attempts": attempts, "final": final, "cause": failed.cause, "error": failed.error,
                "node_id": failed.node_id, "hostname": failed.hostname,
                "output": failed.output[-20_000:], "time": time.time()})
        if final:
            self.summary.failed.extend(r.run_id for r in unit)
            bar.update(len(unit))
            bar.set_postfix(failed=len(self.summary.failed))
        else:
            queue.append(unit)

    def store(self, done: list[tuple[Unit, list[worker.Outcome]]], bar: tqdm) -> None:
        """Store the runs of units that succeeded, each as its own atomic file (written together by
        :func:`store.write_runs`, so their fsyncs overlap), then count them."""
        items = []
        for unit, outcomes in done:
            key = tuple(r.run_id for r in unit)
            self.attempts[key] += 1
            history = self.history.pop(key, [])
            for o in outcomes:
                meta = run_metadata(o.run, o)
                meta["attempts"], meta["failed_attempts"] = self.attempts[key], history
                items.append((meta, o.rows))
        store.write_runs(self.dir, items)
        self.summary.completed += len(items)
        bar.update(len(items))

    def serial(self, units: list[Unit], bar: tqdm) -> None:
        queue = collections.deque(units)
        while queue:
            unit = queue.popleft()
            self.record(unit, worker.execute_unit(unit, in_process=True), bar, queue)

    def ray(self, units: list[Unit], bar: tqdm) -> None:
        import ray
        check_resources(units)
        head = _HeadWatch(self.opt.address, self.dir)
        remote = ray.remote(max_retries=0)(worker.execute_unit)
        # runs with a memory cap get a fresh worker process each, so RLIMIT_AS never outlives them
        remote_fresh = ray.remote(max_retries=0, max_calls=1)(worker.execute_unit)
        cluster_cpus = int(ray.cluster_resources().get("CPU", self.opt.workers))
        capacity = max(1, cluster_cpus if self.opt.address else min(self.opt.workers, cluster_cpus))
        capacity *= 2 if any(isinstance(u, packing.Pack) for u in units) else 1  # next pack queued: no idle worker
        queue = collections.deque(units)
        pending: dict = {}
        # timeouts count from a unit's start, which the worker marks with a file; on an external
        # cluster the worker may not share this file system, so there they count from submission
        markers = None if self.opt.address else Path(tempfile.mkdtemp(prefix="evalkit-started-"))
        submitted = 0
        try:
            while queue or pending:
                while queue and len(pending) < capacity:
                    unit = queue.popleft()
                    res = unit[0].resources
                    opts = {"num_cpus": res.cpus, "num_gpus": res.gpus}
                    fn = remote
                    if res.memory_mb:
                        opts["memory"] = res.memory_mb * 1024 * 1024
                        fn = remote_fresh
                    submitted += 1
                    marker = str(markers / str(submitted)) if markers else None
                    pending[fn.options(**opts).remote(unit, False, marker)] = (unit, time.time(), marker)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    unit, _t0, _marker = pending.pop(ref)
                    try:
                        outcomes = ray.get(ref)
                    except ray.exceptions.NodeDiedError as exc:  # its node is gone: retried elsewhere
                        outcomes = _node_lost(unit, exc)
                    except Exception as exc:  # worker died (segfault, OOM kill) or Ray error
                        outcomes = [worker.Outcome(r, False, error=f"{type(exc).__name__}: {exc}",
                                                   cause="worker died") for r in unit]
                    self.record(unit, outcomes, bar, queue)
                now = time.time()
                for ref, (unit, t0, marker) in list(pending.items()):
                    limit = unit[0].resources.timeout_s or self.opt.timeout_s
                    if limit and marker:
                        t0 = _started_at(marker)
                    if limit and t0 is not None and now - t0 > limit:
                        ray.cancel(ref, force=True)
                        pending.pop(ref)
                        outcomes = [worker.Outcome(r, False, wall_s=now - t0, cause="timeout",
                                                   error=f"run exceeded its timeout of {limit:g} s") for r in unit]
                        self.record(unit, outcomes, bar, queue)
                head.check(len(pending))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if markers:
                shutil.rmtree(markers, ignore_errors=True)


def _node_lost(unit: Unit, exc: Exception) -> list[worker.Outcome]:
    """Outcomes of a unit whose node died under it, naming the node (Ray's message carries its id)."""
    import ray
    found = re.search(r"node ID: ([0-9a-f]+)", str(exc))
    node_id = found.group(1) if found else ""
    hosts = {n["NodeID"]: n.get("NodeManagerHostname", "") for n in ray.nodes()}
    hostname = hosts.get(node_id, "")
    where = f"node {node_id or '(unknown)'}" + (f" on {hostname}" if hostname else "")
    return [worker.Outcome(r, False, error=f"lost {where}: {exc}", cause="node lost", node_id=node_id,
                           hostname=hostname) for r in unit]


class _HeadWatch:
    """Notices that the cluster's head (its GCS) is gone, so the driver says so in one line.

    Without it, Ray keeps the driver waiting for a minute and then ends the process with a C++
    log message. Runs that finished are already stored; the rerun resumes from them. Checked only
    when running on an external cluster: the embedded instance lives and dies with the driver.
    """

    every_s = 3.0
    misses_allowed = 1  # one unanswered probe can be a busy head; two in a row is a dead one

    def __init__(self, address: str | None, study_dir: Path) -> None:
        self.dir, self.target, self.misses, self.last = study_dir, None, 0, time.time()
        if address:
            import ray
            try:
                host, _, port = ray.get_runtime_context().gcs_address.rpartition(":")
                self.target = (host.strip("[]"), int(port))
            except Exception:  # no GCS address to probe (e.g. Ray Client): Ray's own handling applies
                self.target = None

    def check(self, in_flight: int) -> None:
        if self.target is None or time.time() - self.last < self.every_s:
            return
        self.last = time.time()
        try:
            socket.create_connection(self.target, timeout=2.0).close()
            self.misses = 0
            return
        except OSError:
            self.misses += 1
        if self.misses > self.misses_allowed:
            stored = len(store.scan(self.dir, repair=False))
            raise EvalkitError(f"lost the Ray cluster's head at {self.target[0]}:{self.target[1]} (its GCS stopped "
                               f"answering) with {in_flight} runs in flight; {stored} completed runs are stored in "
                               f"{self.dir}; start a new cluster and rerun the same command to resume")


def check_resources(units: Iterable[Unit]) -> None:
    """Refuse, before anything runs, a run that no node of the Ray cluster could ever be given:
    Ray would otherwise queue it forever. Names the algorithm, what it asks and what each node has."""
    import ray
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    seen = set()
    for unit in units:
        run = unit[0]
        res = run.resources
        need = {"CPU": res.cpus, "GPU": res.gpus, "memory": (res.memory_mb or 0) * 1024 * 1024}
        key = (run.algorithm, tuple(need.items()))
        if key in seen:
            continue
        seen.add(key)
        if any(all(n["Resources"].get(k, 0.0) >= v for k, v in need.items() if v) for n in nodes):
            continue
        have = "; ".join(f"{n.get('NodeManagerHostname') or n.get('NodeManagerAddress')} (node {n['NodeID'][:8]}): "
                         f"{_describe(n['Resources'])}" for n in nodes) or "no live nodes"
        asks = (f"cpus = {res.cpus:g}, gpus = {res.gpus:g}"
                + (f", memory_mb = {res.memory_mb}" if res.memory_mb else ""))
        raise EvalkitError(f"study {run.study!r}: algorithms.{run.algorithm}.resources: expected a per-run request "
                           f"that one node of the Ray cluster can satisfy, found {asks}; the cluster has {have}")


def _describe(resources: dict) -> str:
    return (f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs, "
            f"{resources.get('memory', 0) / 2**20:,.0f} MB memory")


def _started_at(marker: str) -> float | None:
    """When the worker started the unit (the time it wrote), or None while it has not started."""
    try:
        text = Path(marker).read_text()
        return float(text) if text else os.path.getmtime(marker)
    except (OSError, ValueError):
        return None


def init_ray(options: Options) -> None:
    """Start the embedded Ray (127.0.0.1 only, no dashboard) or join ``options.address``."""
    import ray
    if ray.is_initialized():
        return
    # Workers import user agents from the study's working directory, as the driver does.
    paths = [os.getcwd(), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if options.address:
        import ray._private.ray_constants as ray_constants
        if _is_loopback(options.address):
            # keep a cluster on this machine on 127.0.0.1: Ray otherwise swaps a loopback address
            # for the machine's routable one (services.resolve_ip_for_localhost)
            ray_constants.ENABLE_RAY_CLUSTER = False
        _probe_head(options.address)
        try:
            ray.init(address=options.address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EvalkitError(f"--address {options.address}: expected a running Ray cluster to join, found "
                               f"none ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None
    else:
        # Bind every Ray server to 127.0.0.1: on Linux Ray otherwise picks the machine's routable
        # address and listens on all interfaces, and its API has no authentication (CVE-2023-48022).
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        import ray._private.ray_constants as ray_constants
        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(address="local", num_cpus=options.workers, include_dashboard=options.dashboard,
                 dashboard_host="127.0.0.1",
                 _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")


def _probe_head(address: str, timeout_s: float = 5.0) -> None:
    """Fail in one line, at once, when nothing listens at a ``HOST:PORT`` address (``ray.init``
    would retry for minutes). ``auto`` and ``ray://`` addresses are left to Ray."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise EvalkitError(f"--address {address}: expected a running Ray cluster's head (its GCS port), "
                           f"found nothing answering ({exc.strerror or exc})") from None


def _is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rpartition(":")[0] or address
    return host.strip("[]") in ("127.0.0.1", "localhost", "::1")


def execute_runs(runs: list[Run], study_dir: Path, options: Options, summary: Summary, desc: str) -> None:
    """Run every run not yet stored (or stale, with ``rerun_stale``)."""
    catalog.record_planned(study_dir, runs)  # the catalog knows every planned run (halving rungs too)
    stored = store.scan(study_dir)
    todo = [r for r in runs if r.run_id not in stored]
    if options.rerun_stale:
        todo += stale_runs(runs, stored)
    if options.timeout_s:  # the CLI's --timeout also bounds command runs from inside the worker
        todo = [dataclasses.replace(r, resources=dataclasses.replace(
            r.resources, timeout_s=r.resources.timeout_s or options.timeout_s)) for r in todo]
    new = {r.run_id for r in runs} - summary.seen
    summary.seen |= new
    summary.planned += len(new)
    summary.skipped += len({r.run_id for r in runs if r.run_id in stored} & new)
    if not todo:
        return
    units = make_units(todo, runs)
    ex = _Execution(study_dir, options, summary)
    with tqdm(total=sum(len(u) for u in units), desc=desc, unit="run", disable=not options.progress,
              file=sys.stderr, dynamic_ncols=True) as bar:
        if options.backend == "serial":
            ex.serial(units, bar)
        else:
            init_ray(options)
            ex.ray(packing.make_packs(units, options.workers, options.pack), bar)


def run_study(study: Study, root: str | Path = "results", options: Options = Options()) -> Summary:
    """Run a whole study (both stages of a tuned one). Returns what was done and what failed."""
    from evalkit import selection, tuning
    study_dir = spec.results_dir(study, root)
    summary = Summary()

    def execute(runs: list[Run], desc: str) -> None:
        execute_runs(runs, study_dir, options, summary, desc)
        if summary.failed:
            raise _StageFailed()

    with StudyLock(study_dir, _eprint):
        try:
            t = study.tuning
            if t is not None and t.search == "optuna":
                first = spec.expand(study, tuning.optuna_stage(study, study_dir, execute))
            elif t is not None and t.scheduler == "successive_halving":
                first = tuning.halving_stage(study, study_dir, execute)
            else:
                first = spec.expand(study)
                execute_runs(first, study_dir, options, summary, "tuning" if t else study.name)
            expected = {r.run_id for r in first}
            if t is not None:
                if summary.failed:
                    raise _StageFailed()
                chosen = selection.select(study, study_dir)
                summary.selection = chosen.as_dict()
                (study_dir / "selection.json").write_text(json.dumps(chosen.as_dict(), indent=2, default=str))
                second = spec.evaluation_runs(study, chosen.values)
                execute_runs(second, study_dir, options, summary, "evaluation")
                expected |= {r.run_id for r in second}
        except _StageFailed:
            _eprint("tuning runs failed: the next tuning round, the selection and the evaluation runs wait "
                    "until they succeed (rerun the same command)")
            return summary
        except KeyboardInterrupt:
            stored = len(store.scan(study_dir, repair=False))
            raise Interrupted(f"interrupted: {stored} completed runs are stored in {study_dir}; "
                              f"run the same command again to resume") from None
        summary.orphans = len(set(store.scan(study_dir, repair=False)) - expected)
        store.compact(study_dir, COMPACT_MIN_FILES)
    return summary
