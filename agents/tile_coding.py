"""Tile coding with hashing, in pure numpy: the feature map of the linear control agents.

The idea follows Sutton's tiles3 and Sutton & Barto (2018), section 9.5.4: ``n_tilings`` grids,
each ``tiles`` cells wide per dimension over the input's bounds, every grid shifted by a
different fraction of a cell. A point activates exactly one cell (feature) per tiling, so
every input has exactly ``n_tilings`` active binary features. The shifts are asymmetric
(Miller & Glanz 1996): tiling t moves dimension j by ``t * (2j + 1) / n_tilings`` cells (mod 1),
which avoids the diagonal artefacts of uniform shifts.

Feature indices: when all cells of all tilings fit in ``size`` (``n_tilings * prod(tiles + 1)
<= size``) every cell gets its own index and nothing collides. Otherwise the table has the fixed
size ``size`` and each tiling owns a block of ``size // n_tilings`` indices, so two tilings never
share a feature and a point always activates ``n_tilings`` distinct features. Within a block a
cell gets its index in one of two ways:

* ``hashing="iht"`` (default, like tiles3's index hash table): cells get consecutive indices in
  the order they are first visited; once a block is full, further new cells are hashed into it.
  Only visited cells use the table, so collisions start late (Acrobot's observations lie on a
  torus: most cells of its 6-d grid are never visited). The indices depend on the visit order,
  which a seeded run repeats exactly; ``readonly=True`` lookups (evaluation) never allocate.
* ``hashing="modulo"``: a multiplicative 64-bit hash of the integer cell coordinates modulo the
  block size: stateless, a pure function of the cell, collisions from the start.

Input scaling comes from the observation space's bounds; a dimension without finite bounds
takes declared bounds (:data:`DECLARED_BOUNDS` for known envs, else ``+-unbounded_limit``).
Inputs outside the bounds are clipped to them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from gymnasium import spaces

# Bounds for envs whose Box observation space is unbounded (or uselessly wide) in some dims.
# CartPole: the episode ends at |x| > 2.4 and |theta| > 12 degrees; velocity ranges are the
# ones a balancing policy visits (the CHS code used similar ranges from rlpy's cart-pole).
# LunarLander: the ranges the CHS code tile-coded (the legs' contacts stay in [0, 1]).
_CARTPOLE = ((-2.4, 2.4), (-3.0, 3.0), (-0.2095, 0.2095), (-3.5, 3.5))
DECLARED_BOUNDS: dict[str, tuple[tuple[float, float], ...]] = {
    "CartPole-v0": _CARTPOLE,
    "CartPole-v1": _CARTPOLE,
    "LunarLander-v3": ((-1.0, 1.0),) * 6 + ((0.0, 1.0),) * 2,
}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def observation_bounds(space: spaces.Space, env_id: str | None = None,
                       unbounded_limit: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float64 arrays to scale a Box observation for tile coding.

    Declared bounds for ``env_id`` win; remaining infinite bounds become ``-+unbounded_limit``.
    """
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"tile coding needs a 1-d Box observation space, got {space!r}"
                         f"{' for ' + env_id if env_id else ''}; use a tabular agent for discrete spaces")
    low = np.asarray(space.low, dtype=np.float64).copy()
    high = np.asarray(space.high, dtype=np.float64).copy()
    declared = DECLARED_BOUNDS.get(env_id or "")
    if declared is not None and len(declared) == low.size:
        low, high = np.array([b[0] for b in declared]), np.array([b[1] for b in declared])
    low = np.where(np.isfinite(low), low, -unbounded_limit)
    high = np.where(np.isfinite(high), high, unbounded_limit)
    return low, high


def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole 64-bit word."""
    h = h ^ (h >> np.uint64(30))
    h = h * _MIX1
    h = h ^ (h >> np.uint64(27))
    h = h * _MIX2
    return h ^ (h >> np.uint64(31))


class TileCoder:
    """Maps points of the box ``[low, high]`` to ``n_tilings`` active feature indices in ``[0, n_features)``.

    ``tiles``: cells per dimension (an int, or one per dimension). ``size``: the fixed table size;
    ``None`` means exact indices whatever their number. ``hashing``: ``"iht"`` or ``"modulo"``,
    used only when the cells do not fit in ``size``.
    """

    def __init__(self, low: Sequence[float], high: Sequence[float], tiles: int | Sequence[int] = 8,
                 n_tilings: int = 8, size: int | None = 4096, hashing: str = "iht") -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        d = self.low.size
        if self.low.shape != (d,) or self.high.shape != (d,) or d == 0:
            raise ValueError("TileCoder: low and high must be 1-d arrays of equal length")
        if not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high)) and np.all(self.high > self.low)):
            raise ValueError(f"TileCoder: need finite bounds with high > low, got {self.low} .. {self.high}")
        if hashing not in ("iht", "modulo"):
            raise ValueError(f"TileCoder: hashing must be 'iht' or 'modulo', got {hashing!r}")
        self.tiles = np.broadcast_to(np.asarray(tiles, dtype=np.int64), (d,)).copy()
        if np.any(self.tiles < 1) or n_tilings < 1:
            raise ValueError("TileCoder: tiles and n_tilings must be >= 1")
        self.n_tilings = int(n_tilings)
        self.scale = self.tiles / (self.high - self.low)
        t = np.arange(self.n_tilings)[:, None]
        self.offsets = ((t * (2 * np.arange(d)[None, :] + 1)) % self.n_tilings) / self.n_tilings  # (n, d)
        cells = self.tiles + 1  # a shifted grid needs one more cell per dimension
        self.cells_per_tiling = int(np.prod(cells.astype(object)))  # exact, no overflow
        exact = self.n_tilings * self.cells_per_tiling
        self.hashed = size is not None and exact > size
        self.hashing = hashing if self.hashed else "exact"
        if self.hashed:
            if size < self.n_tilings:
                raise ValueError(f"TileCoder: size {size} is smaller than n_tilings {self.n_tilings}")
            self.block = int(size) // self.n_tilings
            self.n_features = self.block * self.n_tilings
            # one pseudo-random odd 64-bit multiplier per dimension: sum_j c_j * m_j (mod 2^64) then
            # separates cells whose coordinates differ by small integers (multiples of one constant would not)
            with np.errstate(over="ignore"):
                self._mult = _mix64((np.arange(d, dtype=np.uint64) + np.uint64(1)) * _GOLDEN) | np.uint64(1)
            self._tables: list[dict[int, int]] = [{} for _ in range(self.n_tilings)]
            self.overflow = 0  # new cells hashed into a full block
        else:
            self.block = self.cells_per_tiling
            self.n_features = exact
            strides = np.ones(d, dtype=np.int64)
            for j in range(d - 2, -1, -1):
                strides[j] = strides[j + 1] * cells[j + 1]
            self._strides = strides
        self._base = np.arange(self.n_tilings, dtype=np.int64) * self.block

    def cells(self, x: np.ndarray) -> np.ndarray:
        """Integer cell coordinates per tiling: ``(..., n_tilings, d)`` for points ``(..., d)``."""
        z = (np.clip(np.asarray(x, dtype=np.float64), self.low, self.high) - self.low) * self.scale
        return np.floor(z[..., None, :] + self.offsets).astype(np.int64)

    def indices(self, x: np.ndarray, readonly: bool = False) -> np.ndarray:
        """Active feature indices: ``(n_tilings,)`` for one point, ``(m, n_tilings)`` for ``(m, d)``.

        With ``hashing="iht"`` a lookup allocates table entries for unseen cells unless
        ``readonly`` (then an unseen cell gets its modulo-hash index without being stored).
        """
        c = self.cells(x)
        if not self.hashed:
            return c @ self._strides + self._base
        with np.errstate(over="ignore"):
            keys = _mix64((c.astype(np.uint64) * self._mult).sum(axis=-1, dtype=np.uint64))
        if self.hashing == "modulo":
            return (keys % np.uint64(self.block)).astype(np.int64) + self._base
        if keys.ndim == 1:
            return self._iht(keys, readonly) + self._base
        return np.stack([self._iht(k, readonly) for k in keys.reshape(-1, self.n_tilings)]).reshape(
            keys.shape) + self._base

    def _iht(self, keys: np.ndarray, readonly: bool) -> np.ndarray:
        """Within-block indices of one point's ``n_tilings`` cell keys, allocating on first visit."""
        out = np.empty(self.n_tilings, dtype=np.int64)
        for t, key in enumerate(keys.tolist()):
            table = self._tables[t]
            i = table.get(key)
            if i is None:
                if readonly or len(table) >= self.block:
                    i = key % self.block
                    self.overflow += not readonly
                else:
                    i = table[key] = len(table)
            out[t] = i
        return out
