"""PuddleWorld (Boyan & Moore 1995; Sutton 1996) as the CHS benchmark defines it.

Source: andnp/single-hyperparameter-benchmark ``paper/src/environments/PuddleWorld.py`` (the
version the CHS paper, Patterson et al. RLC 2024, ran; the same dynamics as github
andnp/PyRlEnvs ``PyRlEnvs/domains/PuddleWorld.py``, which differs only in its start state).
Pinned parameters:

* The unit square [0, 1] x [0, 1]; positions are clipped to it after every move.
* Actions: 0 = UP (y +), 1 = DOWN (y -), 2 = RIGHT (x +), 3 = LEFT (x -). A move displaces the
  agent by ``0.05 + n`` along the action's axis, ``n ~ Normal(0, sigma = 0.01)`` drawn once per step.
* Start: (0, 0) in the CHS runs (``start_pos = 0``, ``easy_prob = 0``). ``start="random"`` gives
  PyRlEnvs' newer start instead: ``clip(Normal((0.05, 0.05), 0.1), 0, 1)``.
* Goal: x >= 0.95 and y >= 0.95 (``goal_dimension = 0.05``); reaching it terminates with reward -1.
* Reward otherwise: ``-1 - 400 * (depth_1 + depth_2)`` at the position after the move, where a
  puddle's depth is ``max(0, 0.1 - d)`` and d is the distance to the puddle's segment:
  puddle 1 from (0.10, 0.75) to (0.45, 0.75), puddle 2 from (0.45, 0.40) to (0.45, 0.80),
  both of radius 0.1.
* gamma = 1 in the CHS experiments (an agent hyperparameter here, not part of the env).
* Observation: the position (x, y), a float32 ``Box([0, 0], [1, 1])`` (CHS feeds the raw
  position to the agent with input ranges [0, 1] x [0, 1]).

Episode cutoff: CHS sweeps the cutoff over {none, 500, 1000} steps as an experiment parameter.
``PuddleWorld-v0`` is registered with a ``TimeLimit`` of 1000 steps (the largest finite cutoff
they used); pass ``max_episode_steps`` in the env kwargs to change it. CHS "teleports" to the
start at the cutoff without an update; evalkit's agents bootstrap from a truncated transition.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
from gymnasium import spaces

UP, DOWN, RIGHT, LEFT = 0, 1, 2, 3
STEP_SIZE = 0.05
NOISE_SIGMA = 0.01
GOAL = 0.95
PUDDLE_PENALTY = 400.0
# (tail, head, radius, axis along which the segment runs)
PUDDLES = (((0.10, 0.75), (0.45, 0.75), 0.1, 0),
           ((0.45, 0.40), (0.45, 0.80), 0.1, 1))


def puddle_depth(x: float, y: float, tail: tuple[float, float], head: tuple[float, float],
                 radius: float, axis: int) -> float:
    """How far (x, y) lies inside a puddle: ``max(0, radius - distance to the segment)``.

    The segment runs along one axis from ``tail`` to ``head``; the projection parameter u is
    measured along that axis, as in the CHS code.
    """
    length = head[axis] - tail[axis]
    u = ((x, y)[axis] - tail[axis]) / length
    if u < 0.0:
        px, py = tail
    elif u > 1.0:
        px, py = head
    else:
        px, py = tail[0] + u * (head[0] - tail[0]), tail[1] + u * (head[1] - tail[1])
    dist = math.hypot(x - px, y - py)
    return radius - dist if dist < radius else 0.0


def is_goal(x: float, y: float) -> bool:
    return x >= GOAL and y >= GOAL


def reward(x: float, y: float) -> float:
    """Reward for arriving at (x, y): -1 at the goal, else -1 minus 400 times the puddle depths."""
    if is_goal(x, y):
        return -1.0
    return -1.0 - PUDDLE_PENALTY * sum(puddle_depth(x, y, *p) for p in PUDDLES)


def move(x: float, y: float, action: int, noise: float) -> tuple[float, float]:
    """Position after ``action`` with displacement ``0.05 + noise`` along its axis, clipped to [0, 1]."""
    d = STEP_SIZE + noise
    if action == UP:
        y += d
    elif action == DOWN:
        y -= d
    elif action == RIGHT:
        x += d
    elif action == LEFT:
        x -= d
    else:
        raise ValueError(f"PuddleWorld: invalid action {action!r}")
    return min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)


class PuddleWorld(gym.Env):
    """The continuous-state puddle world of the CHS benchmark (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, start: str = "corner", noise_sigma: float = NOISE_SIGMA,
                 render_mode: str | None = None) -> None:
        if start not in ("corner", "random"):
            raise ValueError(f"PuddleWorld: start must be 'corner' (CHS) or 'random' (PyRlEnvs), got {start!r}")
        if noise_sigma < 0:
            raise ValueError(f"PuddleWorld: noise_sigma must be >= 0, got {noise_sigma!r}")
        self.start = start
        self.noise_sigma = float(noise_sigma)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(4)
        self.observation_space = spaces.Box(low=np.zeros(2, np.float32), high=np.ones(2, np.float32),
                                            dtype=np.float32)
        self.pos = (0.0, 0.0)

    def _obs(self) -> np.ndarray:
        return np.array(self.pos, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.start == "corner":
            self.pos = (0.0, 0.0)
        else:
            x, y = np.clip(self.np_random.normal(0.05, 0.1, size=2), 0.0, 1.0)
            self.pos = (float(x), float(y))
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"PuddleWorld: invalid action {action!r}")
        noise = float(self.np_random.normal(0.0, self.noise_sigma)) if self.noise_sigma > 0 else 0.0
        x, y = move(*self.pos, int(action), noise)
        self.pos = (x, y)
        return self._obs(), reward(x, y), is_goal(x, y), False, {}
