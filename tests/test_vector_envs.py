"""agents.vector_envs against gymnasium 1.4.0's classic-control envs, exactly (bit for bit)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from agents.vector_envs import RESET_BLOCK, make_vector, supported

IDS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"]


def gym_state(env: gym.Env) -> np.ndarray:
    """The unwrapped state of a gymnasium env as a float64 vector."""
    return np.asarray(env.unwrapped.state, dtype=np.float64)


def random_states(env_id: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, state_dim)`` varied states inside the non-terminal region (not just reset states)."""
    if env_id == "CartPole-v1":
        return rng.uniform([-2.0, -2.0, -0.18, -2.0], [2.0, 2.0, 0.18, 2.0], size=(n, 4))
    if env_id == "Acrobot-v1":
        return rng.uniform([-1.0, -math.pi, -4 * math.pi, -9 * math.pi],
                           [1.0, math.pi, 4 * math.pi, 9 * math.pi], size=(n, 4))
    return rng.uniform([-1.2, -0.07], [0.45, 0.07], size=(n, 2))


def test_supported_and_unsupported_ids():
    for env_id in IDS:
        assert supported(env_id)
    assert not supported("Pendulum-v1") and not supported("CartPole-v0")
    with pytest.raises(ValueError, match="no batched implementation"):
        make_vector("Pendulum-v1", [0])
    # the base class is abstract: a task without dynamics cannot be made
    from agents.vector_envs import VectorEnv
    with pytest.raises(TypeError, match="abstract"):
        VectorEnv([0])


@pytest.mark.parametrize("env_id", IDS)
def test_spaces_and_limits_match_gymnasium(env_id):
    env = gym.make(env_id)
    venv = make_vector(env_id, [0, 1, 2])
    assert venv.num_envs == 3
    assert venv.observation_space == env.observation_space
    assert venv.action_space == env.action_space
    assert venv.max_episode_steps == gym.spec(env_id).max_episode_steps
    obs = venv.reset()
    assert obs.shape == (3,) + env.observation_space.shape and obs.dtype == np.float32
    o, r, te, tr, fo = venv.step(np.zeros(3, dtype=np.int64))
    assert o.shape == fo.shape == obs.shape and o.dtype == fo.dtype == np.float32
    assert r.shape == te.shape == tr.shape == (3,)
    assert r.dtype == np.float64 and te.dtype == tr.dtype == np.bool_


@pytest.mark.parametrize("env_id", IDS)
def test_step_by_step_equal_to_gymnasium_from_identical_states(env_id):
    """B copies vs B gymnasium envs: same states, same random actions, hundreds of steps,
    through terminations and the per-copy seeded resets that follow them."""
    B, steps = 6, 400
    seeds = [11 * i + 3 for i in range(B)]
    rng = np.random.default_rng(123)
    venv = make_vector(env_id, seeds)
    envs = [gym.make(env_id) for _ in seeds]
    obs = venv.reset()
    for i, (env, s) in enumerate(zip(envs, seeds)):
        o, _ = env.reset(seed=s)
        np.testing.assert_array_equal(obs[i], o)
        np.testing.assert_array_equal(venv.state[i], gym_state(env))
    # start from varied states (set in both), not only from reset states
    start = random_states(env_id, rng, B)
    venv.state = start.copy()
    for env, s in zip(envs, start):
        env.unwrapped.state = s.copy()
    ends = 0
    for t in range(steps):
        actions = rng.integers(venv.action_space.n, size=B)
        obs, reward, term, trunc, final_obs = venv.step(actions)
        for i, env in enumerate(envs):
            o, r, te, tr, _ = env.step(int(actions[i]))
            np.testing.assert_array_equal(final_obs[i], o, err_msg=f"{env_id} copy {i} step {t}")
            assert reward[i] == r and term[i] == te and trunc[i] == tr, (env_id, i, t)
            ends += int(te)
            if te or tr:
                o, _ = env.reset()  # no seed: continues the copy's own generator
            np.testing.assert_array_equal(obs[i], o)
            np.testing.assert_array_equal(venv.state[i], gym_state(env))
        # after the first steps, occasionally re-synchronise both to fresh varied states
        if t % 97 == 96:
            start = random_states(env_id, rng, B)
            venv.state = start.copy()
            for env, s in zip(envs, start):
                env.unwrapped.state = s.copy()
    assert ends >= 2, "the test should cross at least a couple of terminations"


@pytest.mark.parametrize("env_id", IDS)
def test_batch_of_one_reproduces_gymnasium_over_episodes(env_id):
    """reset(seed=s) then reset() for several episodes, with a random action sequence."""
    seed = 2024
    env = gym.make(env_id)
    venv = make_vector(env_id, [seed])
    rng = np.random.default_rng(5)
    o, _ = env.reset(seed=seed)
    vo = venv.reset()
    np.testing.assert_array_equal(vo[0], o)
    episodes, returns, vreturns, ret, vret = 0, [], [], 0.0, 0.0
    starts = {o.tobytes()}
    while episodes < 4:
        a = int(rng.integers(env.action_space.n))
        o, r, te, tr, _ = env.step(a)
        vo, vr, vte, vtr, vfo = venv.step(np.array([a]))
        np.testing.assert_array_equal(vfo[0], o)
        assert (vr[0], vte[0], vtr[0]) == (r, te, tr)
        ret += r
        vret += vr[0]
        if te or tr:
            episodes += 1
            returns.append(ret)
            vreturns.append(vret)
            ret = vret = 0.0
            o, _ = env.reset()
            starts.add(o.tobytes())
            assert not np.array_equal(vfo[0], vo[0])
        np.testing.assert_array_equal(vo[0], o)
    assert returns == vreturns
    assert len(starts) == 5  # every episode started from a new draw of the copy's generator


@pytest.mark.parametrize("env_id", IDS)
def test_time_limit_truncation_at_the_registered_step(env_id):
    limit = gym.spec(env_id).max_episode_steps
    seeds = [1, 2]
    venv = make_vector(env_id, seeds)
    env = gym.make(env_id)
    env.reset(seed=seeds[0])
    venv.reset()
    rest = np.zeros((2, venv.state_dim))
    if env_id == "MountainCar-v0":
        rest[:, 0] = -0.5
    for episode in range(2):
        for t in range(1, limit + 1):
            venv.state = rest.copy()  # hold every copy far from termination
            obs, _, term, trunc, final_obs = venv.step(np.ones(2, dtype=np.int64))
            assert not term.any()
            assert trunc.all() == (t == limit) and trunc.any() == (t == limit), (episode, t)
            assert np.array_equal(venv.elapsed_steps, np.full(2, 0 if t == limit else t))
        # copy 0 was reset from its own generator: gymnasium's next reset() without a seed
        o, _ = env.reset()
        np.testing.assert_array_equal(obs[0], o)
        assert not np.array_equal(final_obs, obs)


def test_max_episode_steps_override():
    venv = make_vector("MountainCar-v0", [0], max_episode_steps=7)
    venv.reset()
    truncs = [venv.step(np.array([1]))[3][0] for _ in range(14)]
    assert [i + 1 for i, x in enumerate(truncs) if x] == [7, 14]


@pytest.mark.parametrize("env_id", IDS)
def test_copies_are_independent(env_id):
    """Different seeds give different copies; a copy's trajectory depends only on its own seed
    and actions, not on which other copies share its batch."""
    seeds = [0, 1, 2, 3]
    venv = make_vector(env_id, seeds)
    obs = venv.reset()
    assert len({o.tobytes() for o in obs}) == len(seeds)
    same = make_vector(env_id, [5, 5]).reset()
    np.testing.assert_array_equal(same[0], same[1])

    venv = make_vector(env_id, seeds, max_episode_steps=10)  # many resets per copy
    venv.reset()
    alone = make_vector(env_id, [2], max_episode_steps=10)
    alone.reset()
    rng = np.random.default_rng(9)
    ends = 0
    for _ in range(10 * (RESET_BLOCK + 5)):  # crosses a draw-ahead block of initial states
        actions = rng.integers(venv.action_space.n, size=len(seeds))
        o4, r4, te4, tr4, f4 = venv.step(actions)
        o1, r1, te1, tr1, f1 = alone.step(actions[2:3])
        np.testing.assert_array_equal(o4[2], o1[0])
        np.testing.assert_array_equal(f4[2], f1[0])
        assert (r4[2], te4[2], tr4[2]) == (r1[0], te1[0], tr1[0])
        ends += int(te1[0] or tr1[0])
    assert ends > RESET_BLOCK
    # the copies' episode boundaries are not shared
    assert not np.array_equal(venv.state[0], venv.state[1])


@pytest.mark.parametrize("env_id", IDS)
def test_reset_with_seeds_reseeds_and_without_continues(env_id):
    venv = make_vector(env_id, [3, 4])
    env = gym.make(env_id)
    first = venv.reset()
    second = venv.reset()
    np.testing.assert_array_equal(first[0], env.reset(seed=3)[0])
    np.testing.assert_array_equal(second[0], env.reset()[0])
    again = venv.reset(seeds=[3, 4])
    np.testing.assert_array_equal(again, first)
    with pytest.raises(ValueError):
        venv.reset(seeds=[1])


def test_bad_actions_and_order_are_rejected():
    venv = make_vector("CartPole-v1", [0, 1])
    with pytest.raises(RuntimeError):
        venv.step(np.zeros(2, dtype=np.int64))
    venv.reset()
    with pytest.raises(ValueError):
        venv.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError):
        venv.step(np.array([0, 2]))
    with pytest.raises(ValueError):
        venv.step(np.array([0, -1]))
    with pytest.raises(ValueError):
        venv.step(np.array([0.5, 1.0]))
    venv.step(np.array([0.0, 1.0]))  # integral floats are accepted
    with pytest.raises(ValueError):
        make_vector("CartPole-v1", [])


@pytest.mark.parametrize("env_id", IDS)
def test_initial_observations_of_many_seeds_equal_gymnasium(env_id):
    """3000 seeds: rare last-bit effects (Acrobot's float32 reset state) show up here."""
    seeds = list(range(3000))
    obs = make_vector(env_id, seeds).reset()
    env = gym.make(env_id)
    expected = np.stack([env.reset(seed=s)[0] for s in seeds])
    np.testing.assert_array_equal(obs, expected)
