"""A2C: n-step advantages by hand, exact step accounting with several env copies, seeding, learning."""

import numpy as np
import pytest
import torch

from agents import a2c
from agents.common import Evaluation, ListLog, hyperparameters

from tests.toy_envs import COUNTING_CARTPOLE, ENV_STEPS, ONE_STATE


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_n_step_advantages_hand_example():
    # one env copy, 3 steps, gamma 0.5, V = (1, 2, 3) along the rollout, V(next) = 4, no episode end:
    # R2 = 1 + 0.5 * 4 = 3, R1 = 1 + 0.5 * 3 = 2.5, R0 = 1 + 0.5 * 2.5 = 2.25; A = R - V
    r, v = np.ones((3, 1)), np.array([[1.0], [2.0], [3.0]])
    adv = a2c.advantages(r, v, np.zeros((3, 1)), np.array([4.0]), gamma=0.5, lam=1.0)
    np.testing.assert_allclose(adv[:, 0], [1.25, 0.5, 0.0])
    # the episode ends at step 1: R1 = 1 (nothing after it), R0 = 1 + 0.5 * 1 = 1.5, R2 = 1 + 0.5 * 4 = 3
    adv = a2c.advantages(r, v, np.array([[0.0], [1.0], [0.0]]), np.array([4.0]), gamma=0.5, lam=1.0)
    np.testing.assert_allclose(adv[:, 0], [0.5, -1.0, 0.0])
    # a truncation at step 1 with V(s_cut) = 6 folds gamma * 6 into that reward: R1 = 1 + 3 = 4, R0 = 3
    r_cut = np.array([[1.0], [1.0 + 0.5 * 6.0], [1.0]])
    adv = a2c.advantages(r_cut, v, np.array([[0.0], [1.0], [0.0]]), np.array([4.0]), gamma=0.5, lam=1.0)
    np.testing.assert_allclose(adv[:, 0], [2.0, 2.0, 0.0])
    # GAE(0) is the one-step TD error: delta0 = 1 + 0.5 * 2 - 1 = 1
    adv = a2c.advantages(r, v, np.zeros((3, 1)), np.array([4.0]), gamma=0.5, lam=0.0)
    np.testing.assert_allclose(adv[:, 0], [1.0, 0.5, 0.0])


def test_config_follows_the_contract():
    info = hyperparameters(a2c.Config)
    assert a2c.NAME == "a2c"
    assert info["optimizer"].choices == ("rmsprop", "adam")
    assert all(i.low is None or i.low <= i.default <= i.high for i in info.values())


@pytest.mark.parametrize("n_envs", [1, 3])
def test_exact_step_accounting_and_evaluation(n_envs):
    ENV_STEPS["n"] = 0
    log = ListLog()
    cfg = a2c.Config(n_envs=n_envs, n_steps=4)
    a2c.train(COUNTING_CARTPOLE, cfg, 0, 301, log,
              evaluation=Evaluation(every=100, episodes=1, seed=3))
    train = [r for r in log.rows if r["mode"] == "train"]
    evals = [r for r in log.rows if r["mode"] == "eval"]
    assert ENV_STEPS["n"] == 301 + sum(r["length"] for r in evals)  # 301 is not a multiple of n_envs * n_steps
    assert [r["step"] for r in evals] == [100, 200, 300]
    assert len(train) > 5 and train[-1]["step"] <= 301
    assert sum(r["length"] for r in train) <= 301
    steps = [r["step"] for r in train]
    assert steps == sorted(steps)
    if n_envs == 1:
        np.testing.assert_array_equal(steps, np.cumsum([r["length"] for r in train]))
    assert any("loss" in r for r in train)


def test_same_seed_same_returns_different_seed_different():
    def returns(seed):
        log = ListLog()
        a2c.train("CartPole-v1", a2c.Config(), seed, 1500, log)
        return log.returns()

    np.testing.assert_array_equal(returns(21), returns(21))
    assert not np.array_equal(returns(21), returns(22))


def test_beats_random_on_cartpole():
    # random play averages about 22; 50k steps (about 3 s) reach 200-300
    log = ListLog()
    a2c.train("CartPole-v1", a2c.Config(), 0, 50_000, log)
    ret = log.returns()
    assert ret[:20].mean() < 40
    assert ret[-20:].mean() > 100


def test_truncation_bootstraps_termination_does_not(monkeypatch):
    # reward 1 every step, gamma 0.5: after a time-limit cut the task goes on, so V -> 1 / (1 - 0.5) = 2;
    # after a true termination V -> 1. The second network built is the value baseline.
    values = {}
    for kind in ("Truncated", "Terminal"):
        nets, build = [], a2c.mlp

        def spy(*args, **kwargs):
            nets.append(build(*args, **kwargs))
            return nets[-1]

        monkeypatch.setattr(a2c, "mlp", spy)
        a2c.train(ONE_STATE[kind], a2c.Config(gamma=0.5, learning_rate=1e-3, n_envs=2), 0, 3000, ListLog())
        monkeypatch.setattr(a2c, "mlp", build)
        with torch.no_grad():
            values[kind] = float(nets[1](torch.zeros(1)))
    assert values["Truncated"] == pytest.approx(2.0, abs=0.3)
    assert values["Terminal"] == pytest.approx(1.0, abs=0.3)
