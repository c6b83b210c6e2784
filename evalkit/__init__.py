"""evalkit: run and judge reinforcement-learning experiments with many seeds and honest statistics."""

__version__ = "0.1.0"
