"""Tiny environments shared by the agent tests, registered under EvalkitTest/ ids.

* ``EvalkitTest/CountingCartPole-v0``: CartPole that counts every env step in ``ENV_STEPS["n"]``.
* ``EvalkitTest/OneStateTruncated-v0`` / ``EvalkitTest/OneStateTerminal-v0``: one state, one action,
  reward 1 per step, each episode one step long, ended by a time limit (the value must bootstrap
  to 1 / (1 - gamma)) or by termination (the value is 1).
"""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

ENV_STEPS = {"n": 0}
COUNTING_CARTPOLE = "EvalkitTest/CountingCartPole-v0"
ONE_STATE = {"Truncated": "EvalkitTest/OneStateTruncated-v0", "Terminal": "EvalkitTest/OneStateTerminal-v0"}


class CountingCartPole(CartPoleEnv):
    def step(self, action):
        ENV_STEPS["n"] += 1
        return super().step(action)


class OneState(gym.Env):
    """One state, one action, reward 1 per step; ends every step by termination or by a time limit."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)

    def __init__(self, terminate: bool = False):
        self.terminate = terminate

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 1.0, self.terminate, False, {}


for _id, _entry, _kw, _limit in [(COUNTING_CARTPOLE, CountingCartPole, {}, 500),
                                 (ONE_STATE["Truncated"], OneState, {}, 1),
                                 (ONE_STATE["Terminal"], OneState, {"terminate": True}, None)]:
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry, kwargs=_kw, max_episode_steps=_limit)
