"""Run identity from the source layout: what the files record, else a path pattern.

A pattern such as ``"{algorithm}/{env}__{seed}"`` is matched against the end of a run's path
(a folder for TensorBoard runs and rl-zoo3 runs; the file path without its extension, then its
folder, otherwise; a W&B run's name first for chart exports), from a '/' boundary. Fields:

* ``{algorithm}``, ``{env}``: one path component or part of one (no '/');
* ``{seed}``, ``{run}``: digits (``run`` is the run index that pairs runs across envs; it is the
  seed when only one of them is known);
* ``{hp.NAME}``: a hyperparameter value, parsed like a logged text value (int, float, bool, text);
* ``{_}`` or ``{*}``: anything within one component (ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from evalkit import spec
from evalkit.importers.records import ImportProblem, RunRecord, text_value

FIELD_RE = re.compile(r"\{([^{}]*)\}")
# CleanRL's run_name f"{env_id}__{exp_name}__{seed}__{int(time.time())}": the folder name of its
# TensorBoard runs and the W&B run name; used when nothing else gives the identity.
CLEANRL_RUN_NAME = re.compile(r"(?:^|/)(?P<env>[^/]+?)__(?P<algorithm>[^/]+?)__(?P<seed>\d+)__\d+$")


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern

    def match(self, *candidates: str) -> dict[str, Any] | None:
        """Field values of the first candidate path the pattern matches (its end), or None."""
        for c in candidates:
            m = self.regex.search(c)
            if m:
                return _fields(m.groupdict())
        return None


def compile_pattern(text: str) -> Pattern:
    """Compile ``--pattern``; raises a one-line error naming the bad field."""
    body, pos, seen = "", 0, set()
    for m in FIELD_RE.finditer(text):
        body += re.escape(text[pos:m.start()])
        name = m.group(1)
        if name in ("_", "*"):
            body += r"[^/]*?"
        elif name in ("algorithm", "env") or name.startswith("hp.") and len(name) > 3:
            body += rf"(?P<{_group(name)}>[^/]+?)"
        elif name in ("seed", "run"):
            body += rf"(?P<{name}>\d+)"
        else:
            raise ImportProblem("--pattern", f"unknown field {{{name}}}; expected {{algorithm}}, {{env}}, "
                                f"{{seed}}, {{run}}, {{hp.NAME}} or {{_}}")
        if name not in ("_", "*"):
            if name in seen:
                raise ImportProblem("--pattern", f"field {{{name}}} appears twice in {text!r}")
            seen.add(name)
        pos = m.end()
    body += re.escape(text[pos:])
    if not seen:
        raise ImportProblem("--pattern", f"expected at least one field such as {{algorithm}}, found {text!r}")
    return Pattern(text, re.compile(rf"(?:^|/){body}$"))


def _group(name: str) -> str:
    return "hp__" + re.sub(r"\W", lambda c: f"_{ord(c.group()):x}_", name[3:]) if name.startswith("hp.") else name


def _ungroup(group: str) -> str:
    return "hp." + re.sub(r"_([0-9a-f]+)_", lambda c: chr(int(c.group(1), 16)), group[4:])


def _fields(groups: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g, v in groups.items():
        if v is None:
            continue
        if g.startswith("hp__"):
            out[_ungroup(g)] = text_value(v)
        elif g in ("seed", "run"):
            out[g] = int(v)
        else:
            out[g] = v
    return out


def apply_pattern(record: RunRecord, pattern: Pattern | None, candidates: tuple[str, ...]) -> RunRecord:
    """Fill what the files did not record from the pattern (or CleanRL's run name)."""
    found = pattern.match(*candidates) if pattern else None
    if found is None and (record.missing() or record.run is None):
        m = next((m for m in (CLEANRL_RUN_NAME.search(c) for c in candidates) if m), None)
        found = _fields(m.groupdict()) if m else None
    if not found:
        return record
    changes: dict[str, Any] = {}
    for k in ("algorithm", "env", "seed", "run"):
        if getattr(record, k) is None and k in found:
            changes[k] = found[k]
    hps = {k[3:]: v for k, v in found.items() if k.startswith("hp.") and k[3:] not in record.config}
    if hps:
        changes["config"] = {**record.config, **hps}
    return record.with_(**changes) if changes else record


def complete(record: RunRecord, pattern: Pattern | None) -> RunRecord:
    """Check the identity is complete and its names are safe; the run index and the seed stand in
    for each other when only one is known (SB3's PPO_1, PPO_2 folders count runs)."""
    if record.seed is None and record.run is not None:
        record = record.with_(seed=record.run)
    missing = record.missing()
    if missing:
        absent = [k for k in missing if k not in pattern.regex.groupindex] if pattern else []
        how = (f"--pattern {pattern.text!r} has no {', '.join('{' + k + '}' for k in absent)}" if absent else
               f"--pattern {pattern.text!r} did not match its path" if pattern else
               "give --pattern, e.g. --pattern \"{algorithm}/{env}__{seed}\"")
        raise ImportProblem(record.source, f"{', '.join(missing)} not recorded in the files; {how}"
                            .replace("has no {seed}", "has no {seed} or {run}"))
    record = record.with_(algorithm=safe_name(record.algorithm, record.source, "algorithm"),
                          env=safe_name(record.env, record.source, "env"))
    return record if record.run is not None else record.with_(run=record.seed)


def safe_name(value: Any, source: str, what: str) -> str:
    """A name usable as a folder: gymnasium namespaces ('ALE/Pong-v5') become 'ALE-Pong-v5'."""
    name = str(value).strip().replace("/", "-")
    if not spec.NAME_RE.match(name) or ".." in name:
        raise ImportProblem(source, f"{what}: expected a name of letters, digits, '_', '-', '.', found {str(value)[:60]!r}")
    return name
