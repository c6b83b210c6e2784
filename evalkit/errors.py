"""Errors meant for users: one line, naming the file, the key and what was expected."""

from __future__ import annotations


class EvalkitError(Exception):
    """A user mistake or an unusable input. The CLI prints it on one line and exits with 2."""


class StudyError(EvalkitError, ValueError):
    """A study file that cannot be run: ``<file>: <key path>: expected <what>, found <what>``."""

    def __init__(self, path: object, key: str, expected: str, found: str | None = None) -> None:
        self.path, self.key, self.expected, self.found = str(path), key, expected, found
        msg = f"{path}: {key}: expected {expected}" if key else f"{path}: expected {expected}"
        if found is not None:
            msg += f", found {found}"
        super().__init__(msg)


def show(value: object, limit: int = 60) -> str:
    """A short, one-line description of a value found in user input: its repr and type."""
    text = repr(value).replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(value).__name__})"
