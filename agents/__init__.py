"""Reference agents shipped with evalkit, one per module. See ``agents/common.py`` for the contract."""

BUILTIN = ("random", "dqn", "ppo", "a2c", "reinforce", "sarsa", "expected_sarsa", "q_learning",
           "tabular_sarsa", "tabular_q_learning")
