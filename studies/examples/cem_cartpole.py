"""A researcher's own algorithm, outside evalkit: the cross-entropy method over linear policies.

Plain numpy + gymnasium, run as a command by evalkit (see studies/byo_example.toml). It reports
each finished episode as one JSON line ``{"step": ..., "return": ..., "length": ...}`` to --log.

    python studies/examples/cem_cartpole.py --env CartPole-v1 --seed 1 --steps 20000 --log out.jsonl
"""

import argparse
import json

import gymnasium as gym
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--elite", type=float, default=0.25, help="fraction of the population kept")
    p.add_argument("--noise", type=float, default=0.5, help="initial std of the policy parameters")
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    env = gym.make(args.env)
    n_obs, n_act = env.observation_space.shape[0], env.action_space.n
    mean, std = np.zeros((n_obs, n_act)), np.full((n_obs, n_act), args.noise)
    step, first = 0, True
    with open(args.log, "w") as log:
        while step < args.steps:
            thetas = mean + std * rng.standard_normal((args.population, n_obs, n_act))
            scores = []
            for theta in thetas:
                obs, _ = env.reset(seed=args.seed if first else None)
                first = False
                total, length, done = 0.0, 0, False
                while not done and step < args.steps:
                    obs, r, term, trunc, _ = env.step(int(np.argmax(obs @ theta)))
                    total, length, step = total + float(r), length + 1, step + 1
                    done = term or trunc
                if done:
                    log.write(json.dumps({"step": step, "return": total, "length": length}) + "\n")
                scores.append(total)
            elite = thetas[np.argsort(scores)[-max(1, int(args.elite * args.population)):]]
            mean, std = elite.mean(axis=0), elite.std(axis=0) + 0.01


if __name__ == "__main__":
    main()
