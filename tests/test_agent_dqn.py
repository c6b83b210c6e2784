"""DQN: truncation bootstrapping, exact step accounting, seeding, and learning on CartPole."""

import numpy as np
import torch

from agents import dqn
from agents.common import Evaluation, ListLog, hyperparameters
from tests.toy_envs import COUNTING_CARTPOLE, ENV_STEPS, ONE_STATE

torch.set_num_threads(1)
SMALL = dqn.Config(learning_starts=50, train_frequency=4, gradient_steps=1, batch_size=16, hidden=16)


def test_td_target_bootstraps_on_truncation_not_on_termination():
    rewards = torch.tensor([1.0, 1.0])
    next_q = torch.tensor([[2.0, 5.0], [2.0, 5.0]])
    terminated = torch.tensor([0.0, 1.0])  # the first transition was truncated (or not done), the second terminated
    y = dqn.td_target(rewards, next_q, terminated, gamma=0.5)
    assert y.tolist() == [1.0 + 0.5 * 5.0, 1.0]


def test_truncated_one_state_value_converges_to_the_discounted_sum():
    # one state, reward 1 per step, every episode cut by a 1-step time limit: Q -> 1 / (1 - gamma) = 2
    for kind, expected in (("Truncated", 2.0), ("Terminal", 1.0)):
        cfg = dqn.Config(gamma=0.5, learning_starts=10, train_frequency=1, gradient_steps=1, batch_size=8,
                         target_update_interval=5, learning_rate=1e-2, hidden=8)
        captured = {}
        original = dqn.update

        def spy(q, target, opt, batch, config, **kw):
            captured["q"] = q
            return original(q, target, opt, batch, config, **kw)

        dqn.update = spy
        try:
            dqn.train(ONE_STATE[kind], cfg, 0, 1500, ListLog())
        finally:
            dqn.update = original
        value = float(captured["q"](torch.zeros(1, 1)).detach().squeeze())
        assert abs(value - expected) < 0.15, (kind, value)


def test_exact_step_accounting_and_evaluation_rows():
    log = ListLog()
    ENV_STEPS["n"] = 0
    dqn.train(COUNTING_CARTPOLE, SMALL, 0, 777, log, evaluation=Evaluation(250, 2, 99))
    evals = [r for r in log.rows if r["mode"] == "eval"]
    assert ENV_STEPS["n"] == 777 + sum(r["length"] for r in evals)
    train = [r for r in log.rows if r["mode"] == "train"]
    assert sum(r["length"] for r in train) <= 777 and train[-1]["step"] <= 777
    assert {r["step"] for r in evals} == {250, 500, 750}
    assert all("epsilon" in r for r in train) and any("loss" in r for r in train)
    assert not any("loss" in r for r in train if r["step"] <= SMALL.learning_starts)


def test_same_seed_same_returns_and_different_seed_different():
    def run(seed):
        log = ListLog()
        dqn.train("CartPole-v1", SMALL, seed, 600, log)
        return log.returns()
    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_learns_cartpole_within_a_small_budget():
    cfg = dqn.Config(learning_rate=1e-3, buffer_size=20_000, train_frequency=4, gradient_steps=1,
                     target_update_interval=500, exploration_fraction=0.2, exploration_final_eps=0.02, hidden=64)
    log = ListLog()
    dqn.train("CartPole-v1", cfg, 1, 20_000, log)
    returns = log.returns()
    assert returns[-10:].mean() > 3 * returns[:10].mean() and returns[-10:].mean() > 80


def test_config_declares_ranges():
    info = hyperparameters(dqn.Config)
    assert info["learning_rate"].log and info["loss"].choices == ("huber", "mse")


def test_flat_update_equals_autograd_clipping_and_torch_adam():
    """The hand-written step (FlatQ backward, one-norm clipping, FlatAdam) is the nn.Module + autograd +
    clip_grad_norm_ + torch.optim.Adam step, for both losses and with/without double DQN."""
    gen = torch.Generator().manual_seed(5)
    x, nx = torch.randn(32, 4, generator=gen), torch.randn(32, 4, generator=gen)
    actions = torch.randint(0, 3, (32,), generator=gen)
    rewards, terminated = torch.randn(32, generator=gen), (torch.rand(32, generator=gen) < 0.3).float()
    for kind, double_q, max_norm in (("huber", False, 10.0), ("mse", True, 0.05), ("huber", True, 1e6)):
        cfg = dqn.Config(loss=kind, double_q=double_q, max_grad_norm=max_norm, hidden=16, learning_rate=1e-2)
        ref_q = dqn.q_network(4, 3, 16, torch.Generator().manual_seed(1))
        ref_t = dqn.q_network(4, 3, 16, torch.Generator().manual_seed(2))
        ref_opt = torch.optim.Adam(ref_q.parameters(), lr=cfg.learning_rate)
        q = dqn.FlatQ(dqn.q_network(4, 3, 16, torch.Generator().manual_seed(1)))
        t = dqn.FlatQ(dqn.q_network(4, 3, 16, torch.Generator().manual_seed(2)))
        opt = dqn.FlatAdam(q.flat, cfg.learning_rate)
        for _ in range(3):
            with torch.no_grad():
                online = ref_q(nx) if double_q else None
                y = dqn.td_target(rewards, ref_t(nx), terminated, cfg.gamma, online)
            ref_loss = dqn.td_loss(ref_q(x).gather(1, actions[:, None]).squeeze(1), y, kind)
            ref_opt.zero_grad()
            ref_loss.backward()
            torch.nn.utils.clip_grad_norm_(ref_q.parameters(), max_norm)
            ref_opt.step()
            loss = dqn.update(q, t, opt, (x, actions, rewards, nx, terminated), cfg)
            assert torch.allclose(loss, ref_loss.detach(), rtol=1e-5, atol=1e-6)
            for p, r in zip(q.parameters(), ref_q.parameters()):
                assert torch.allclose(p, r, rtol=1e-4, atol=1e-6)
        assert q.act(x[0].numpy()) == int(ref_q(x[:1]).argmax())
    # Polyak averaging and hard copies act on the flat buffer
    dqn.sync_target(q, t, 0.5)
    for p, tp in zip(q.parameters(), t.parameters()):
        assert not torch.equal(p, tp)
    dqn.sync_target(q, t, 1.0)
    assert torch.equal(q.flat, t.flat)


def test_replay_rows_round_trip_and_phase_gather():
    buf = dqn.ReplayBuffer(5, 3)
    for i in range(7):  # wraps: rows 0-1 overwritten by transitions 5-6
        buf.add(np.full(3, i, np.float32), i % 2, float(i) / 2, np.full(3, i + 0.5, np.float32), i == 4)
    assert (buf.size, buf.pos) == (5, 2)
    obs, act, rew, nxt, term = buf.gather(np.array([[0, 4], [2, 1]]))
    assert obs.shape == (2, 2, 3) and act.dtype == torch.int64
    assert obs[0, 0, 0] == 5 and nxt[0, 1, 0] == 4.5 and act[0, 0] == 1 and rew[1, 1] == 3.0
    assert term[0, 1] == 1.0 and term[1].sum() == 0


def test_denormals_are_flushed_inside_a_run_only():
    tiny = torch.tensor([1e-39])  # a float32 denormal
    with dqn.flush_denormals():
        assert float(tiny * 1.0) == 0.0
    assert float(tiny * 1.0) > 0.0  # PyTorch's default is back after the block
    dqn.train("CartPole-v1", dqn.Config(learning_starts=10, train_frequency=5, hidden=8), 0, 60, ListLog())
    assert float(tiny * 1.0) > 0.0


def test_n_step_targets_stop_at_episode_ends_and_at_the_newest_row():
    buf = dqn.ReplayBuffer(6, 1)
    # episode 1: rewards 1, 2, 3, terminated; episode 2: rewards 4, 5, truncated; episode 3: reward 6 (running)
    steps = [(1, False, False), (2, False, False), (3, True, True), (4, False, False), (5, False, True), (6, False, False)]
    for i, (r, term, done) in enumerate(steps):
        buf.add(np.array([i], np.float32), 0, float(r), np.array([10 + i], np.float32), term, done)
    idx = np.array([0, 1, 3, 4, 5])
    _, _, rew, nxt, term, disc = buf.gather(idx, n_step=3, gamma=0.5)
    assert rew.tolist() == [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 4 + 0.5 * 5, 5, 6]
    assert nxt[:, 0].tolist() == [12, 12, 14, 14, 15]  # the next obs after the window's last row
    assert term.tolist() == [1, 1, 0, 0, 0]  # terminated: no bootstrap; truncated or cut: bootstrap
    assert disc.tolist() == [0.125, 0.25, 0.25, 0.5, 0.5]
    # one more transition overwrites row 0; the window of row 5 now continues into it (circularly)
    buf.add(np.array([6], np.float32), 0, 7.0, np.array([16], np.float32), False, False)
    _, _, rew, nxt, _, disc = buf.gather(np.array([5, 0]), n_step=3, gamma=0.5)
    assert rew.tolist() == [6 + 0.5 * 7, 7] and nxt[:, 0].tolist() == [16, 16] and disc.tolist() == [0.25, 0.5]
    # n_step = 1 is the one-step transition itself
    _, _, rew1, nxt1, term1 = buf.gather(np.array([1, 2]))
    assert rew1.tolist() == [2, 3] and nxt1[:, 0].tolist() == [11, 12] and term1.tolist() == [0, 1]
