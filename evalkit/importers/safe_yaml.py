"""YAML for imported files: PyYAML's SafeLoader plus exactly one tag, rl-zoo3's OrderedDict.

rl-zoo3 saves ``config.yml`` and ``args.yml`` with ``yaml.dump(OrderedDict(...))``, which writes::

    !!python/object/apply:collections.OrderedDict
    - - - batch_size
        - 64
      - - learning_rate
        - 0.001

An unsafe loader would *call* ``collections.OrderedDict`` (and would call anything else a file
names). Here that one tag is read as data: its argument, a list of ``[key, value]`` pairs, becomes
a plain dict. Every other ``python/...`` tag is still refused by SafeLoader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evalkit.importers.records import ImportProblem

ORDERED_DICT_TAG = "tag:yaml.org,2002:python/object/apply:collections.OrderedDict"


class ZooLoader(yaml.SafeLoader):
    """SafeLoader that maps the OrderedDict tag to key-value pairs (and nothing else)."""


def _ordered_dict(loader: ZooLoader, node: yaml.Node) -> dict[str, Any]:
    # the tag's value: a sequence of call arguments, whose first is the list of [key, value] pairs;
    # a mapping form (`!!python/object/apply:... {args: [...]}`) is accepted too
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
        args = value.get("args", [[]])
    else:
        args = loader.construct_sequence(node, deep=True)
    pairs = args[0] if args else []
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise yaml.constructor.ConstructorError(None, None, "expected a list of [key, value] pairs for OrderedDict",
                                                node.start_mark)
    return {str(k): v for k, v in pairs}


ZooLoader.add_constructor(ORDERED_DICT_TAG, _ordered_dict)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file as data; a file that is not plain YAML is one line naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        return yaml.load(text, Loader=ZooLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ImportProblem(path, f"expected plain YAML{line}: {' '.join(str(problem).split())}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportProblem(path, f"expected a readable UTF-8 YAML file ({type(exc).__name__}: {exc})") from None
