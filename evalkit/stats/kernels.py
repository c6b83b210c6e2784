"""Compiled (numba) fused kernels of the stratified bootstrap: draw, count and evaluate in one pass.

The numpy count path (:mod:`evalkit.stats.resample`) needs separate trips through memory -- draw
the indices, build integer keys, ``np.bincount``, convert to float, multiply -- so it takes several
times what drawing the indices alone takes. These kernels do each resample in one go, on arrays
small enough to stay in L1/L2: draw its ``runs`` indices per task, add them to counts over the
globally sorted scores (or per-threshold bins, or within-task ranks) and read off the statistic;
nothing of size ``reps x runs x tasks`` is materialised. They compute exactly the statistics of
the count path (same definitions; sums may differ in the last bits because they are summed in
another order).

**Draws.** Each resample starts at a fresh 64-bit word of the algorithm's bit generator
(``rng.bit_generator``, e.g. the stream :func:`evalkit.stats.bootstrap.algorithm_rng` derives from
the seed and the name); a word gives four 16-bit lanes (two 32-bit lanes above 2**16 runs), each
turned into an index uniform on ``[0, runs)`` by Lemire's multiply-shift with rejection (Lemire
2019, "Fast random integer generation in an interval": exact, unbiased). Resample ``b`` therefore
uses the same words however the resamples are split into calls, and the same seed gives bitwise
the same replicates. (numpy's ``Generator.integers`` uses the same method on buffered 32-bit
words; the indices differ from numpy's, the distribution does not.)

The first call of each kernel in a fresh environment compiles it (a few seconds, once: the machine
code is cached on disk next to this file, ``cache=True``).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.np.random.generator_core import next_uint64

# reassociation only: lets LLVM vectorise the count-weighted sums (replicates differ from a
# left-to-right sum in the last bits); no assumptions about NaN or infinity
FAST = {"reassoc", "contract"}
BLOCK = 64  # counts summed per step when searching for an IQM cut


@nb.njit(cache=True, nogil=True)
def fill(bg, runs, out):
    """``out[:]`` = draws uniform on ``[0, runs)``, from fresh 64-bit words of bit generator ``bg``."""
    n = out.size
    r = np.uint64(runs)
    if runs <= 65536:
        bits, mask, lanes = np.uint64(16), np.uint64(0xFFFF), 4
        thr = np.uint64((65536 - runs) % runs)  # 2**16 mod runs: low parts below it are rejected
    else:
        bits, mask, lanes = np.uint64(32), np.uint64(0xFFFFFFFF), 2
        thr = np.uint64((4294967296 - runs) % runs)
    i = 0
    if lanes == 4:
        while i + 4 <= n:  # whole words while no lane is rejected (the common case)
            w = next_uint64(bg)
            m0 = (w & mask) * r
            m1 = ((w >> bits) & mask) * r
            m2 = ((w >> np.uint64(32)) & mask) * r
            m3 = (w >> np.uint64(48)) * r
            if (m0 & mask) >= thr and (m1 & mask) >= thr and (m2 & mask) >= thr and (m3 & mask) >= thr:
                out[i] = np.uint32(m0 >> bits)
                out[i + 1] = np.uint32(m1 >> bits)
                out[i + 2] = np.uint32(m2 >> bits)
                out[i + 3] = np.uint32(m3 >> bits)
                i += 4
            else:
                for m in (m0, m1, m2, m3):
                    if (m & mask) >= thr:
                        out[i] = np.uint32(m >> bits)
                        i += 1
    while i < n:
        w = next_uint64(bg)
        for _ in range(lanes):
            m = (w & mask) * r
            w >>= bits
            if (m & mask) >= thr:
                out[i] = np.uint32(m >> bits)
                i += 1
                if i == n:
                    break


# ------------------------------------------------------------------------------- aggregates


@nb.njit(cache=True, nogil=True, fastmath=FAST)
def _dot(cnt, v, a, b):
    c, w = cnt[a:b], v[a:b]  # loops from 0 over slices: LLVM sees no negative index and vectorises
    s = 0.0
    for p in range(c.size):
        s += c[p] * w[p]
    return s


@nb.njit(cache=True, nogil=True)
def _cross(cnt, k, p, below):
    """Smallest sorted position ``P >= p`` whose running count reaches ``k``, and the count below
    it (``below``: the count below ``p``). Whole blocks are skipped by their sums."""
    n = cnt.size
    while p + BLOCK <= n:
        c = cnt[p:p + BLOCK]
        s = 0
        for q in range(BLOCK):
            s += c[q]
        if below + s >= k:
            break
        below += s
        p += BLOCK
    while below + cnt[p] < k:
        below += cnt[p]
        p += 1
    return p, below


@nb.njit(cache=True, nogil=True)
def _select(a, n, k):
    """Partially order ``a[:n]`` so that ``a[k]`` is its k-th smallest (quickselect, median-of-3)."""
    lo, hi = 0, n - 1
    while hi > lo:
        mid = (lo + hi) // 2
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@nb.njit(cache=True, nogil=True)
def _median(a, n):
    """Median of ``a[:n]`` (reorders it): the mean of the two middle values for even n, as np.median."""
    k = n // 2
    _select(a, n, k)
    if n % 2:
        return a[k]
    left = a[0]
    for i in range(1, k):
        left = max(left, a[i])
    return 0.5 * (left + a[k])


@nb.njit(cache=True, nogil=True, fastmath=FAST)
def _aggregates_one(d, runs, tasks, pos, vt, sv, sg, lo, hi, rows, gamma, cnt, tsum, out, b):
    """Aggregates of the resample with draws ``d`` (tasks * runs: task t's run indices at
    ``d[t * runs:(t + 1) * runs]``) into ``out[:, b]``.

    ``pos``: sorted position of each task-major cell ``t * runs + run``; ``vt``: the scores
    task-major; ``sv``, ``sg``: the sorted scores and their minimum with gamma; ``lo``, ``hi``: the
    IQM's cuts; ``rows``: output row of (iqm, mean, median, optimality_gap), -1 if not wanted.
    """
    n = runs * tasks
    cnt[:] = 0
    # per-task slices indexed by unsigned draws: no negative-index checks in the inner loops
    if rows[2] >= 0:
        for t in range(tasks):
            dt, pt, vtt = d[t * runs:(t + 1) * runs], pos[t * runs:(t + 1) * runs], vt[t * runs:(t + 1) * runs]
            s = 0.0
            for r in range(runs):
                cnt[pt[dt[r]]] += 1
                s += vtt[dt[r]]
            tsum[t] = s
        out[rows[2], b] = _median(tsum, tasks) / runs
    else:
        for t in range(tasks):
            dt, pt = d[t * runs:(t + 1) * runs], pos[t * runs:(t + 1) * runs]
            for r in range(runs):
                cnt[pt[dt[r]]] += 1
    if rows[0] >= 0 and lo > 0:
        # L(k), the sum of the k smallest values: the count-weighted sum below the position where
        # the running count reaches k, plus the rest of k at that position's value
        p1, c1 = _cross(cnt, lo, 0, 0)
        p2, c2 = _cross(cnt, hi, p1, c1)
        d2 = _dot(cnt, sv, p1, p2)
        total = _dot(cnt, sv, 0, p1) + d2 + _dot(cnt, sv, p2, n)
        out[rows[0], b] = (d2 + (hi - c2) * sv[p2] - (lo - c1) * sv[p1]) / (hi - lo)
    else:
        total = _dot(cnt, sv, 0, n)
        if rows[0] >= 0:
            out[rows[0], b] = total / n
    if rows[1] >= 0:
        out[rows[1], b] = total / n
    if rows[3] >= 0:
        out[rows[3], b] = gamma - _dot(cnt, sg, 0, n) / n


@nb.njit(cache=True, nogil=True)
def aggregates_drawn(rng, runs, tasks, pos, vt, sv, sg, lo, hi, rows, gamma, out):
    """Aggregates of ``out.shape[1]`` resamples drawn from ``rng`` (see :func:`fill`) into ``out``
    (rows as ``rows`` says). Outputs are allocated by the caller, so Python's memory tracing sees them."""
    reps = out.shape[1]
    bg = rng.bit_generator
    d = np.empty(runs * tasks, np.uint32)
    cnt = np.empty(runs * tasks, np.int32)
    tsum = np.empty(tasks)
    for b in range(reps):
        fill(bg, runs, d)
        _aggregates_one(d, runs, tasks, pos, vt, sv, sg, lo, hi, rows, gamma, cnt, tsum, out, b)


@nb.njit(cache=True, nogil=True)
def aggregates_given(idx, runs, tasks, pos, vt, sv, sg, lo, hi, rows, gamma, out):
    """The same for given draws ``idx`` (reps, tasks * runs) -- to test the kernel on known resamples."""
    reps = idx.shape[0]
    d = np.empty(runs * tasks, np.uint32)
    cnt = np.empty(runs * tasks, np.int32)
    tsum = np.empty(tasks)
    for b in range(reps):
        d[:] = idx[b]
        _aggregates_one(d, runs, tasks, pos, vt, sv, sg, lo, hi, rows, gamma, cnt, tsum, out, b)


# ------------------------------------------------------------------------------- profiles


@nb.njit(cache=True, nogil=True)
def _profile_one(d, runs, bins, k, hist, col, out, b):
    """Fractions above each threshold of the resample with draws ``d`` into ``out[col, b]``.

    ``bins``: per task-major cell, how many (sorted) thresholds lie below its score; ``col``: the
    output column of each sorted threshold."""
    n = d.size
    hist[:] = 0
    for base in range(0, n, runs):
        dt, bt = d[base:base + runs], bins[base:base + runs]
        for r in range(runs):
            hist[bt[dt[r]]] += 1
    above = 0
    for j in range(k, 0, -1):  # draws in bins >= j lie above sorted threshold j - 1
        above += hist[j]
        out[col[j - 1], b] = above / n


@nb.njit(cache=True, nogil=True)
def profile_drawn(rng, runs, tasks, bins, k, col, out):
    reps = out.shape[1]  # out: (k, reps), thresholds along rows (percentiles along contiguous memory)
    bg = rng.bit_generator
    d = np.empty(runs * tasks, np.uint32)
    hist = np.empty(k + 1, np.int64)
    for b in range(reps):
        fill(bg, runs, d)
        _profile_one(d, runs, bins, k, hist, col, out, b)


@nb.njit(cache=True, nogil=True)
def profile_given(idx, runs, bins, k, col, out):
    reps = idx.shape[0]
    d = np.empty(idx.shape[1], np.uint32)
    hist = np.empty(k + 1, np.int64)
    for b in range(reps):
        d[:] = idx[b]
        _profile_one(d, runs, bins, k, hist, col, out, b)


# ------------------------------------------------------------------------------- probability of improvement


@nb.njit(cache=True, nogil=True)
def _poi_counts(d, runs, tasks, h, e):
    """Counts of one resample of one algorithm whose draws ``d`` are *ranks within the task*
    (a draw uniform over the runs is one uniform over their ranks): ``h[t * (runs + 1) + 1 + k]``
    = draws of the k-th smallest run of task t (``h[t * (runs + 1)] = 0``), and ``e`` its running
    total within each task (``e[t * (runs + 1) + k]``: draws among the k smallest runs)."""
    h[:] = 0
    for t in range(tasks):
        dt, ht = d[t * runs:(t + 1) * runs], h[t * (runs + 1) + 1:(t + 1) * (runs + 1)]
        for r in range(runs):
            ht[dt[r]] += 1
    for t in range(tasks):
        base = t * (runs + 1)
        e[base] = 0
        total = 0  # in a register: e and h might alias as far as the compiler knows
        for q in range(base + 1, base + runs + 1):
            total += h[q]
            e[q] = total


@nb.njit(cache=True, nogil=True, fastmath=FAST)
def _rank_sum(cx, e, rows):
    """``sum_j cx_j e[rows_j]`` in 32-bit integers (eight gathers per AVX2 instruction); the caller
    makes sure it cannot overflow (it is at most runs_x * runs_y * tasks)."""
    s = np.int32(0)
    for j in range(rows.size):
        s += cx[j] * e[rows[j]]
    return s


@nb.njit(cache=True, nogil=True)
def _poi_pairs(h, e, x_start, row_start, lt, le, tied, tied_start, norm, out, b):
    """P(X > Y) of each pair p for the resample with counts ``h`` and running totals ``e`` (all
    algorithms side by side, as :func:`_poi_counts` lays them out) into ``out[p, b]``.

    Pair p's x counts are ``h[x_start[p]:]`` (``row_start[p + 1] - row_start[p]`` of them); twice
    its Mann-Whitney count is ``sum_j h_j (e[lt_j] + e[le_j])`` with ``lt``/``le`` (positions in e:
    y's running totals at #y < x_j and #y <= x_j) in ``[row_start[p], row_start[p + 1])``. Where no
    score of x ties one of y, le = lt and one sum suffices; ``tied[tied_start[p]:tied_start[p + 1]]``
    lists the positions (offsets within the pair) where they differ.
    """
    for p in range(x_start.size):
        r0, r1 = row_start[p], row_start[p + 1]
        cp = h[x_start[p]:x_start[p] + r1 - r0]
        s = 2 * np.int64(_rank_sum(cp, e, lt[r0:r1]))
        for q in range(tied_start[p], tied_start[p + 1]):
            j = tied[q]
            s += np.int64(cp[j]) * (e[le[r0 + j]] - e[lt[r0 + j]])
        out[p, b] = s * (0.5 / norm[p])


@nb.njit(cache=True, nogil=True)
def poi_drawn(rngs, runs, tasks, ox, oe, x_start, row_start, lt, le, tied, tied_start, norm, out):
    """P(X > Y) replicates into ``out`` (pairs, reps); algorithm a (``runs[a]`` runs, draws ``ox[a]:ox[a + 1]``,
    counts ``oe[a]:oe[a + 1]``) resampled from ``rngs[a]`` (a tuple of Generators), once per
    replicate for every pair it is in."""
    reps = out.shape[1]
    h = np.empty(oe[-1], np.int32)
    e = np.empty(oe[-1], np.int32)
    d = np.empty(np.max(ox[1:] - ox[:-1]), np.uint32)  # one buffer for all: it stays in L1
    for b in range(reps):
        for a in range(len(rngs)):
            if ox[a + 1] > ox[a]:
                da = d[:ox[a + 1] - ox[a]]
                fill(rngs[a].bit_generator, runs[a], da)
                _poi_counts(da, runs[a], tasks, h[oe[a]:oe[a + 1]], e[oe[a]:oe[a + 1]])
        _poi_pairs(h, e, x_start, row_start, lt, le, tied, tied_start, norm, out, b)


@nb.njit(cache=True, nogil=True)
def poi_given(ranks, runs, tasks, ox, oe, x_start, row_start, lt, le, tied, tied_start, norm, out):
    """The same for given draws as ranks within the task, ``ranks`` (reps, all draws; algorithm
    a's at ``ox[a]:ox[a + 1]``)."""
    reps = ranks.shape[0]
    h = np.empty(oe[-1], np.int32)
    e = np.empty(oe[-1], np.int32)
    for b in range(reps):
        for a in range(runs.size):
            if ox[a + 1] > ox[a]:
                _poi_counts(ranks[b, ox[a]:ox[a + 1]], runs[a], tasks, h[oe[a]:oe[a + 1]], e[oe[a]:oe[a + 1]])
        _poi_pairs(h, e, x_start, row_start, lt, le, tied, tied_start, norm, out, b)
