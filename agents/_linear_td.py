"""One-step linear TD control shared by the Sarsa, Expected Sarsa and Q-learning agents.

Action values are linear in binary features, ``Q(s, a) = sum_i w[i, a]`` over the active
features i of s: tile-coded features (:mod:`agents.tile_coding`) for Box observations, or one
feature per state (tabular) for discrete ones. Each env step makes one semi-gradient update
(Sutton & Barto 2018, sections 10.1 and 6.4-6.6):

    delta = r + gamma * B(s') - Q(s, a)          (B = 0 when the episode terminated at s')
    w[i, a] += alpha / n_active * delta           for each active feature i of s

with ``B(s') = Q(s', a')`` for Sarsa (a' the next behaviour action), the expectation of
``Q(s', .)`` under the epsilon-greedy policy for Expected Sarsa, and ``max_a Q(s', a)`` for
Q-learning. A time-limit truncation is not terminal: it bootstraps from s' like any other step.
Behaviour is epsilon-greedy with ties broken at random; evaluation is greedy (ties to the
lowest action). Weights start at ``init_value / n_active`` so every Q(s, a) starts at
``init_value``; 0 is optimistic in the reward -1 per step tasks, which drives exploration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from gymnasium import spaces

from agents.common import Evaluation, EpisodeLog, EvaluationClock, hp, make_env
from agents.tile_coding import TileCoder, observation_bounds

TARGETS = ("sarsa", "expected_sarsa", "q_learning")


@dataclass(frozen=True)
class LinearTDConfig:
    """Hyperparameters of the tile-coded linear control agents."""

    alpha: float = hp(0.5, low=1e-4, high=2.0, log=True,
                      help="step size; each update uses alpha / n_tilings (Sutton & Barto 2018, 9.5.4)")
    epsilon: float = hp(0.1, low=0.0, high=1.0, help="probability of a uniformly random action")
    gamma: float = hp(0.99, low=0.0, high=1.0, help="discount factor")
    n_tilings: int = hp(8, low=1, high=128, help="number of tilings (active features per state)")
    tiles: int = hp(8, low=1, high=64, help="tiles per observation dimension in each tiling")
    table_size: int = hp(65536, low=16, high=2**24, log=True,
                         help="fixed feature-table size; cells are hashed into it when they do not all fit")
    hashing: str = hp("iht", choices=("iht", "modulo"),
                      help="iht: indices in first-visit order (tiles3-style); modulo: stateless hash")
    unbounded_limit: float = hp(5.0, low=1e-3, high=1e6, log=True,
                                help="+- bound for unbounded observation dims without declared bounds")
    init_value: float = hp(0.0, low=-1e4, high=1e4, help="initial value of every Q(s, a)")


@dataclass(frozen=True)
class TabularConfig:
    """Hyperparameters of the tabular control agents (one feature per state)."""

    alpha: float = hp(0.5, low=1e-4, high=1.0, log=True, help="step size")
    epsilon: float = hp(0.1, low=0.0, high=1.0, help="probability of a uniformly random action")
    gamma: float = hp(0.99, low=0.0, high=1.0, help="discount factor")
    init_value: float = hp(0.0, low=-1e4, high=1e4, help="initial value of every Q(s, a)")


class TabularFeatures:
    """One active feature per state: the state's index in a discrete or integer-grid observation space.

    Accepts ``Discrete``, ``MultiDiscrete``, and 1-d integer-dtype ``Box`` spaces, whose
    observations are grid coordinates (CliffWorld's ``(x, y)``).
    """

    n_active = 1

    def __init__(self, space: spaces.Space) -> None:
        if isinstance(space, spaces.Discrete):
            self.kind, self.start, self.n_features = "discrete", int(space.start), int(space.n)
            return
        if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
            self.kind, self.low, self.dims = "grid", np.zeros(space.nvec.size, np.int64), tuple(int(n) for n in space.nvec)
        elif isinstance(space, spaces.Box) and len(space.shape) == 1 and np.issubdtype(space.dtype, np.integer):
            self.kind, self.low = "grid", np.asarray(space.low, dtype=np.int64)
            self.dims = tuple(int(h - lo) + 1 for lo, h in zip(space.low, space.high))
        else:
            raise ValueError(f"tabular agents need a Discrete, MultiDiscrete or integer-grid Box observation "
                             f"space, got {space!r}; use the tile-coded agents (sarsa, q_learning, ...) instead")
        self.n_features = int(np.prod(np.array(self.dims, dtype=object)))
        if self.n_features > 10**7:
            raise ValueError(f"tabular agents: {self.n_features} states in {space!r} are too many for a table")

    def __call__(self, obs, readonly: bool = False) -> np.ndarray:
        if self.kind == "discrete":
            return np.array([int(obs) - self.start])
        cell = np.asarray(obs, dtype=np.int64) - self.low
        return np.array([np.ravel_multi_index(tuple(cell), self.dims)])


class TileFeatures:
    """Tile-coded features of a Box observation (``n_tilings`` active per state)."""

    def __init__(self, space: spaces.Space, env_id: str, config: LinearTDConfig) -> None:
        low, high = observation_bounds(space, env_id, config.unbounded_limit)
        self.coder = TileCoder(low, high, config.tiles, config.n_tilings, config.table_size, config.hashing)
        self.n_active = self.coder.n_tilings
        self.n_features = self.coder.n_features

    def __call__(self, obs, readonly: bool = False) -> np.ndarray:
        return self.coder.indices(obs, readonly)


def _greedy(q: np.ndarray, rng: np.random.Generator) -> int:
    best = np.flatnonzero(q == q.max())
    return int(best[0]) if best.size == 1 else int(best[rng.integers(best.size)])


def _behaviour(q: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    if epsilon > 0.0 and rng.random() < epsilon:
        return int(rng.integers(q.size))
    return _greedy(q, rng)


def bootstrap_value(target: str, q_next: np.ndarray, a_next: int, epsilon: float) -> float:
    """B(s') of the update: Q(s', a') (Sarsa), E_pi Q(s', .) (Expected Sarsa), max Q(s', .) (Q-learning).

    Under epsilon-greedy every greedy action has the value max Q, so however ties split the
    greedy mass the expectation is ``epsilon * mean(Q) + (1 - epsilon) * max(Q)``.
    """
    if target == "sarsa":
        return float(q_next[a_next])
    if target == "q_learning":
        return float(q_next.max())
    if target == "expected_sarsa":
        return float(epsilon * q_next.mean() + (1.0 - epsilon) * q_next.max())
    raise ValueError(f"unknown TD target {target!r}; expected one of {TARGETS}")


def train_td_control(target: str, features: Callable[..., object], env_id: str, config, seed: int,
                     steps: int, log: EpisodeLog, *, env_kwargs: dict | None = None,
                     evaluation: Evaluation | None = None) -> np.ndarray:
    """Run one-step TD control for exactly ``steps`` env steps; return the final weights.

    ``features(observation_space, env_id)`` builds the feature map (tile-coded or tabular);
    ``config`` supplies alpha, epsilon, gamma and init_value. Logs each finished episode with
    its mean squared TD error as ``loss``. The returned ``(n_features, n_actions)`` weight table
    is for tests and notebooks; the agents' ``train`` drops it.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown TD target {target!r}; expected one of {TARGETS}")
    env = make_env(env_id, env_kwargs)
    if not isinstance(env.action_space, spaces.Discrete):
        raise ValueError(f"{target}: needs a Discrete action space, {env_id} has {env.action_space!r}")
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    fmap = features(env.observation_space, env_id)
    if isinstance(fmap, TabularFeatures):
        try:
            return _train_tabular(target, fmap, env, config, rng, seed, steps, log, env_id, env_kwargs, evaluation)
        finally:
            env.close()
    n_actions = int(env.action_space.n)
    w = np.full((fmap.n_features, n_actions), config.init_value / fmap.n_active)
    step_size = config.alpha / fmap.n_active
    eps, gamma = float(config.epsilon), float(config.gamma)
    clock = EvaluationClock(evaluation)
    a0 = int(env.action_space.start)

    def greedy_act(o):  # evaluation: deterministic, touches neither the training rng nor the hash table
        return a0 + int(np.argmax(w[fmap(o, readonly=True)].sum(axis=0)))

    obs, _ = env.reset(seed=seed)
    x = fmap(obs)
    a = _behaviour(w[x].sum(axis=0), eps, rng)
    ep_ret, ep_len, sq_td = 0.0, 0, 0.0
    for t in range(1, steps + 1):
        obs, r, term, trunc, _ = env.step(a0 + a)
        ep_ret += float(r)
        ep_len += 1
        q_sa = w[x, a].sum()
        if term:
            delta = float(r) - q_sa
        else:
            x_next = fmap(obs)
            q_next = w[x_next].sum(axis=0)
            a_next = _behaviour(q_next, eps, rng)
            delta = float(r) + gamma * bootstrap_value(target, q_next, a_next, eps) - q_sa
        w[x, a] += step_size * delta
        sq_td += delta * delta
        if term or trunc:
            log.episode(t, ep_ret, ep_len, loss=sq_td / ep_len)
            obs, _ = env.reset()
            x = fmap(obs)
            a = _behaviour(w[x].sum(axis=0), eps, rng)
            ep_ret, ep_len, sq_td = 0.0, 0, 0.0
        else:
            x, a = x_next, a_next
        clock.run(t, greedy_act, env_id, env_kwargs, log)
    env.close()
    return w


_BLOCK = 1024  # uniforms drawn per numpy call by the tabular loop


def _train_tabular(target: str, fmap: TabularFeatures, env, config, rng: np.random.Generator, seed: int,
                   steps: int, log: EpisodeLog, env_id: str, env_kwargs: dict | None,
                   evaluation: Evaluation | None) -> np.ndarray:
    """:func:`train_td_control` for one feature per state, in plain Python scalars (issue 18).

    The same update, targets, truncation rule and tie-breaking as the general loop; only the
    representation differs: action values live in a dict from the state index to a list of floats,
    created on the state's first visit (observations seen before skip the index arithmetic), and
    randomness comes from ``rng.random`` drawn 1,024 uniforms at a time. Each behaviour decision
    takes one uniform for the epsilon test (when epsilon > 0), one more for a random action
    (``floor(u * n_actions)``), and one to break a tie among greedy actions (``floor(u * k)``), so a
    run is a pure function of its seed. About 10x faster than numpy scalar operations per step.
    """
    n_actions, a0 = int(env.action_space.n), int(env.action_space.start)
    init, alpha = float(config.init_value), float(config.alpha)
    eps, gamma = float(config.epsilon), float(config.gamma)
    discrete = fmap.kind == "discrete"
    rows: dict[int, list] = {}  # state index -> Q(s, .), created on the state's first visit
    cache: dict = {}  # observation key -> the same list, to skip the index arithmetic on later visits
    buf: list = []
    pos = _BLOCK

    def uniform() -> float:
        nonlocal buf, pos
        if pos == _BLOCK:
            buf, pos = rng.random(_BLOCK).tolist(), 0
        pos += 1
        return buf[pos - 1]

    def values(obs) -> list:
        key = int(obs) if discrete else np.asarray(obs).tobytes()
        row = cache.get(key)
        if row is None:  # first sight of this observation: fmap validates it and gives the state index
            row = cache[key] = rows.setdefault(int(fmap(obs)[0]), [init] * n_actions)
        return row

    def behaviour(qs: list) -> int:
        if eps > 0.0 and uniform() < eps:
            return int(uniform() * n_actions)
        m = max(qs)
        if qs.count(m) == 1:
            return qs.index(m)
        best = [i for i, v in enumerate(qs) if v == m]
        return best[int(uniform() * len(best))]

    def greedy_act(o):  # evaluation: deterministic (ties to the lowest action), touches neither rng nor Q
        qs = cache.get(int(o) if discrete else np.asarray(o).tobytes())
        if qs is None:
            qs = rows.get(int(fmap(o)[0]))
        return a0 if qs is None else a0 + qs.index(max(qs))

    clock = EvaluationClock(evaluation)
    sarsa, expected = target == "sarsa", target == "expected_sarsa"
    obs, _ = env.reset(seed=seed)
    qs = values(obs)
    a = behaviour(qs)
    ep_ret, ep_len, sq_td = 0.0, 0, 0.0
    step = env.step
    for t in range(1, steps + 1):
        obs, r, term, trunc, _ = step(a0 + a)
        r = float(r)
        ep_ret += r
        ep_len += 1
        if term:
            delta = r - qs[a]
        else:
            qn = values(obs)
            a_next = behaviour(qn)
            if sarsa:
                boot = qn[a_next]
            elif expected:
                boot = eps * (sum(qn) / n_actions) + (1.0 - eps) * max(qn)
            else:
                boot = max(qn)
            delta = r + gamma * boot - qs[a]
        qs[a] += alpha * delta
        sq_td += delta * delta
        if term or trunc:
            log.episode(t, ep_ret, ep_len, loss=sq_td / ep_len)
            obs, _ = env.reset()
            qs = values(obs)
            a = behaviour(qs)
            ep_ret, ep_len, sq_td = 0.0, 0, 0.0
        else:
            qs, a = qn, a_next
        if clock.due(t):
            clock.run(t, greedy_act, env_id, env_kwargs, log)
    w = np.full((fmap.n_features, n_actions), init)
    for index, row in rows.items():
        w[index] = row
    return w


def tile_features(config: LinearTDConfig) -> Callable[..., TileFeatures]:
    return lambda space, env_id: TileFeatures(space, env_id, config)


def tabular_features(space: spaces.Space, env_id: str) -> TabularFeatures:
    return TabularFeatures(space)
