"""YAML files validated by pydantic, with errors that name the YAML path and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

Loc = tuple[Any, ...]


class LocatedError(ValueError):
    """A validator's error that knows which YAML path it belongs to (e.g. a bad reference)."""

    def __init__(self, loc: Loc, msg: str):
        super().__init__(msg)
        self.loc = loc


class ConfigError(Exception):
    """A YAML file that cannot be used; `errors` holds one line per problem."""

    def __init__(self, path: str, errors: list[str]):
        self.path = path
        self.errors = errors
        super().__init__(f"{path}: " + "; ".join(errors))


def read(path: Path, what: str, error: type[ConfigError]) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise error(str(path), [f"cannot read the {what}: {e.strerror}"]) from None


class YamlError(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def load(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data of a YAML document."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise YamlError([f"not valid YAML: {problem}{where}"]) from None


def describe(e: ValidationError, root: yaml.Node | None, fix_loc: Callable[[Loc], Loc] = tuple) -> list[str]:
    """One line per pydantic error: `path: message (line N)`."""
    errors = []
    for err in e.errors():
        loc, msg = fix_loc(tuple(err["loc"])), err["msg"]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, LocatedError):
            loc, msg = ctx_err.loc, str(ctx_err)
        msg = msg.removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        errors.append(located(loc, msg, root))
    return errors


def located(loc: Loc, msg: str, root: yaml.Node | None) -> str:
    return f"{format_loc(loc)}: {msg}{line_of(root, loc)}"


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def line_of(node: yaml.Node | None, loc: Loc) -> str:
    """` (line N)` of the deepest YAML node that `loc` reaches."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            break
    if node is not None:
        line = node.start_mark.line + 1
    return f" (line {line})" if line else ""
