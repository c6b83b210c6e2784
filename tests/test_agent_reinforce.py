"""REINFORCE: reward-to-go by hand, sampling, step accounting, seeding, learning on CartPole."""

import numpy as np
import pytest
import torch

from agents import reinforce
from agents.common import Evaluation, ListLog, hyperparameters

from tests.toy_envs import COUNTING_CARTPOLE, ENV_STEPS, ONE_STATE


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_reward_to_go_hand_example():
    # rewards 1, 2, 3 with gamma 0.5: G2 = 3, G1 = 2 + 0.5 * 3 = 3.5, G0 = 1 + 0.5 * 3.5 = 2.75
    np.testing.assert_allclose(reinforce.reward_to_go(np.array([1.0, 2.0, 3.0]), 0.5), [2.75, 3.5, 3.0])
    # cut by a time limit with V(s_T) = 4: G2 = 3 + 0.5 * 4 = 5, G1 = 2 + 2.5 = 4.5, G0 = 1 + 2.25 = 3.25
    np.testing.assert_allclose(reinforce.reward_to_go(np.array([1.0, 2.0, 3.0]), 0.5, bootstrap=4.0),
                               [3.25, 4.5, 5.0])
    np.testing.assert_allclose(reinforce.reward_to_go(np.array([1.0, 1.0]), 1.0), [2.0, 1.0])
    assert reinforce.reward_to_go(np.array([]), 0.9).shape == (0,)


def test_sample_action_follows_the_softmax():
    rng = np.random.default_rng(0)
    logits = torch.tensor([0.0, float(np.log(3.0))])  # probabilities 0.25, 0.75
    draws = np.array([reinforce.sample_action(logits, rng) for _ in range(4000)])
    assert 0.72 < draws.mean() < 0.78


def test_config_follows_the_contract():
    info = hyperparameters(reinforce.Config)
    assert reinforce.NAME == "reinforce"
    assert all(i.low is None or i.low <= i.default <= i.high for i in info.values())


def test_step_accounting_evaluation_and_extras():
    ENV_STEPS["n"] = 0
    log = ListLog()
    cfg = reinforce.Config(batch_steps=100)
    reinforce.train(COUNTING_CARTPOLE, cfg, 0, 555, log,
                    evaluation=Evaluation(every=250, episodes=2, seed=7))
    train = [r for r in log.rows if r["mode"] == "train"]
    evals = [r for r in log.rows if r["mode"] == "eval"]
    assert ENV_STEPS["n"] == 555 + sum(r["length"] for r in evals)
    np.testing.assert_array_equal([r["step"] for r in train], np.cumsum([r["length"] for r in train]))
    assert [r["step"] for r in evals] == [250, 250, 500, 500]
    updated = [r for r in train if "loss" in r]
    assert updated and all(np.isfinite([r["loss"], r["value_loss"], r["entropy"]]).all() for r in updated)


def test_same_seed_same_returns_different_seed_different():
    def returns(seed):
        log = ListLog()
        reinforce.train("CartPole-v1", reinforce.Config(batch_steps=64), seed, 800, log)
        return log.returns()

    np.testing.assert_array_equal(returns(11), returns(11))
    assert not np.array_equal(returns(11), returns(12))


def test_beats_random_on_cartpole():
    # a uniformly random policy averages about 22; about 5 s of training reaches 80-90
    log = ListLog()
    reinforce.train("CartPole-v1", reinforce.Config(), 0, 50_000, log)
    ret = log.returns()
    assert ret[:20].mean() < 40
    assert ret[-20:].mean() > 60


def test_truncation_bootstraps_termination_does_not(monkeypatch):
    # reward 1 every step, gamma 0.5: after a time-limit cut the task goes on, so V -> 1 / (1 - 0.5) = 2;
    # after a true termination V -> 1. The second network built is the value baseline.
    values = {}
    for kind in ("Truncated", "Terminal"):
        nets, build = [], reinforce.mlp

        def spy(*args, **kwargs):
            nets.append(build(*args, **kwargs))
            return nets[-1]

        monkeypatch.setattr(reinforce, "mlp", spy)
        reinforce.train(ONE_STATE[kind], reinforce.Config(gamma=0.5, value_learning_rate=1e-2, batch_steps=16), 0, 3000, ListLog())
        monkeypatch.setattr(reinforce, "mlp", build)
        with torch.no_grad():
            values[kind] = float(nets[1](torch.zeros(1)))
    assert values["Truncated"] == pytest.approx(2.0, abs=0.3)
    assert values["Terminal"] == pytest.approx(1.0, abs=0.3)
