"""Tile-coded and tabular Sarsa / Expected Sarsa / Q-learning: targets, step accounting, seeding, learning."""

import dataclasses

import numpy as np
import pytest

import evalkit.envs  # noqa: F401  (CliffWorld-v0)
from agents import expected_sarsa, q_learning, sarsa, tabular_q_learning, tabular_sarsa
from agents._linear_td import TabularConfig, bootstrap_value, tabular_features, train_td_control
from agents.common import Evaluation, ListLog, hyperparameters

TILE_AGENTS = [sarsa, expected_sarsa, q_learning]
TABULAR_AGENTS = [tabular_sarsa, tabular_q_learning]
from tests.toy_envs import COUNTING_CARTPOLE, ENV_STEPS, ONE_STATE


def test_names_and_configs_follow_the_contract():
    assert [m.NAME for m in TILE_AGENTS + TABULAR_AGENTS] == [
        "sarsa", "expected_sarsa", "q_learning", "tabular_sarsa", "tabular_q_learning"]
    for mod in TILE_AGENTS + TABULAR_AGENTS:
        info = hyperparameters(mod.Config)
        assert {"alpha", "epsilon", "gamma"} <= set(info)
        assert all(i.low is None or i.low <= i.default <= i.high for i in info.values())


def test_bootstrap_targets():
    q = np.array([1.0, 3.0, 3.0])
    assert bootstrap_value("sarsa", q, 0, 0.3) == 1.0
    assert bootstrap_value("q_learning", q, 0, 0.3) == 3.0
    # epsilon-greedy with two tied greedy actions: pi = (0.1, 0.45, 0.45)
    assert bootstrap_value("expected_sarsa", q, 0, 0.3) == pytest.approx(0.1 * 1 + 0.9 * 3)
    with pytest.raises(ValueError):
        bootstrap_value("td0", q, 0, 0.3)


def test_truncation_bootstraps_termination_does_not():
    # reward 1 every step, gamma 0.5: a time limit is not the end of the task, so Q -> 1 / (1 - 0.5) = 2;
    # a true termination makes Q -> 1
    cfg = TabularConfig(alpha=0.1, epsilon=0.0, gamma=0.5)
    w_trunc = train_td_control("q_learning", tabular_features, ONE_STATE["Truncated"], cfg, 0, 2000,
                               ListLog())
    w_term = train_td_control("q_learning", tabular_features, ONE_STATE["Terminal"], cfg, 0, 2000,
                              ListLog())
    assert w_trunc[0, 0] == pytest.approx(2.0, abs=1e-3)
    assert w_term[0, 0] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("mod", TILE_AGENTS)
def test_tile_agents_step_accounting_seeding_and_evaluation(mod):
    ENV_STEPS["n"] = 0
    log = ListLog()
    mod.train(COUNTING_CARTPOLE, mod.Config(), 3, 777, log,
              evaluation=Evaluation(every=300, episodes=2, seed=99))
    train = [r for r in log.rows if r["mode"] == "train"]
    evals = [r for r in log.rows if r["mode"] == "eval"]
    assert ENV_STEPS["n"] == 777 + sum(r["length"] for r in evals)  # exactly `steps` training steps
    assert len(train) > 5
    np.testing.assert_array_equal([r["step"] for r in train], np.cumsum([r["length"] for r in train]))
    assert train[-1]["step"] <= 777
    assert all(np.isfinite(r["loss"]) for r in train)
    assert [r["step"] for r in evals] == [300, 300, 600, 600]

    def returns(seed):
        lg = ListLog()
        mod.train("CartPole-v1", mod.Config(), seed, 600, lg)
        return lg.returns()

    np.testing.assert_array_equal(returns(5), returns(5))
    assert not np.array_equal(returns(5), returns(6))


def test_sarsa_improves_markedly_on_mountaincar():
    # optimistic zero weights with epsilon = 0 (Sutton & Barto, Figure 10.1): 30k steps take about 1 s
    log = ListLog()
    sarsa.train("MountainCar-v0", dataclasses.replace(sarsa.Config(), epsilon=0.0), 0, 30_000, log)
    ret = log.returns()
    assert ret[:10].mean() == -200.0  # the first episodes never reach the goal
    assert ret[-20:].mean() > -150.0


@pytest.mark.parametrize("mod", [expected_sarsa, q_learning])
def test_other_tile_agents_learn_mountaincar(mod):
    log = ListLog()
    mod.train("MountainCar-v0", dataclasses.replace(mod.Config(), epsilon=0.05), 1, 30_000, log)
    assert log.returns()[-20:].mean() > -160.0


def test_tabular_agents_learn_cliffworld_paths_of_example_6_6():
    # Sutton & Barto Example 6.6: with epsilon = 0.1 Q-learning learns the optimal path along the
    # cliff (13 steps) and Sarsa the safer path (17 steps here: one row further from the edge).
    ev = Evaluation(every=20_000, episodes=1, seed=0)
    results = {}
    for mod in TABULAR_AGENTS:
        log = ListLog()
        mod.train("CliffWorld-v0", mod.Config(), 0, 20_000, log, evaluation=ev)
        results[mod.NAME] = (log.returns(), log.returns("eval"))
    q_train, q_eval = results["tabular_q_learning"]
    s_train, s_eval = results["tabular_sarsa"]
    assert q_eval.tolist() == [-13.0]
    assert s_eval[0] >= -17.0 and s_eval[0] < -13.0
    assert s_train[-100:].mean() > q_train[-100:].mean()  # Q-learning's online returns suffer from the cliff


def test_tabular_agents_accept_index_observations_and_reject_continuous():
    log = ListLog()
    tabular_q_learning.train("CliffWorld-v0", tabular_q_learning.Config(), 0, 20_000, log,
                             env_kwargs={"observation": "index"}, evaluation=Evaluation(20_000, 1, 0))
    assert log.returns("eval").tolist() == [-13.0]
    for env_id in ("MountainCar-v0", "PuddleWorld-v0"):  # continuous positions, even in [0, 1]
        with pytest.raises(ValueError, match="tile-coded"):
            tabular_sarsa.train(env_id, tabular_sarsa.Config(), 0, 10, ListLog())


def _reference_tabular(target, env_id, cfg, seed, steps, env_kwargs=None):
    """The tabular loop written out plainly (numpy table, one state index per observation), with the
    randomness convention :func:`agents._linear_td._train_tabular` documents: uniforms from
    ``rng.random`` in order; epsilon test, then floor(u * n) for a random action or floor(u * k) for a
    tie among k greedy actions. Returns (weights, logged train returns, logged losses)."""
    import gymnasium as gym

    env = gym.make(env_id, **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    feats = tabular_features(env.observation_space, env_id)
    n = int(env.action_space.n)
    w = np.full((feats.n_features, n), cfg.init_value)
    draws = iter(rng.random(10 * steps + 10))

    def act(row):
        if cfg.epsilon > 0 and next(draws) < cfg.epsilon:
            return int(next(draws) * n)
        best = np.flatnonzero(row == row.max())
        return int(best[0]) if best.size == 1 else int(best[int(next(draws) * best.size)])

    obs, _ = env.reset(seed=seed)
    s = feats(obs)[0]
    a = act(w[s])
    rets, losses, ep_ret, ep_len, sq = [], [], 0.0, 0, 0.0
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(a)
        ep_ret, ep_len = ep_ret + r, ep_len + 1
        if term:
            delta = r - w[s, a]
        else:
            s2 = feats(obs)[0]
            a2 = act(w[s2])
            boot = {"sarsa": w[s2, a2], "q_learning": w[s2].max(),
                    "expected_sarsa": cfg.epsilon * (w[s2].sum() / n) + (1 - cfg.epsilon) * w[s2].max()}[target]
            delta = r + cfg.gamma * boot - w[s, a]
        w[s, a] += cfg.alpha * delta
        sq += delta * delta
        if term or trunc:
            rets.append(ep_ret)
            losses.append(sq / ep_len)
            obs, _ = env.reset()
            s = feats(obs)[0]
            a = act(w[s])
            ep_ret, ep_len, sq = 0.0, 0, 0.0
        else:
            s, a = s2, a2
    return w, rets, losses


@pytest.mark.parametrize("target", ["sarsa", "expected_sarsa", "q_learning"])
@pytest.mark.parametrize("env_kwargs", [None, {"observation": "index", "max_episode_steps": 30}])
def test_fast_tabular_loop_equals_the_plain_definition(target, env_kwargs):
    # the scalar-Python tabular loop (issue 18) against a straightforward numpy version of the same
    # rule and randomness: bitwise-equal weights, returns and losses, ties and random actions included
    cfg = TabularConfig(alpha=0.3, epsilon=0.2, gamma=0.95, init_value=0.0)
    log = ListLog()
    w = train_td_control(target, tabular_features, "CliffWorld-v0", cfg, 11, 1500, log, env_kwargs=env_kwargs)
    w_ref, rets, losses = _reference_tabular(target, "CliffWorld-v0", cfg, 11, 1500, env_kwargs)
    np.testing.assert_array_equal(w, w_ref)
    train = [r for r in log.rows if r["mode"] == "train"]
    assert [r["return"] for r in train] == rets and [r["loss"] for r in train] == losses
    assert len(rets) >= 5


def test_fast_tabular_loop_refuses_observations_outside_the_space():
    from agents._linear_td import TabularFeatures
    from gymnasium import spaces

    feats = TabularFeatures(spaces.Box(low=np.array([0, 0]), high=np.array([3, 2]), dtype=np.int64))
    with pytest.raises(ValueError):
        feats(np.array([4, 0]))


def test_tabular_q_learning_finds_the_safe_path_quickly():
    # Q-learning on CliffWorld (Sutton & Barto, Example 6.6): its greedy policy takes the optimal
    # 13-step path along the cliff; 20k steps take well under a second with the scalar loop
    log = ListLog()
    tabular_q_learning.train("CliffWorld-v0", tabular_q_learning.Config(alpha=0.5, epsilon=0.1), 0, 20_000, log,
                             evaluation=Evaluation(every=20_000, episodes=1, seed=0))
    evals = [r for r in log.rows if r["mode"] == "eval"]
    assert evals[-1]["return"] == -13.0
