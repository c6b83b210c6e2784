"""What executes one run, inside a Ray worker or in-process: agent in, episode rows out.

The worker never writes files: it returns the rows to the driver, which stores them, so a
multi-node Ray cluster needs no shared filesystem.
"""

from __future__ import annotations

import functools
import importlib
import math
import platform
import resource
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from evalkit.spec import Run


@dataclass
class Outcome:
    """The result of one attempt at a run."""

    run: Run
    ok: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    error: str = ""
    cause: str = ""  # "exception" | "timeout" | "worker died" | "memory"
    output: str = ""  # captured stdout/stderr of command runs
    agent_hash: str = ""
    node_id: str = ""  # the Ray node that executed it ("" in-process, outside Ray)
    hostname: str = ""  # the machine that executed it
    cpu: str = ""  # its CPU model and torch's kernel level (see :func:`cpu`)


def where() -> tuple[str, str]:
    """(Ray node id, hostname) of this process: which node of a cluster executes a run."""
    node_id = ""
    ray = sys.modules.get("ray")  # never import Ray (a second) just to learn that it is not running
    try:
        if ray is not None and ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id() or ""
    except Exception:  # a Ray without a runtime context here: no node id to record
        node_id = ""
    return node_id, socket.gethostname()


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu() -> str:
    """This machine's CPU model and the SIMD level torch's kernels dispatch to, e.g. ``"Intel(R)
    Xeon(R) ... ; torch AVX512"``. Stored returns are bitwise reproducible on the same kind of CPU;
    torch picks different kernels (and so rounds differently) on another SIMD level, so run files
    record it (the level only when torch is loaded in this process, as it is after any agent ran)."""
    torch = sys.modules.get("torch")
    level = ""
    try:
        if torch is not None:
            level = f"; torch {torch.backends.cpu.get_cpu_capability()}"
    except Exception:  # an older torch without the query: the model alone
        level = ""
    return _cpu_model() + level


def register_env(run: Run) -> None:
    """Make the run's env id known to gymnasium in this process (custom entry points)."""
    import gymnasium as gym
    import evalkit.envs  # noqa: F401  (CliffWorld, PuddleWorld)
    if run.entry and run.env_id not in gym.registry:
        gym.register(id=run.env_id, entry_point=run.entry)


def _address_space_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()


def limit_memory(memory_mb: int | None) -> None:
    """Cap this process's address space (RLIMIT_AS) so an over-allocating run fails alone.

    The cap is the worker's address space when the run starts plus ``memory_mb``: a Ray worker
    already maps its runtime and shared object store, which the run's own budget must not count.
    The runner gives such runs a fresh worker process (``max_calls=1``), so the cap dies with it.
    """
    if memory_mb:
        limit = _address_space_bytes() + int(memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def execute(run: Run, in_process: bool = False) -> Outcome:
    """Run one agent for ``run.steps`` env steps with one torch thread; never raises.

    ``in_process`` (the serial backend) skips the memory limit, which would bind the driver too.
    """
    t0 = time.perf_counter()
    try:
        import torch
        torch.set_num_threads(1)
        register_env(run)
        if not in_process:
            limit_memory(run.resources.memory_mb)
        if run.command is not None:
            from evalkit.command import run_command
            rows, output = run_command(run)
            return Outcome(run, True, rows, time.perf_counter() - t0, output=output)
        from agents.common import Evaluation, ListLog
        from evalkit import registry
        info = registry.resolve_agent(run.agent)
        config = info.config_cls(**run.config) if info.config_cls is not None else dict(run.config)
        evaluation = (Evaluation(run.evaluation.every, run.evaluation.episodes, run.eval_seed % 2**32)
                      if run.evaluation else None)
        log = ListLog()
        info.train(run.env_id, config, run.seed, run.steps, log, env_kwargs=dict(run.env_kwargs),
                   evaluation=evaluation)
        return Outcome(run, True, log.rows, time.perf_counter() - t0, agent_hash=info.source_hash)
    except KeyboardInterrupt:  # Ctrl-C belongs to the runner, not to the run
        raise
    except MemoryError:
        return Outcome(run, False, wall_s=time.perf_counter() - t0, error=traceback.format_exc(), cause="memory")
    except BaseException as exc:  # a failing agent must not take the runner down
        cause = getattr(exc, "evalkit_cause", "exception")
        output = getattr(exc, "evalkit_output", "")
        return Outcome(run, False, wall_s=time.perf_counter() - t0, error=traceback.format_exc(),
                       cause=cause, output=output)


def execute_unit(unit: tuple[Run, ...], in_process: bool = False, started: str | None = None) -> list[Outcome]:
    """Execute one unit (see ``_execute_unit``) and stamp each outcome with the node and host
    that executed it, so a cluster's run files say where every run ran."""
    outcomes = _execute_unit(unit, in_process, started)
    node_id, hostname = where()
    kind = cpu()
    for o in outcomes:
        o.node_id, o.hostname, o.cpu = node_id, hostname, kind
    return outcomes


def _execute_unit(unit: tuple[Run, ...], in_process: bool = False, started: str | None = None) -> list[Outcome]:
    """Execute one unit: a single run, or a block of seeds of one setting through the agent's
    ``train_batch`` (all seeds in one process, one batched computation). Never raises.

    ``started``: a file to create when the unit starts executing, so the driver measures a run's
    timeout from its start, not from when it was queued (worker start-up can take seconds)."""
    if started:
        with open(started, "w") as fh:
            fh.write(f"{time.time():.6f}")
    if len(unit) == 1 and unit[0].batch <= 1:
        return [execute(unit[0], in_process)]
    from evalkit.packing import Pack
    if isinstance(unit, Pack):  # independent runs, one after another: each fails alone
        return [execute(r, in_process) for r in unit]
    t0 = time.perf_counter()
    first = unit[0]
    try:
        import torch
        torch.set_num_threads(1)
        register_env(first)
        if not in_process:
            limit_memory(first.resources.memory_mb)
        from agents.common import Evaluation, ListLog
        from evalkit import registry
        info = registry.resolve_agent(first.agent)
        train_batch = getattr(importlib.import_module(info.module), "train_batch")
        config = info.config_cls(**first.config) if info.config_cls is not None else dict(first.config)
        logs = [ListLog() for _ in unit]
        evaluation = ([Evaluation(r.evaluation.every, r.evaluation.episodes, r.eval_seed % 2**32) for r in unit]
                      if first.evaluation else None)
        train_batch(first.env_id, config, [r.seed for r in unit], first.steps, logs,
                    env_kwargs=dict(first.env_kwargs), evaluation=evaluation)
        wall = (time.perf_counter() - t0) / len(unit)
        return [Outcome(r, True, log.rows, wall, agent_hash=info.source_hash) for r, log in zip(unit, logs)]
    except KeyboardInterrupt:
        raise
    except MemoryError:
        err = traceback.format_exc()
        return [Outcome(r, False, wall_s=time.perf_counter() - t0, error=err, cause="memory") for r in unit]
    except BaseException as exc:  # a failing batch must not take the runner down
        err = traceback.format_exc()
        cause = getattr(exc, "evalkit_cause", "exception")
        return [Outcome(r, False, wall_s=time.perf_counter() - t0, error=err, cause=cause) for r in unit]


def diverged(rows: list[dict[str, Any]]) -> bool:
    """True when any logged return or extra (e.g. loss) is NaN or infinite."""
    for r in rows:
        for k, v in r.items():
            if k not in ("mode", "step", "episode", "length") and isinstance(v, float) and not math.isfinite(v):
                return True
    return False
