"""Packing short runs into one Ray task (issue 18), with per-run storage and failure isolation.

A study of thousands of short runs (500-step tabular CliffWorld: a few milliseconds of work each)
spends most of its time on per-task overhead when every run is its own Ray task. A :class:`Pack`
is a tuple of independent single runs executed one after another by one task
(:func:`evalkit.worker.execute_unit` accepts it like any unit). What does not change:

* every run is still stored as its own atomic file by the driver, as soon as its pack returns (the
  pack's files are written by a few threads, so their fsyncs overlap: 0.17 ms a file instead of 2.4 ms
  on an ext4 disk mounted with ``discard``);
* a run that fails inside a pack fails alone: the worker catches every run's exception, the others
  are stored, and the failed run is retried on its own with its own attempt count;
* a pack that is lost as a whole (worker process died, node lost) is not blamed on any of its
  runs: each run goes back to the queue as a single-run unit and is retried individually, attempts
  counted per run from there (so a segfaulting run fails alone and takes no other run with it).

Only single, unbatched runs without a timeout or memory cap are packed (those need a process of
their own), and only when there are many of them: ``size = min(MAX_PACK, runs // (workers * 8))``
keeps at least eight packs per worker so the last ones balance; with fewer than two runs per pack
nothing is packed, so small studies run exactly as before.
"""

from __future__ import annotations

from typing import Sequence

MAX_PACK = 32
#: causes the runner gives a whole unit when its task did not return (the pack is lost, not a run)
LOST = frozenset({"worker died", "node lost", "timeout"})


class Pack(tuple):
    """Independent single runs executed one after another in one task (a tuple of ``Run``)."""

    @property
    def units(self) -> list[tuple]:
        return [(r,) for r in self]


def packable(unit: tuple) -> bool:
    run = unit[0]
    res = run.resources
    return len(unit) == 1 and run.batch <= 1 and not res.timeout_s and not res.memory_mb


def pack_size(n_runs: int, workers: int) -> int:
    """Runs per pack for ``n_runs`` packable runs on ``workers`` workers (1 = do not pack)."""
    return max(1, min(MAX_PACK, n_runs // (max(1, workers) * 8)))


def make_packs(units: Sequence[tuple], workers: int, size: int | None = None) -> list[tuple]:
    """Group packable single-run units into :class:`Pack` s of ``size`` runs (auto when None); other
    units are returned as they are. Runs of one pack share algorithm and env (same imports, same
    env registration), in the order given."""
    single = [u for u in units if packable(u)]
    size = pack_size(len(single), workers) if size is None else int(size)
    if size < 2:
        return list(units)
    out = [u for u in units if not packable(u)]
    groups: dict[tuple, list] = {}
    for u in single:
        groups.setdefault((u[0].algorithm, u[0].env), []).append(u[0])
    for runs in groups.values():
        out += [Pack(runs[i:i + size]) for i in range(0, len(runs), size)]
    return out


def record_pack(execution, pack: Pack, outcomes: list, bar, queue) -> None:
    """Store what a pack returned, run by run; requeue the runs of a lost pack individually."""
    if any(o.cause in LOST for o in outcomes):
        execution.summary.lost_packs = getattr(execution.summary, "lost_packs", 0) + 1
        queue.extend(pack.units)
        return
    by_id = {o.run.run_id: o for o in outcomes}
    results = [(unit, [by_id[unit[0].run_id]]) for unit in pack.units]
    execution.store([(unit, out) for unit, out in results if out[0].ok], bar)
    for unit, out in results:  # a failed run fails alone: retried on its own, attempts counted per run
        if not out[0].ok:
            execution.record(unit, out, bar, queue)
