"""The tile coder: coverage, generalisation, hashing range and determinism, bounds."""

import numpy as np
import pytest
from gymnasium import spaces

from agents.tile_coding import DECLARED_BOUNDS, TileCoder, observation_bounds


def test_hand_computed_indices_exact_mode():
    # 2 tilings of 2x2 tiles on the unit square; tiling 1 is shifted by (1*1 % 2)/2 = 0.5 and
    # (1*3 % 2)/2 = 0.5 tiles. (0.3, 0.8) scales to (0.6, 1.6): tiling 0 cell (0, 1), tiling 1
    # cell floor(1.1, 2.1) = (1, 2). Each tiling has 3x3 cells, so indices 0*3+1 and 9+1*3+2.
    coder = TileCoder([0, 0], [1, 1], tiles=2, n_tilings=2, size=None)
    assert coder.n_features == 18 and not coder.hashed
    np.testing.assert_array_equal(coder.indices(np.array([0.3, 0.8])), [1, 14])


def test_offsets_are_asymmetric():
    coder = TileCoder([0, 0, 0], [1, 1, 1], tiles=4, n_tilings=8)
    # dimension j moves by t * (2j + 1) / n: displacement vector (1, 3, 5), not the diagonal
    np.testing.assert_allclose(coder.offsets[1], [1 / 8, 3 / 8, 5 / 8])
    assert len({tuple(o) for o in coder.offsets}) == 8
    assert not np.allclose(coder.offsets[:, 0], coder.offsets[:, 1])


@pytest.mark.parametrize("size,hashing", [(None, "iht"), (4096, "iht"), (64, "iht"), (64, "modulo")])
def test_each_input_activates_exactly_n_tilings_distinct_features(size, hashing):
    coder = TileCoder([-1.2, -0.07], [0.6, 0.07], tiles=8, n_tilings=8, size=size, hashing=hashing)
    assert coder.hashed == (size == 64)  # 8 tilings x 9 x 9 cells = 648 fit in 4096
    rng = np.random.default_rng(0)
    pts = rng.uniform([-1.5, -0.1], [0.9, 0.1], size=(2000, 2))  # includes points outside the bounds
    idx = coder.indices(pts)
    assert idx.shape == (2000, 8)
    assert idx.min() >= 0 and idx.max() < coder.n_features
    # one feature per tiling, each inside its tiling's block, so never a repeat within a point
    block = coder.n_features // 8
    np.testing.assert_array_equal(idx // block, np.broadcast_to(np.arange(8), idx.shape))
    assert all(len(set(row)) == 8 for row in idx)


def _first_visit_labels(column):
    labels = {}
    return [labels.setdefault(v, len(labels)) for v in column.tolist()]


def test_iht_without_overflow_is_a_relabelling_of_exact_tiles():
    # Acrobot-like: 6 dims, 4 tiles, 16 tilings = 16 * 5**6 cells; 3000 points visit far fewer
    low, high = -np.ones(6), np.ones(6)
    exact = TileCoder(low, high, tiles=4, n_tilings=16, size=None)
    iht = TileCoder(low, high, tiles=4, n_tilings=16, size=16 * 4096)
    assert iht.hashed and iht.hashing == "iht"
    pts = np.random.default_rng(3).uniform(-1, 1, size=(3000, 6))
    ie, ih = exact.indices(pts), iht.indices(pts)
    assert iht.overflow == 0
    for t in range(16):  # the same points share a cell in both, tiling by tiling
        assert _first_visit_labels(ie[:, t]) == _first_visit_labels(ih[:, t])
    np.testing.assert_array_equal(ih[0], np.arange(16) * 4096)  # first visit takes each block's slot 0


def test_iht_overflow_stays_in_range_and_readonly_never_allocates():
    coder = TileCoder(-np.ones(4), np.ones(4), tiles=8, n_tilings=4, size=64)  # 16 slots per tiling
    pts = np.random.default_rng(4).uniform(-1, 1, size=(500, 4))
    before = [dict(t) for t in coder._tables]
    ro = coder.indices(pts[:50], readonly=True)
    assert [dict(t) for t in coder._tables] == before and coder.overflow == 0
    assert ro.min() >= 0 and ro.max() < 64
    idx = coder.indices(pts)
    assert idx.min() >= 0 and idx.max() < 64
    assert all(len(t) == 16 for t in coder._tables) and coder.overflow > 0
    again = TileCoder(-np.ones(4), np.ones(4), tiles=8, n_tilings=4, size=64).indices(pts)
    np.testing.assert_array_equal(idx, again)  # same visit order, same indices


def test_nearby_points_share_most_features_far_points_few():
    coder = TileCoder([0, 0], [1, 1], tiles=8, n_tilings=8, size=None)
    width = 1 / 8
    rng = np.random.default_rng(1)
    near, mid, far = [], [], []
    for p in rng.uniform(0.2, 0.6, size=(300, 2)):
        base = set(coder.indices(p))
        near.append(len(base & set(coder.indices(p + [0.05 * width, 0]))))
        mid.append(len(base & set(coder.indices(p + [0.5 * width, 0.5 * width]))))
        far.append(len(base & set(coder.indices(p + [1.01 * width, 0]))))
    assert min(near) >= 7  # a shift of 1/20 tile crosses at most one tiling's boundary
    assert 1 <= np.mean(mid) <= 6  # generalisation decays with distance
    assert max(far) == 0  # more than a tile apart in one dimension: no shared cell


def test_modulo_hashing_stays_in_range_is_deterministic_and_spreads():
    low, high = -np.ones(8), np.ones(8)
    a = TileCoder(low, high, tiles=8, n_tilings=8, size=4096, hashing="modulo")
    b = TileCoder(low, high, tiles=8, n_tilings=8, size=4096, hashing="modulo")
    assert a.hashed and a.n_features == 4096  # 8 * 9**8 cells cannot fit
    pts = np.random.default_rng(2).uniform(-1, 1, size=(5000, 8))
    ia, ib = a.indices(pts[::-1])[::-1], b.indices(pts)
    np.testing.assert_array_equal(ia, ib)  # a pure function of the point, whatever the visit order
    assert ia.min() >= 0 and ia.max() < 4096
    # 5000 random points in a 43-million-cell grid land in most of each 512-slot block
    assert len(np.unique(ia[:, 0])) > 0.9 * 512
    np.testing.assert_array_equal(a.indices(pts[17]), ia[17])  # single point == batch row


def test_cell_keys_do_not_collide_on_small_integer_grids():
    # every cell of a 5**6 grid must get its own key, else distinct tiles would share weights
    coder = TileCoder(-np.ones(6), np.ones(6), tiles=4, n_tilings=1, size=5000, hashing="iht")
    assert coder.hashed  # 5**6 cells do not fit in 5000
    grid = np.stack(np.meshgrid(*[np.arange(5)] * 6, indexing="ij"), -1).reshape(-1, 6)
    centres = -1 + (grid + 0.5) / 4 * 2  # tiling 0 has no offset: cell c spans [c, c+1) / 4 of the range
    idx = coder.indices(centres[grid.max(axis=1) < 4])
    assert coder.overflow == 0 and len(np.unique(idx)) == 4 ** 6


def test_inputs_are_clipped_to_the_bounds():
    coder = TileCoder([0, 0], [1, 1], tiles=4, n_tilings=4, size=None)
    np.testing.assert_array_equal(coder.indices(np.array([-5.0, 7.0])), coder.indices(np.array([0.0, 1.0])))


def test_bad_bounds_are_rejected():
    with pytest.raises(ValueError, match="finite bounds"):
        TileCoder([0, -np.inf], [1, 1])
    with pytest.raises(ValueError, match="finite bounds"):
        TileCoder([0, 1], [1, 1])


def test_observation_bounds_declared_and_fallback():
    cartpole = spaces.Box(low=np.array([-4.8, -np.inf, -0.42, -np.inf], np.float32),
                          high=np.array([4.8, np.inf, 0.42, np.inf], np.float32))
    low, high = observation_bounds(cartpole, "CartPole-v1")
    np.testing.assert_allclose(low, [b[0] for b in DECLARED_BOUNDS["CartPole-v1"]])
    low, high = observation_bounds(cartpole, "SomeOtherEnv-v0", unbounded_limit=7.0)
    np.testing.assert_allclose(low, [-4.8, -7.0, -0.42, -7.0], rtol=1e-6)
    np.testing.assert_allclose(high, [4.8, 7.0, 0.42, 7.0], rtol=1e-6)
    with pytest.raises(ValueError, match="tabular"):
        observation_bounds(spaces.Discrete(5), "X-v0")
