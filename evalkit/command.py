"""Runs any program as a run: ``command = "python train.py --seed {seed} --lr {lr} --log {log}"``.

The template is split with ``shlex.split`` *before* placeholders are filled, and each argument is
filled on its own, so a value such as ``1; rm -rf ~`` stays one argument: no shell is involved.
Placeholders: every hyperparameter plus ``seed``, ``steps``, ``env``, ``log``, ``run_id`` and
``python`` (the interpreter evalkit runs under, so a study works inside any virtualenv).

The program reports episodes by writing JSON lines (``{"step": 1200, "return": 35.0, "length": 35}``,
extras allowed, ``"mode": "eval"`` for evaluation episodes) or CSV with a header to ``{log}``
(``log_format = "jsonl" | "csv"``), or by printing lines that match ``log_pattern``, a regular
expression with named groups ``step`` and ``ret`` (optional ``length``), with ``log_format = "stdout"``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import string
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RESERVED = ("seed", "steps", "env", "log", "run_id", "python")


class CommandFailed(RuntimeError):
    """A command run that failed; carries its cause and captured output for the failure record."""

    def __init__(self, message: str, cause: str, output: str) -> None:
        super().__init__(message)
        self.evalkit_cause = cause
        self.evalkit_output = output


def placeholders(template: str) -> list[str]:
    """Every ``{name}`` used in the template (raises ValueError on malformed braces)."""
    names = []
    for arg in shlex.split(template):
        for _, field, spec, conv in string.Formatter().parse(arg):
            if field is not None:
                if not field.isidentifier() and field != "":
                    raise ValueError(f"placeholder {{{field}}} is not a plain name")
                if field == "":
                    raise ValueError("an empty placeholder {}")
                names.append(field)
    return names


def check_template(checker: Any, template: str, key: str, hyperparameters: set[str]) -> None:
    """Validate a command template against the declared hyperparameters (a study-file check)."""
    try:
        used = placeholders(template)
    except ValueError as exc:
        raise checker.fail(key, "a command template with {name} placeholders", f"{template!r}: {exc}") from None
    if not template.strip():
        raise checker.fail(key, "a non-empty command", "an empty string")
    allowed = set(RESERVED) | hyperparameters
    unknown = [n for n in used if n not in allowed]
    if unknown:
        raise checker.fail(key, f"placeholders among {', '.join(sorted(allowed))}",
                           f"unknown placeholder {{{unknown[0]}}}")


def build_argv(template: str, values: dict[str, Any]) -> list[str]:
    """The argument list: the template split first, then each argument filled separately."""
    return [arg.format(**{k: _text(v) for k, v in values.items()}) for arg in shlex.split(template)]


def _text(v: Any) -> str:
    return json.dumps(v) if isinstance(v, bool) else str(v)


def parse_jsonl(text: str, source: str) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}:{i}: not a JSON object ({exc.msg})") from None
        rows.append(_episode(obj, f"{source}:{i}"))
    return rows


def parse_csv(text: str, source: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    return [_episode(dict(r), f"{source}:{i}") for i, r in enumerate(reader, 2)]


def parse_stdout(text: str, pattern: str, source: str) -> list[dict[str, Any]]:
    rx = re.compile(pattern)
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        m = rx.search(line)
        if m:
            d = {"step": m.group("step"), "return": m.group("ret")}
            if "length" in rx.groupindex and m.group("length") is not None:
                d["length"] = m.group("length")
            rows.append(_episode(d, f"{source}:{i}"))
    return rows


def _episode(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object with step and return, found {type(obj).__name__}")
    ret = obj.get("return", obj.get("ret"))
    if "step" not in obj or ret is None:
        raise ValueError(f"{where}: expected keys 'step' and 'return', found {sorted(obj)}")
    try:
        step = int(float(obj["step"]))
        value = float(ret)
        length = int(float(obj["length"])) if obj.get("length") not in (None, "") else 0
    except (TypeError, ValueError):
        raise ValueError(f"{where}: step/return/length must be numbers, found {obj!r}"[:300]) from None
    mode = obj.get("mode", "train")
    if mode not in ("train", "eval"):
        raise ValueError(f"{where}: mode must be 'train' or 'eval', found {mode!r}")
    row = {"mode": mode, "step": step, "return": value, "length": length}
    for k, v in obj.items():
        if k in ("step", "return", "ret", "length", "mode", "episode"):
            continue
        try:
            row[k] = float(v)
        except (TypeError, ValueError):
            continue  # non-numeric extras are not stored
    return row


def run_command(run: Any) -> tuple[list[dict[str, Any]], str]:
    """Execute a command-template run; returns (episode rows, captured output)."""
    with tempfile.TemporaryDirectory(prefix=f"evalkit-{run.run_id}-") as tmp:
        log = Path(tmp) / "episodes.log"
        values = {**run.config, "seed": run.seed, "steps": run.steps, "env": run.env_id, "log": str(log),
                  "run_id": run.run_id, "python": sys.executable}
        argv = build_argv(run.command, values)
        timeout = run.resources.timeout_s
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=os.getcwd(),
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            out = (_decode(exc.stdout) + _decode(exc.stderr))
            raise CommandFailed(f"command timed out after {timeout:g} s: {shlex.join(argv)}", "timeout", out) from None
        except OSError as exc:
            raise CommandFailed(f"cannot start {argv[0]!r}: {exc}", "exception", "") from None
        output = f"$ {shlex.join(argv)}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        if proc.returncode != 0:
            raise CommandFailed(f"command exited with status {proc.returncode}: {shlex.join(argv)}\n"
                                f"{proc.stderr[-2000:]}", "exception", output)
        fmt = run.log_format or ("stdout" if run.log_pattern else "jsonl")
        try:
            if fmt == "stdout":
                rows = parse_stdout(proc.stdout, run.log_pattern or r"step=(?P<step>\d+)\s+return=(?P<ret>\S+)",
                                    "stdout")
            else:
                text = log.read_text() if log.exists() else ""
                rows = parse_jsonl(text, "log") if fmt == "jsonl" else parse_csv(text, "log")
        except ValueError as exc:
            raise CommandFailed(f"malformed episode log: {exc}", "exception", output) from None
    if not rows:
        raise CommandFailed("the command reported no episodes", "exception", output)
    counters = {"train": 0, "eval": 0}
    for r in rows:
        r["episode"] = counters[r["mode"]]
        counters[r["mode"]] += 1
    return rows, output


def _decode(b: Any) -> str:
    if b is None:
        return ""
    return b.decode(errors="replace") if isinstance(b, bytes) else str(b)
