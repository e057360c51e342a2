"""The one YAML reader for the project's input files: plans, scenarios, smoke checks, parity sets.

Strict where PyYAML's ``safe_load`` is lenient: two equal keys in one mapping are refused (safe_load
silently keeps the last one, so a file with two ``bake_seconds:`` lines would run a value nobody
reviewed), and every problem names the file and the line, e.g.
``include/plans/x.yaml line 12: duplicate key 'bake_seconds' (first at line 4)``.

With ``lines=True`` every mapping comes back as a :class:`LineDict` (a dict that also knows the
1-based line it starts on), so a caller validating entries can name the line of a bad one.

Pure Python on purpose: no Airflow import, no I/O at import time. Callers wrap
:class:`YAMLFileError` into their own error type (PlanError, ScenarioError, ...).
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml


class YAMLFileError(ValueError):
    """A YAML file cannot be read, is not valid YAML, or repeats a key; the message names the file
    and, when there is one, the line (1-based)."""

    def __init__(self, source: str, problem: str, line: int | None = None) -> None:
        self.source, self.problem, self.line = source, problem, line
        where = source if line is None else f"{source} line {line}"
        super().__init__(f"{where}: {problem}")


class LineDict(dict):
    """A mapping read from YAML, with the 1-based line it starts on (``line``; None if built by hand)."""

    line: int | None = None


def line_of(value: Any) -> int | None:
    """The line a mapping read with ``lines=True`` starts on; None for anything else."""
    return value.line if isinstance(value, LineDict) else None


class _DuplicateKey(yaml.constructor.ConstructorError):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(None, None, f"duplicate key {key!r} (first at line {first_line})")
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in every mapping, nested ones included."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys merged in with << may be overridden on purpose: only written keys count
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the parent class reports unhashable keys itself
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise _DuplicateKey(key, line, first_lines[key])
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


class _LineLoader(_StrictLoader):
    """The strict loader, building every mapping as a LineDict carrying its first line."""

    def construct_yaml_map(self, node: yaml.MappingNode):  # type: ignore[override]
        data = LineDict()
        data.line = node.start_mark.line + 1
        yield data
        data.update(self.construct_mapping(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_yaml_map)


def parse_yaml(text: str, source: str, *, lines: bool = False) -> Any:
    """The document in `text` (None for an empty one); `source` names it in errors. With
    `lines`, mappings are LineDicts (see the module docstring)."""
    try:
        return yaml.load(text, Loader=_LineLoader if lines else _StrictLoader)  # noqa: S506 # nosec B506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise YAMLFileError(source, exc.problem, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ": ".join(part for part in (exc.context, exc.problem) if part)
        raise YAMLFileError(source, f"is not valid YAML: {problem}",
                            None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as exc:
        raise YAMLFileError(source, f"is not valid YAML: {' '.join(str(exc).split())}") from None


def load_yaml(path: Path | str, *, lines: bool = False) -> Any:
    """Read and parse the YAML file at `path` strictly (see the module docstring)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise YAMLFileError(str(path), f"cannot read it: {exc.strerror or exc}") from None
    return parse_yaml(text, str(path), lines=lines)


YAML_SUFFIXES = (".yaml", ".yml")


def read_yaml_mapping(path: Path, *, context: str, error: type[ValueError]) -> dict[str, Any]:
    """Parse a YAML file strictly (cutover_kit.yaml_loader) whose top level must be a mapping; any
    problem raises `error`, naming the file and, for a syntax error or a duplicate key, the line."""
    try:
        document = load_yaml(path)
    except YAMLFileError as exc:
        raise error(f"{context}: {exc}") from exc
    if not isinstance(document, dict):
        got = "an empty file" if document is None else f"a {type(document).__name__}"
        raise error(f"{context}: {path} must contain a YAML mapping at the top level; got {got}")
    return document


def looks_like_path(name_or_path: str) -> bool:
    """A slash or a .yaml/.yml suffix means a file path; anything else is a name."""
    return "/" in name_or_path or "\\" in name_or_path or name_or_path.endswith(YAML_SUFFIXES)
