"""Finds agents: the built-in ones in ``agents/``, plugins, and ``module:function`` import paths.

An agent is anything with the contract of ``agents/common.py``: a hyperparameter dataclass
``Config`` and ``train(env_id, config, seed, steps, log, *, env_kwargs, evaluation)``.
Third-party packages register agents in the entry-point group ``evalkit.agents``
(``name = "pkg.module"``, a module following the contract).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import agents
from agents.common import HyperparameterInfo, hyperparameters
from evalkit.errors import EvalkitError

ENTRY_POINT_GROUP = "evalkit.agents"


@dataclass(frozen=True)
class AgentInfo:
    """A resolved agent: its name, where it comes from, its hyperparameters and its code hash."""

    name: str
    module: str
    kind: str  # "builtin" | "plugin" | "import"
    config_cls: type | None
    train: Callable[..., Any]
    source_hash: str
    doc: str = ""

    @property
    def hyperparameters(self) -> dict[str, HyperparameterInfo]:
        return hyperparameters(self.config_cls) if self.config_cls is not None else {}


def _module_sources(module_name: str, seen: set[str], files: list[str] | None = None) -> list[bytes]:
    """Source bytes of a module and of every ``agents.*`` module it imports, recursively (``import
    agents.x``, ``from agents.x import y`` and ``from agents import x`` for a submodule ``x``)."""
    if module_name in seen:
        return []
    seen.add(module_name)
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):  # e.g. "agents.dqn.Config": a name, not a submodule
        return []
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return []
    src = Path(spec.origin).read_bytes()
    if files is not None:
        files.append(spec.origin)
    out = [module_name.encode() + b"\0" + src]
    for node in ast.walk(ast.parse(src)):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from agents import vector_envs" imports the submodule agents.vector_envs
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name == "agents" or name.startswith("agents."):
                out += _module_sources(name, seen, files)
    return out


#: ``{module: (((path, mtime_ns, size), ...), hash)}``: a worker resolves its agent once per run, and
#: parsing every source file each time cost ~0.1 s per run (issue 18); any changed file recomputes
_HASHES: dict[str, tuple[tuple, str]] = {}


def _stamp(files: list[str]) -> tuple:
    out = []
    for f in files:
        try:
            st = os.stat(f)
            out.append((f, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((f, None, None))
    return tuple(out)


def source_hash(module_name: str) -> str:
    """16 hex digits of sha256 over the agent module's source and its in-project imports."""
    cached = _HASHES.get(module_name)
    if cached is not None and _stamp([f for f, _, _ in cached[0]]) == cached[0]:
        return cached[1]
    h = hashlib.sha256()
    files: list[str] = []
    for chunk in sorted(_module_sources(module_name, set(), files)):
        h.update(chunk)
    digest = h.hexdigest()[:16]
    _HASHES[module_name] = (_stamp(files), digest)
    return digest


def _from_module(name: str, module_name: str, kind: str) -> AgentInfo:
    try:
        mod = importlib.import_module(module_name)
    except Exception as exc:  # an agent that fails to import is a user-facing problem
        raise EvalkitError(f"agent {name!r}: cannot import module {module_name!r}: {exc}") from exc
    train = getattr(mod, "train", None)
    config_cls = getattr(mod, "Config", None)
    if not callable(train):
        raise EvalkitError(f"agent {name!r}: module {module_name!r} has no train() function")
    if config_cls is not None and not dataclasses.is_dataclass(config_cls):
        raise EvalkitError(f"agent {name!r}: {module_name}.Config must be a dataclass")
    doc = (inspect.getdoc(mod) or "").split("\n")[0]
    return AgentInfo(name, module_name, kind, config_cls, train, source_hash(module_name), doc)


@lru_cache(maxsize=None)
def builtin_names() -> tuple[str, ...]:
    """Names of the built-in agents whose modules exist in this installation."""
    return tuple(n for n in agents.BUILTIN if importlib.util.find_spec(f"agents.{n}") is not None)


@lru_cache(maxsize=None)
def plugin_entry_points() -> dict[str, str]:
    """``{agent name: module path}`` registered by installed packages under ``evalkit.agents``."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def resolve_agent(name: str) -> AgentInfo:
    """The agent called ``name``: built-in, plugin, or an import path ``pkg.module:function``.

    For an import path, ``function`` follows the ``train`` contract and its hyperparameters are
    the dataclass named by the function's ``Config`` attribute or the module's ``Config``.
    """
    if ":" in name:
        return _from_import_path(name)
    if name in builtin_names():
        return _from_module(name, f"agents.{name}", "builtin")
    plugins = plugin_entry_points()
    if name in plugins:
        return _from_module(name, plugins[name], "plugin")
    raise EvalkitError(f"unknown agent {name!r}; known agents: {', '.join(known_agent_names())}")


def _from_import_path(path: str) -> AgentInfo:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise EvalkitError(f"agent {path!r}: expected an import path 'package.module:function'")
    try:
        mod = importlib.import_module(module_name)
    except Exception as exc:
        raise EvalkitError(f"agent {path!r}: cannot import module {module_name!r}: {exc}") from exc
    fn = getattr(mod, attr, None)
    if fn is None:
        raise EvalkitError(f"agent {path!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise EvalkitError(f"agent {path!r}: {attr!r} is not callable")
    params = inspect.signature(fn).parameters
    missing = [p for p in ("env_id", "config", "seed", "steps", "log") if p not in params]
    if missing and len([p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) < 5:
        raise EvalkitError(f"agent {path!r}: expected a function train(env_id, config, seed, steps, log, "
                           f"*, env_kwargs=None, evaluation=None), found signature {inspect.signature(fn)}")
    config_cls = getattr(fn, "Config", None) or getattr(mod, "Config", None)
    if config_cls is not None and not dataclasses.is_dataclass(config_cls):
        config_cls = None
    doc = (inspect.getdoc(fn) or "").split("\n")[0]
    return AgentInfo(path, module_name, "import", config_cls, fn, source_hash(module_name), doc)


def known_agent_names() -> list[str]:
    return sorted(set(builtin_names()) | set(plugin_entry_points()))


def list_agents() -> list[AgentInfo]:
    """Every built-in and plugin agent that imports, in name order."""
    return [resolve_agent(n) for n in known_agent_names()]
