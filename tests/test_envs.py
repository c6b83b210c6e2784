"""CliffWorld and PuddleWorld: registration, hand-computed dynamics and rewards."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import evalkit.envs
from evalkit.envs import cliffworld as cw
from evalkit.envs import puddleworld as pw

UP, RIGHT, DOWN, LEFT = cw.UP, cw.RIGHT, cw.DOWN, cw.LEFT


def test_registration_is_idempotent_with_documented_time_limits():
    evalkit.envs.register_envs()
    evalkit.envs.register_envs()
    assert gym.spec("CliffWorld-v0").entry_point == "evalkit.envs.cliffworld:CliffWorld"
    assert gym.spec("PuddleWorld-v0").entry_point == "evalkit.envs.puddleworld:PuddleWorld"
    assert gym.spec("CliffWorld-v0").max_episode_steps == 100
    assert gym.spec("PuddleWorld-v0").max_episode_steps == 1000
    assert gym.make("CliffWorld-v0", max_episode_steps=50).spec.max_episode_steps == 50


@pytest.mark.parametrize("env_id,kwargs", [("CliffWorld-v0", {}), ("CliffWorld-v0", {"observation": "index"}),
                                           ("PuddleWorld-v0", {}), ("PuddleWorld-v0", {"start": "random"})])
def test_gymnasium_env_checker_passes(env_id, kwargs):
    check_env(gym.make(env_id, **kwargs).unwrapped, skip_render_check=True)


def _steps(env, actions):
    return [env.step(a)[1:4] for a in actions]  # (reward, terminated, truncated)


def test_cliffworld_bump_cliff_and_goal():
    env = gym.make("CliffWorld-v0")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0, 0])
    obs, r, term, trunc, info = env.step(LEFT)  # into the west wall: stay, -1
    np.testing.assert_array_equal(obs, [0, 0])
    assert (r, term, trunc, info["cliff"]) == (-1.0, False, False, False)
    obs, r, term, _, info = env.step(RIGHT)  # (1, 0) is cliff: -100, back to start, not terminal
    np.testing.assert_array_equal(obs, [0, 0])
    assert (r, term, info["cliff"]) == (-100.0, False, True)
    env.step(UP)
    for _ in range(5):
        env.step(RIGHT)
    obs, r, term, _, _ = env.step(DOWN)  # from (5, 1) down into the cliff
    np.testing.assert_array_equal(obs, [0, 0])
    assert (r, term) == (-100.0, False)
    # the optimal path: up, 11 x right, down = 13 steps of -1, the last one terminal
    env.reset()
    results = _steps(env, [UP] + [RIGHT] * 11 + [DOWN])
    assert sum(r for r, _, _ in results) == -13.0
    assert [t for _, t, _ in results] == [False] * 12 + [True]
    assert env.unwrapped.pos == cw.GOAL


def test_cliffworld_boundaries_and_index_observation():
    env = gym.make("CliffWorld-v0", observation="index")
    obs, _ = env.reset(seed=0)
    assert obs == 0
    for _ in range(5):
        obs, r, *_ = env.step(UP)
    assert obs == 0 * 4 + 3 and r == -1.0  # clipped at the top row y = 3
    for _ in range(15):
        obs, *_ = env.step(RIGHT)
    assert obs == 11 * 4 + 3  # clipped at the east wall x = 11 (PyRlEnvs index x * 4 + y)
    assert cw.transition(11, 1, DOWN) == (11, 0, -1.0, True, False)
    assert cw.transition(0, 1, DOWN) == (0, 0, -1.0, False, False)  # the start cell is no cliff


def test_cliffworld_time_limit_truncates():
    env = gym.make("CliffWorld-v0")
    env.reset(seed=0)
    results = _steps(env, [LEFT] * 100)
    assert [tr for *_, tr in results] == [False] * 99 + [True]
    assert not any(te for _, te, _ in results)


@pytest.mark.parametrize("x,y,expected", [
    (0.30, 0.75, -41.0),   # on puddle 1's segment: depth 0.1 -> -1 - 400 * 0.1
    (0.45, 0.60, -41.0),   # on puddle 2's segment; puddle 1 (u = 1) is 0.15 away
    (0.50, 0.75, -41.0),   # 0.05 past puddle 1's head and 0.05 beside puddle 2: -1 - 20 - 20
    (0.05, 0.75, -21.0),   # 0.05 before puddle 1's tail: depth 0.05
    (0.45, 0.25, -1.0),    # 0.15 below puddle 2's tail (0.45, 0.40): outside the 0.1 radius
    (0.20, 0.20, -1.0),    # dry land
    (0.96, 0.97, -1.0),    # the goal
])
def test_puddle_reward_at_known_points(x, y, expected):
    assert pw.reward(x, y) == pytest.approx(expected, abs=1e-9)


def test_puddle_depth_near_tail():
    # 0.05 below puddle 2's tail (0.45, 0.40): depth 0.1 - 0.05
    assert pw.puddle_depth(0.45, 0.35, *pw.PUDDLES[1]) == pytest.approx(0.05)
    assert pw.reward(0.45, 0.35) == pytest.approx(-21.0)


def test_puddleworld_noise_free_moves_boundaries_and_goal():
    env = gym.make("PuddleWorld-v0", noise_sigma=0.0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0, 0])  # CHS start
    obs, r, term, *_ = env.step(pw.LEFT)  # clipped at x = 0
    np.testing.assert_allclose(obs, [0, 0])
    obs, r, term, *_ = env.step(pw.RIGHT)
    np.testing.assert_allclose(obs, [0.05, 0.0], atol=1e-7)
    assert (r, term) == (-1.0, False)
    env.unwrapped.pos = (0.30, 0.70)
    obs, r, term, *_ = env.step(pw.UP)  # into puddle 1's centre line
    np.testing.assert_allclose(obs, [0.30, 0.75], atol=1e-6)
    assert r == pytest.approx(-41.0, abs=1e-6) and not term
    env.unwrapped.pos = (0.95, 0.92)
    obs, r, term, *_ = env.step(pw.UP)
    assert (r, term) == (-1.0, True)
    env.unwrapped.pos = (0.99, 0.99)
    obs, *_ = env.step(pw.UP)
    np.testing.assert_allclose(obs, [0.99, 1.0], atol=1e-6)  # clipped at y = 1


def test_puddleworld_noise_scale_and_seeding():
    env = gym.make("PuddleWorld-v0")
    env.reset(seed=3)
    moves = []
    for _ in range(2000):
        env.unwrapped.pos = (0.5, 0.2)
        obs, *_ = env.step(pw.RIGHT)
        moves.append(obs[0] - 0.5)
        assert obs[1] == pytest.approx(0.2)  # noise only along the action's axis
    moves = np.array(moves)
    assert abs(moves.mean() - 0.05) < 0.001 and 0.009 < moves.std() < 0.011

    def trajectory(seed):
        e = gym.make("PuddleWorld-v0")
        e.reset(seed=seed)
        return np.array([e.step(a)[0] for a in [0, 2, 2, 0, 1, 3] * 5])

    np.testing.assert_array_equal(trajectory(1), trajectory(1))
    assert not np.array_equal(trajectory(1), trajectory(2))


def test_puddleworld_random_start_is_seeded_and_in_bounds():
    starts = [gym.make("PuddleWorld-v0", start="random").reset(seed=s)[0] for s in range(20)]
    assert all(((0 <= s) & (s <= 1)).all() for s in starts)
    assert len({tuple(s) for s in starts}) > 10
    np.testing.assert_array_equal(gym.make("PuddleWorld-v0", start="random").reset(seed=4)[0], starts[4])


def test_lunarlander_runs_with_the_discrete_agents():
    """LunarLander-v3 (gymnasium[box2d]) is installed and the discrete-action agents run on it:
    exact step accounting and finite returns (no learning target was set for it)."""
    from agents import dqn, sarsa
    from agents.common import ListLog
    for agent, config in ((sarsa, sarsa.Config()),
                          (dqn, dqn.Config(learning_starts=100, train_frequency=4, gradient_steps=1, batch_size=16, hidden=16))):
        log = ListLog()
        agent.train("LunarLander-v3", config, 0, 600, log)
        rows = [r for r in log.rows if r["mode"] == "train"]
        assert rows and sum(r["length"] for r in rows) <= 600 and rows[-1]["step"] <= 600
        assert all(np.isfinite(r["return"]) for r in rows)
