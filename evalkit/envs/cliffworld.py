"""CliffWorld (Sutton & Barto 2018, Example 6.6) as the CHS benchmark defines it.

Source: github andnp/PyRlEnvs ``PyRlEnvs/domains/CliffWorld.py`` (grid built with
``PyRlEnvs/domains/GridWorld``), which andnp/single-hyperparameter-benchmark wraps in
``paper/src/problems/CliffWorld.py`` for Patterson et al., "Cross-environment hyperparameter
tuning for reinforcement learning" (RLC 2024). Pinned parameters:

* Grid 12 wide (x = 0..11) by 4 high (y = 0..3); the agent starts at (0, 0), the goal is (11, 0),
  the cliff is every cell (1..10, 0) between them.
* Actions: 0 = UP (y + 1), 1 = RIGHT (x + 1), 2 = DOWN (y - 1), 3 = LEFT (x - 1). A move off the
  grid leaves the agent where it is (PyRlEnvs clips the coordinates).
* Reward -1 for every step, including the step into the goal, which terminates the episode.
* A step into the cliff gives -100 and puts the agent back on the start cell **without ending the
  episode** (PyRlEnvs rewires those transitions to the start state; they are not terminal).
* Deterministic dynamics, single start state; gamma = 0.99 in the CHS experiments (an agent
  hyperparameter here, not part of the env).
* Observation: the CHS problem feeds the agent the cell's coordinates ``(x, y)``
  (``GridRep(Env.getCoords)``, tile-coded over input ranges [0, 12] x [0, 4]). ``observation=
  "coords"`` (the default) returns them as an int64 ``Box([0, 0], [11, 3])``;
  ``observation="index"`` returns PyRlEnvs' state number ``x * 4 + y`` as ``Discrete(48)``.

Episode cutoff: CHS sweeps the cutoff over {none, 50, 100} steps as an experiment parameter.
``CliffWorld-v0`` is registered with a ``TimeLimit`` of 100 steps (the largest finite cutoff
they used); pass ``max_episode_steps`` in the env kwargs to change it. One difference: CHS
"teleports" to the start at the cutoff without any update, whereas evalkit's agents treat a
``TimeLimit`` truncation as a non-terminal transition and bootstrap from it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

WIDTH, HEIGHT = 12, 4
START = (0, 0)
GOAL = (WIDTH - 1, 0)
STEP_REWARD = -1.0
CLIFF_REWARD = -100.0
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
_MOVES = {UP: (0, 1), RIGHT: (1, 0), DOWN: (0, -1), LEFT: (-1, 0)}


def is_cliff(x: int, y: int) -> bool:
    """Whether cell (x, y) is part of the cliff: the bottom row strictly between start and goal."""
    return y == 0 and 0 < x < WIDTH - 1


def transition(x: int, y: int, action: int) -> tuple[int, int, float, bool, bool]:
    """One deterministic step from cell (x, y): ``(x', y', reward, terminated, fell)``."""
    dx, dy = _MOVES[int(action)]
    nx = min(max(x + dx, 0), WIDTH - 1)
    ny = min(max(y + dy, 0), HEIGHT - 1)
    if is_cliff(nx, ny):
        return START[0], START[1], CLIFF_REWARD, False, True
    return nx, ny, STEP_REWARD, (nx, ny) == GOAL, False


# Every (cell, action) outcome, computed once by :func:`transition`: the step is a table lookup
# (issue 18: 10,000-run sweeps of 500-step runs spend most of their time in here).
_TABLE = {(x, y, a): transition(x, y, a) for x in range(WIDTH) for y in range(HEIGHT) for a in _MOVES}


class CliffWorld(gym.Env):
    """The 12 x 4 cliff-walking gridworld of the CHS benchmark (see the module docstring)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, observation: str = "coords", render_mode: str | None = None) -> None:
        if observation not in ("coords", "index"):
            raise ValueError(f"CliffWorld: observation must be 'coords' or 'index', got {observation!r}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"CliffWorld: render_mode must be None or 'ansi', got {render_mode!r}")
        self.observation = observation
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(4)
        if observation == "coords":
            self.observation_space = spaces.Box(low=np.zeros(2, np.int64),
                                                high=np.array([WIDTH - 1, HEIGHT - 1], np.int64),
                                                dtype=np.int64)
        else:
            self.observation_space = spaces.Discrete(WIDTH * HEIGHT)
        self.pos = START

    def _obs(self) -> Any:
        x, y = self.pos
        if self.observation == "coords":
            return np.array(self.pos, dtype=np.int64)
        return x * HEIGHT + y

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)  # no randomness here, but keeps gymnasium's seeding contract
        self.pos = START
        return self._obs(), {}

    def step(self, action):
        # a plain int in range is the common case; anything else goes through the space's own check
        if type(action) is not int or not 0 <= action < 4:
            if not self.action_space.contains(action):
                raise ValueError(f"CliffWorld: invalid action {action!r}")
            action = int(action)
        x, y, reward, terminated, fell = _TABLE[(*self.pos, action)]
        self.pos = (x, y)
        return self._obs(), reward, terminated, False, {"cliff": fell}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = []
        for y in range(HEIGHT - 1, -1, -1):
            row = ""
            for x in range(WIDTH):
                row += ("A" if (x, y) == self.pos else "G" if (x, y) == GOAL
                        else "S" if (x, y) == START else "C" if is_cliff(x, y) else ".")
            rows.append(row)
        return "\n".join(rows)
