"""Seed-batched numpy versions of CartPole-v1, Acrobot-v1 and MountainCar-v0.

One :class:`VectorEnv` steps ``B`` independent copies of a classic-control task with array
operations, for seed-batched agents (issue 9). Each copy behaves exactly like
``gym.make(env_id)`` from gymnasium 1.4.0:

* dynamics, float dtypes, rewards and termination conditions are the ones in
  ``gymnasium/envs/classic_control/{cartpole,acrobot,mountain_car}.py`` written out operation
  by operation on arrays (same association order, so results are bit-identical, not merely
  close); the internal state is float64 and observations are float32, as there;
* ``TimeLimit`` truncation (500 / 500 / 200 steps) is counted per copy;
* copy ``i`` owns a ``numpy.random.Generator`` made by ``gymnasium.utils.seeding.np_random(
  seeds[i])`` and used only for its resets, with the same ``uniform(low, high, size)`` calls as
  gymnasium's ``reset``. So the first reset of copy ``i`` equals ``gym.make(id).reset(seed=s)``
  and every later (automatic) reset equals gymnasium's next ``reset()`` without a seed. With
  ``B = 1`` a batched run reproduces an unbatched gymnasium run exactly.

Initial states are drawn ahead in blocks of :data:`RESET_BLOCK` per copy with one ``uniform``
call of shape ``(RESET_BLOCK, state_dim)``: a Generator fills arrays in C order from the same
stream, so the sequence of initial states is the one that repeated single draws would give,
and autoresets need no Python loop over copies.

Ended copies are reset in the same step (same-step autoreset): ``step`` returns the first
observation of the new episode in ``obs`` and the last observation of the ended one in
``final_obs`` (for bootstrapping after truncation).

This module depends on gymnasium and numpy only: agents never import evalkit.
"""

from __future__ import annotations

import abc
import math
from typing import Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

RESET_BLOCK = 32  # initial states drawn ahead per copy and per generator call


class VectorEnv(abc.ABC):
    """``B`` independent copies of one classic-control task, stepped with array operations.

    Abstract: a task subclass supplies its spaces, dynamics, termination and reward.

    Attributes:
        env_id: the gymnasium id this reproduces.
        num_envs: ``B``, the number of copies (one per seed).
        observation_space / action_space: the spaces of a single copy (gymnasium spaces).
        max_episode_steps: the TimeLimit, per copy.
        state: ``(B, state_dim)`` float64, the unwrapped gymnasium ``state`` of every copy;
            tests may assign it (together with ``elapsed_steps``) to start from given states.
        elapsed_steps: ``(B,)`` int64, steps taken in each copy's current episode.
    """

    env_id: str = ""
    state_dim: int = 0
    obs_dim: int = 0
    default_max_episode_steps: int = 0
    reset_low: float = 0.0
    reset_high: float = 0.0

    def __init__(self, seeds: Sequence[int], max_episode_steps: int | None = None) -> None:
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("need at least one seed")
        self.seeds = seeds
        self.num_envs = len(seeds)
        self.max_episode_steps = int(max_episode_steps or self.default_max_episode_steps)
        if self.max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
        self.observation_space, self.action_space = self._spaces()
        self._n_actions = int(self.action_space.n)
        self.state = np.zeros((self.num_envs, self.state_dim), dtype=np.float64)
        self.elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._seed_generators(seeds)
        self._started = False

    # ------------------------------------------------------------------ task-specific parts
    @abc.abstractmethod
    def _spaces(self) -> tuple[spaces.Box, spaces.Discrete]:
        """The observation and action spaces of one copy."""

    def _draw_initial(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` consecutive initial states of one copy, ``(n, state_dim)`` float64."""
        return rng.uniform(low=self.reset_low, high=self.reset_high, size=(n, self.state_dim))

    @abc.abstractmethod
    def _dynamics(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Next state ``(b, state_dim)`` float64 from ``state`` ``(b, state_dim)`` and ``actions`` ``(b,)``."""

    @abc.abstractmethod
    def _terminal(self, state: np.ndarray) -> np.ndarray:
        """``(b,)`` bool: which states end the episode."""

    @abc.abstractmethod
    def _reward(self, terminated: np.ndarray) -> np.ndarray:
        """``(b,)`` float64 reward of a step that ended in a state with ``terminated``."""

    def _obs(self, state: np.ndarray) -> np.ndarray:
        """Observation ``(b, obs_dim)`` float32 of ``state`` after a step."""
        return state.astype(np.float32)

    def _reset_obs(self, state: np.ndarray) -> np.ndarray:
        """Observation ``(b, obs_dim)`` float32 of a freshly reset ``state``."""
        return self._obs(state)

    # ------------------------------------------------------------------ shared machinery
    def _seed_generators(self, seeds: list[int]) -> None:
        self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self._pending = np.zeros((self.num_envs, RESET_BLOCK, self.state_dim), dtype=np.float64)
        self._next = np.full(self.num_envs, RESET_BLOCK, dtype=np.int64)  # all blocks empty

    def _take_initial(self, idx: np.ndarray) -> np.ndarray:
        """Next initial state of each copy in ``idx`` (int array ``(k,)``) -> ``(k, state_dim)``."""
        for i in idx[self._next[idx] >= RESET_BLOCK]:
            self._pending[i] = self._draw_initial(self._rngs[i], RESET_BLOCK)
            self._next[i] = 0
        out = self._pending[idx, self._next[idx]]
        self._next[idx] += 1
        return out

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        """Start a new episode in every copy; returns obs ``(B, obs_dim)`` float32.

        Without ``seeds`` each copy draws its next initial state from its own generator (the
        first call after construction is gymnasium's ``reset(seed=seeds[i])``, later calls
        are ``reset()``); with ``seeds`` (length ``B``) the generators are reseeded first.
        """
        if seeds is not None:
            seeds = [int(s) for s in seeds]
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
            self.seeds = seeds
            self._seed_generators(seeds)
        self.state = self._take_initial(np.arange(self.num_envs))
        self.elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._started = True
        return self._reset_obs(self.state)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every copy by one step with ``actions`` ``(B,)`` ints in ``[0, n_actions)``.

        Returns ``(obs, reward, terminated, truncated, final_obs)``: obs ``(B, obs_dim)``
        float32 (already the reset observation for copies that ended), reward ``(B,)`` float64,
        terminated / truncated ``(B,)`` bool, final_obs ``(B, obs_dim)`` float32 (the last
        observation of the ended episode for copies that ended, else equal to obs).
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {a.shape}")
        if a.dtype.kind not in "iub":
            if a.dtype.kind != "f" or not np.array_equal(a, np.round(a)):
                raise ValueError(f"actions must be integers, got dtype {a.dtype}")
            a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() >= self._n_actions):
            raise ValueError(f"actions must lie in [0, {self._n_actions}), got {a.min()}..{a.max()}")
        state = self._dynamics(self.state, a.astype(np.int64, copy=False))
        terminated = self._terminal(state)
        reward = self._reward(terminated)
        self.elapsed_steps += 1
        truncated = self.elapsed_steps >= self.max_episode_steps
        obs = self._obs(state)
        final_obs = obs.copy()
        done = terminated | truncated
        if done.any():
            idx = np.flatnonzero(done)
            state[idx] = self._take_initial(idx)
            self.elapsed_steps[idx] = 0
            obs[idx] = self._reset_obs(state[idx])
        self.state = state
        return obs, reward, terminated, truncated, final_obs

    def close(self) -> None:
        """Nothing to release; present for symmetry with gymnasium."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs})"


class CartPoleVector(VectorEnv):
    """CartPole-v1: state ``(x, x_dot, theta, theta_dot)``, actions {0: left, 1: right}, reward 1."""

    env_id = "CartPole-v1"
    state_dim = obs_dim = 4
    default_max_episode_steps = 500
    reset_low, reset_high = -0.05, 0.05
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def _spaces(self):
        high = np.array([self.x_threshold * 2, np.inf, self.theta_threshold_radians * 2, np.inf],
                        dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32), spaces.Discrete(2)

    def _dynamics(self, state, actions):
        x, x_dot, theta, theta_dot = state.T
        force = np.where(actions == 1, self.force_mag, -self.force_mag)
        costheta = np.cos(theta)
        sintheta = np.sin(theta)
        temp = (force + self.polemass_length * np.square(theta_dot) * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * np.square(costheta) / self.total_mass))
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        out = np.empty_like(state)
        out[:, 0] = x + self.tau * x_dot  # euler integrator
        out[:, 1] = x_dot + self.tau * xacc
        out[:, 2] = theta + self.tau * theta_dot
        out[:, 3] = theta_dot + self.tau * thetaacc
        return out

    def _terminal(self, state):
        x, theta = state[:, 0], state[:, 2]
        return ((x < -self.x_threshold) | (x > self.x_threshold)
                | (theta < -self.theta_threshold_radians) | (theta > self.theta_threshold_radians))

    def _reward(self, terminated):
        return np.ones(terminated.shape, dtype=np.float64)


class AcrobotVector(VectorEnv):
    """Acrobot-v1 ("book" dynamics, no torque noise, RK4 over dt = 0.2): state
    ``(theta1, theta2, dtheta1, dtheta2)``, obs ``(cos t1, sin t1, cos t2, sin t2, dt1, dt2)``,
    actions {0: -1, 1: 0, 2: +1} torque, reward -1 per step and 0 on the terminal step."""

    env_id = "Acrobot-v1"
    state_dim, obs_dim = 4, 6
    default_max_episode_steps = 500
    reset_low, reset_high = -0.1, 0.1
    dt = 0.2
    LINK_LENGTH_1 = 1.0
    LINK_LENGTH_2 = 1.0
    LINK_MASS_1 = 1.0
    LINK_MASS_2 = 1.0
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi
    AVAIL_TORQUE = np.array([-1.0, 0.0, +1.0])

    def _spaces(self):
        high = np.array([1.0, 1.0, 1.0, 1.0, self.MAX_VEL_1, self.MAX_VEL_2], dtype=np.float32)
        return spaces.Box(low=-high, high=high, dtype=np.float32), spaces.Discrete(3)

    def _draw_initial(self, rng, n):
        # gymnasium keeps the reset state as float32 (upcast to float64 by the first step)
        return super()._draw_initial(rng, n).astype(np.float32).astype(np.float64)

    def _dsdt(self, theta1, theta2, dtheta1, dtheta2, a):
        """Time derivatives of the four state columns (each ``(b,)``), as gymnasium's ``_dsdt``."""
        m1 = self.LINK_MASS_1
        m2 = self.LINK_MASS_2
        l1 = self.LINK_LENGTH_1
        lc1 = self.LINK_COM_POS_1
        lc2 = self.LINK_COM_POS_2
        I1 = self.LINK_MOI
        I2 = self.LINK_MOI
        g = 9.8
        pi = math.pi
        cos, sin = np.cos, np.sin
        # gymnasium squares numpy float64 *scalars* with ``**2``, i.e. C ``pow(x, 2)``, which
        # differs from ``x * x`` (what ``array**2`` computes) in the last bit for ~0.1% of x;
        # ``np.float_power`` calls ``pow`` elementwise and matches it bit for bit.
        def sq(x):
            return np.float_power(x, 2.0)

        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * cos(theta2)) + I2
        phi2 = m2 * lc2 * g * cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * sq(dtheta2) * sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (
            a + d2 / d1 * phi1 - m2 * l1 * lc2 * sq(dtheta1) * sin(theta2) - phi2
        ) / (m2 * lc2**2 + I2 - sq(d2) / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return dtheta1, dtheta2, ddtheta1, ddtheta2

    def _dynamics(self, state, actions):
        a = self.AVAIL_TORQUE[actions]
        y0 = list(state.T)
        dt = self.dt  # rk4 over t = [0, dt]: one step
        dt2 = dt / 2.0
        k1 = self._dsdt(*y0, a)
        k2 = self._dsdt(*[y + dt2 * k for y, k in zip(y0, k1)], a)
        k3 = self._dsdt(*[y + dt2 * k for y, k in zip(y0, k2)], a)
        k4 = self._dsdt(*[y + dt * k for y, k in zip(y0, k3)], a)
        out = np.empty_like(state)
        for j in range(4):
            out[:, j] = y0[j] + dt / 6.0 * (k1[j] + 2 * k2[j] + 2 * k3[j] + k4[j])
        out[:, 0] = _wrap(out[:, 0], -math.pi, math.pi)
        out[:, 1] = _wrap(out[:, 1], -math.pi, math.pi)
        out[:, 2] = np.minimum(np.maximum(out[:, 2], -self.MAX_VEL_1), self.MAX_VEL_1)
        out[:, 3] = np.minimum(np.maximum(out[:, 3], -self.MAX_VEL_2), self.MAX_VEL_2)
        return out

    def _terminal(self, state):
        return -np.cos(state[:, 0]) - np.cos(state[:, 1] + state[:, 0]) > 1.0

    def _reward(self, terminated):
        return np.where(terminated, 0.0, -1.0)

    def _obs(self, state):
        s = state.T
        return np.stack([np.cos(s[0]), np.sin(s[0]), np.cos(s[1]), np.sin(s[1]), s[2], s[3]],
                        axis=1).astype(np.float32)

    def _reset_obs(self, state):
        # gymnasium computes the first observation from its float32 reset state, in float32
        return self._obs(state.astype(np.float32))


def _wrap(x: np.ndarray, m: float, M: float) -> np.ndarray:
    """gymnasium's acrobot ``wrap`` elementwise: shift by ``M - m`` until inside ``[m, M]``."""
    diff = M - m
    while True:
        above = x > M
        if not above.any():
            break
        x = np.where(above, x - diff, x)
    while True:
        below = x < m
        if not below.any():
            break
        x = np.where(below, x + diff, x)
    return x


class MountainCarVector(VectorEnv):
    """MountainCar-v0: state ``(position, velocity)``, actions {0: left, 1: none, 2: right},
    reward -1 per step, terminated when position >= 0.5 (and velocity >= 0)."""

    env_id = "MountainCar-v0"
    state_dim = obs_dim = 2
    default_max_episode_steps = 200
    reset_low, reset_high = -0.6, -0.4
    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    goal_velocity = 0
    force = 0.001
    gravity = 0.0025

    def _spaces(self):
        low = np.array([self.min_position, -self.max_speed], dtype=np.float32)
        high = np.array([self.max_position, self.max_speed], dtype=np.float32)
        return spaces.Box(low, high, dtype=np.float32), spaces.Discrete(3)

    def _draw_initial(self, rng, n):
        # gymnasium: np.array([np_random.uniform(low, high), 0]), one scalar draw per reset
        out = np.zeros((n, 2), dtype=np.float64)
        out[:, 0] = rng.uniform(low=self.reset_low, high=self.reset_high, size=n)
        return out

    def _dynamics(self, state, actions):
        position, velocity = state[:, 0], state[:, 1]
        velocity = velocity + ((actions - 1) * self.force + np.cos(3 * position) * (-self.gravity))
        velocity = np.clip(velocity, -self.max_speed, self.max_speed)
        position = position + velocity
        position = np.clip(position, self.min_position, self.max_position)
        velocity = np.where((position == self.min_position) & (velocity < 0), 0.0, velocity)
        return np.stack([position, velocity], axis=1)

    def _terminal(self, state):
        return (state[:, 0] >= self.goal_position) & (state[:, 1] >= self.goal_velocity)

    def _reward(self, terminated):
        return np.full(terminated.shape, -1.0)


_ENVS: dict[str, type[VectorEnv]] = {c.env_id: c for c in (CartPoleVector, AcrobotVector, MountainCarVector)}


def supported(env_id: str) -> bool:
    """Whether :func:`make_vector` has a batched implementation of ``env_id``."""
    return env_id in _ENVS


def make_vector(env_id: str, seeds: Sequence[int], *, max_episode_steps: int | None = None) -> VectorEnv:
    """``len(seeds)`` independent copies of ``env_id``, copy ``i`` seeded with ``seeds[i]``.

    ``max_episode_steps`` overrides the registered TimeLimit. Raises ``ValueError`` for ids
    without a batched implementation (see :func:`supported`).
    """
    if env_id not in _ENVS:
        raise ValueError(f"no batched implementation of {env_id!r}; supported: {sorted(_ENVS)}")
    return _ENVS[env_id](seeds, max_episode_steps=max_episode_steps)
