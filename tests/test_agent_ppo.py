"""PPO: GAE by hand, exact step accounting, seeding, continuous actions, learning on CartPole."""

import numpy as np
import pytest
import torch

from agents import ppo
from agents.common import Evaluation, ListLog
from tests.toy_envs import COUNTING_CARTPOLE, ENV_STEPS, ONE_STATE

torch.set_num_threads(1)


def test_gae_hand_example():
    # one env, 3 steps, gamma 0.5, lambda 0.5, V = (1, 2, 3), V(last) = 4, episode ends after step 1
    rewards = np.array([[1.0], [1.0], [1.0]])
    values = np.array([[1.0], [2.0], [3.0]])
    dones = np.array([[0.0], [1.0], [0.0]])
    adv = ppo.gae(rewards, values, dones, np.array([4.0]), gamma=0.5, lam=0.5)
    d2 = 1 + 0.5 * 4 - 3          # = 0
    d1 = 1 - 2                    # episode ended: no bootstrap, = -1
    d0 = 1 + 0.5 * 2 - 1          # = 1
    a2, a1 = d2, d1
    a0 = d0 + 0.5 * 0.5 * a1
    assert adv[:, 0].tolist() == pytest.approx([a0, a1, a2])


def test_exact_step_accounting_with_several_env_copies():
    cfg = ppo.Config(n_envs=4, n_steps=16, n_epochs=1)
    log = ListLog()
    ENV_STEPS["n"] = 0
    ppo.train(COUNTING_CARTPOLE, cfg, 0, 1000, log, evaluation=Evaluation(300, 1, 5))
    evals = [r for r in log.rows if r["mode"] == "eval"]
    assert ENV_STEPS["n"] == 1000 + sum(r["length"] for r in evals)  # 1000 is a multiple of n_envs
    assert max(r["step"] for r in log.rows if r["mode"] == "train") <= 1000


def test_truncation_bootstraps_termination_does_not():
    for kind, expected in (("Truncated", 2.0), ("Terminal", 1.0)):
        cfg = ppo.Config(gamma=0.5, gae_lambda=1.0, n_envs=2, n_steps=8, n_epochs=4, learning_rate=3e-3, anneal_lr=False,
                         clip_vloss=False)
        captured = {}
        original = ppo._learn

        def spy(policy, *args):
            captured["policy"] = policy
            return original(policy, *args)

        ppo._learn = spy
        try:
            ppo.train(ONE_STATE[kind], cfg, 0, 2000, ListLog())
        finally:
            ppo._learn = original
        with torch.no_grad():
            value = float(captured["policy"].value(torch.zeros(1, 1)))
        assert abs(value - expected) < 0.2, (kind, value)


def test_same_seed_same_returns_and_different_seed_different():
    def run(seed):
        log = ListLog()
        ppo.train("CartPole-v1", ppo.Config(n_envs=2, n_steps=64), seed, 1500, log)
        return log.returns()
    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_continuous_actions_on_pendulum():
    cfg = ppo.Config(n_envs=2, n_steps=128, n_epochs=2, normalize_obs=True, normalize_reward=True, gamma=0.9)
    log = ListLog()
    ppo.train("Pendulum-v1", cfg, 0, 1200, log, evaluation=Evaluation(1200, 1, 7))
    train = [r for r in log.rows if r["mode"] == "train"]
    assert len(train) == 6 and all(r["length"] == 200 for r in train)  # 2 copies x 600 steps, 200-step limit
    assert [r["mode"] for r in log.rows].count("eval") == 1 and np.isfinite(log.returns()).all()


def test_numpy_vector_envs_give_the_gymnasium_results_bit_for_bit():
    # CartPole/Acrobot run on agents.vector_envs; an env kwarg the numpy envs do not take forces gymnasium
    for env_id in ("CartPole-v1", "Acrobot-v1"):
        logs = []
        for kwargs in (None, {"render_mode": None}):
            log = ListLog()
            ppo.train(env_id, ppo.Config(n_envs=3, n_steps=64), 7, 3000, log, env_kwargs=kwargs)
            logs.append(log.rows)
        assert logs[0] == logs[1] and len(logs[0]) > 5, env_id


def test_learns_cartpole_within_a_small_budget():
    # random play scores about 22; at 25k steps the last-10 mean ranged 132..319 over seeds 0-7
    log = ListLog()
    ppo.train("CartPole-v1", ppo.Config(), 0, 25_000, log)
    returns = log.returns()
    assert returns[-10:].mean() > 100 and returns[-10:].mean() > 4 * returns[:10].mean()
