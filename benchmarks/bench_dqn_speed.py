"""Env steps/s of the unbatched DQN (``agents.dqn.train``) against a textbook PyTorch DQN step, in one run.

Usage (about 2 minutes; run on an otherwise idle machine)::

    python benchmarks/bench_dqn_speed.py [--steps 30000] [--repeats 2]

Both loops run on CartPole-v1 (gymnasium), one process, one torch thread, the same seed, the same
hyperparameters and the same network (two ReLU hidden layers of equal width):

* **evalkit**: ``agents.dqn.train`` (flat parameters, hand-written backward pass, fused Adam
  kernel, numpy acting; denormals flushed during training);
* **textbook**: the structure of CleanRL's ``dqn.py`` -- ``nn.Sequential`` Q and target networks,
  ``q(obs)`` through autograd for acting and for the loss, ``F.smooth_l1_loss``,
  ``loss.backward()``, ``clip_grad_norm_``, ``torch.optim.Adam`` -- with the same replay buffer
  layout and sampling as evalkit's.

Two settings: the agents benchmark study's CartPole setting (hidden 128, 2 gradient steps of 64
per 4 env steps) and CleanRL's CartPole setting (120/84 units there; 128 here; batch 128, one
gradient step per 10 env steps, learning starts at 10k). The issue's target is >= 3,000 steps/s
(CleanRL measured 3,100 with two threads on gymnasium 0.29 on this machine type). Prints a
Markdown table with the ratio evalkit / textbook.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from agents import dqn  # noqa: E402
from agents.common import ListLog, linear_schedule, make_env, torch_generator_seed  # noqa: E402

SETTINGS = {
    "agents benchmark study (CartPole-100k)": dict(
        hidden=128, learning_rate=1e-3, anneal_lr=True, train_frequency=4, gradient_steps=2,
        target_update_interval=500, exploration_fraction=0.1, exploration_final_eps=0.01),
    "CleanRL dqn.py CartPole": dict(
        hidden=128, learning_rate=2.5e-4, buffer_size=10_000, batch_size=128, train_frequency=10,
        gradient_steps=1, target_update_interval=500, learning_starts=10_000,
        exploration_fraction=0.5, exploration_final_eps=0.05, loss="mse"),
}


def textbook_train(config: dqn.Config, seed: int, steps: int) -> None:
    """DQN the way single-file implementations write it (nn.Module, autograd, torch.optim)."""
    rng = np.random.default_rng(seed)
    env = make_env("CartPole-v1")
    gen = torch.Generator().manual_seed(torch_generator_seed(rng))
    q = dqn.q_network(4, 2, config.hidden, gen)
    target = dqn.q_network(4, 2, config.hidden, gen)
    target.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=config.learning_rate)
    buffer = dqn.ReplayBuffer(min(config.buffer_size, steps), 4)
    decay = int(config.exploration_fraction * steps)
    obs, _ = env.reset(seed=seed)
    for t in range(1, steps + 1):
        eps = linear_schedule(config.exploration_initial_eps, config.exploration_final_eps, decay, t - 1)
        if rng.random() < eps:
            action = int(rng.integers(2))
        else:
            with torch.no_grad():
                action = int(q(torch.as_tensor(obs, dtype=torch.float32)).argmax())
        next_obs, r, term, trunc, _ = env.step(action)
        buffer.add(obs, action, r, next_obs, term)
        obs = env.reset()[0] if term or trunc else next_obs
        if t > config.learning_starts:
            if t % config.train_frequency == 0:
                for _ in range(config.gradient_steps):
                    o, a, rew, no, te = buffer.sample(rng, config.batch_size)
                    with torch.no_grad():
                        y = rew + config.gamma * (1 - te) * target(no).max(dim=1).values
                    pred = q(o).gather(1, a.unsqueeze(1)).squeeze(1)
                    loss = F.smooth_l1_loss(pred, y) if config.loss == "huber" else F.mse_loss(pred, y)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(q.parameters(), config.max_grad_norm)
                    opt.step()
            if t % config.target_update_interval == 0:
                target.load_state_dict(q.state_dict())
    env.close()


def evalkit_train(config: dqn.Config, seed: int, steps: int) -> None:
    dqn.train("CartPole-v1", config, seed, steps, ListLog())


def steps_per_s(fn, config: dqn.Config, steps: int, repeats: int) -> float:
    best = 0.0
    for k in range(repeats):
        t0 = time.perf_counter()
        fn(config, k, steps)
        best = max(best, steps / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30_000, help="env steps per measured run")
    ap.add_argument("--repeats", type=int, default=2, help="runs per cell; the best is reported")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| setting | evalkit dqn.train | textbook PyTorch DQN | ratio |")
    print("|---|---:|---:|---:|")
    for name, kw in SETTINGS.items():
        config = dqn.Config(**kw)
        ours = steps_per_s(evalkit_train, config, args.steps, args.repeats)
        peer = steps_per_s(textbook_train, config, args.steps, args.repeats)
        print(f"| {name} | {ours:,.0f} | {peer:,.0f} | {ours / peer:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
