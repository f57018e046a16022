"""Reading the YAML files writers edit (article front matter, glossary.yml): their text as UTF-8,
a loader that refuses a key set twice, and a YAML error's line where the writer's mistake is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

# libyaml when present: front matter parsing dominates re-indexing a large knowledge base.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class TextError(Exception):
    """A file that is not text kb can read, at ``line``."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def decode(data: bytes) -> str:
    """A file's bytes as text, without the byte order mark some Windows editors put first."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TextError(line, "not UTF-8: save the file as UTF-8") from None


class DuplicateKey(ConstructorError):
    """A mapping that sets a key twice: PyYAML would silently keep the last value."""

    def __init__(self, key: Any, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__(None, None, f"duplicate key {key!r}", again)
        self.key = key
        self.first = first


class Loader(_Base):
    """The safe loader, with the checks a writer's file needs."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # An explicit tag on a value it does not fit (``!!int abc``) makes PyYAML raise a bare
        # ValueError or worse; as a YAML error it gets the value's line.
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            what = repr(node.value) if isinstance(node, yaml.ScalarNode) else "the value"
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise ConstructorError(None, None, f"cannot read {what} as {tag}: {exc}",
                                   node.start_mark) from None


def _mapping(loader: Loader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # keys merged in from an anchor may be overridden: that is what merging is
        key = loader.construct_object(key_node)
        try:
            first = seen.setdefault(key, key_node.start_mark)
        except TypeError:
            continue  # an unhashable key: construct_mapping reports it
        if first is not key_node.start_mark:
            raise DuplicateKey(key, first, key_node.start_mark)
    yield from SafeConstructor.construct_yaml_map(loader, node)


def _timestamp(loader: Loader, node: yaml.ScalarNode) -> Any:
    # An impossible date (2026-13-45) stays the text written, for the caller to report with its
    # key; PyYAML would raise a ValueError that names neither.
    try:
        return SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def error_at(exc: yaml.YAMLError, raw: str, first_line: int) -> tuple[int, str]:
    """The file line and message of a YAML error in ``raw``, whose first line is the file's
    ``first_line``. An unclosed quote or bracket is noticed lines later: the line given is
    where it opened (the error's context), the line noticed is in the message. A block
    mapping's context is only where the whole document starts, so that one is left out."""
    if isinstance(exc, DuplicateKey):
        assert exc.problem_mark is not None
        return (exc.problem_mark.line + first_line,
                f"duplicate key {exc.key!r} (first set on line {exc.first.line + first_line})")
    if isinstance(exc, yaml.reader.ReaderError):
        return raw.count("\n", 0, exc.position) + first_line, str(exc).splitlines()[0]
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return first_line, str(exc).splitlines()[0]
    line = exc.problem_mark.line + first_line
    problem = exc.problem or str(exc).splitlines()[0]
    context, start = exc.context, exc.context_mark
    if not context or start is None or context.startswith("while parsing a block"):
        return line, problem
    opened = start.line + first_line
    return opened, f"{context}: {problem}" + (f" (line {line})" if line != opened else "")
