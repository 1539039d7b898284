"""YAML read exactly as kubectl reads it, with limits checked while it is read.

kubectl converts each YAML document to JSON with sigs.k8s.io/yaml, which parses with a
go-yaml v2 fork (YAML 1.1 scalars) before the API server sees anything. This module
builds the same JSON values from the parser's event stream (libyaml when available):

- plain scalars resolve as go-yaml v2 resolves them: `0644` is octal 420, `0x1F`, `0o17`,
  `0b101` and `1_000` are integers, `yes`/`no`/`on`/`off` (lower, Title or UPPER case)
  and `y`/`n` (lower or upper) are booleans, `~`, `null` and nothing are null; timestamps and sexagesimal numbers
  (`1:30`) stay strings; whole floats become integers, as they do through JSON;
- quoted scalars, `!!str` and unknown tags (`!Ref`, `!!python/...`, the YAML 1.1 value
  tag `=`) are strings; `!!binary` is decoded base64;
- merge keys (`<<`) merge as go-yaml v2 merges them: in document order, the earlier of
  a list of merged mappings winning;
- map keys become strings as sigs.k8s.io/yaml makes them (`on:` is the key "true");
- every alias is an independent copy, so changing one place never changes another.

Duplicate keys are refused (kubectl keeps the last one silently), as are values JSON
cannot carry (`.inf`, `.nan`) and null keys, which kubectl refuses too. A stream that
starts with `{` is read as JSON first, as kubectl does. Limits on nesting depth, alias
count and the size after alias expansion are checked on the event stream, before any
large value is built: a "billion laughs" file fails in milliseconds.
"""

import base64
import dataclasses
import decimal
import io
import json
import math
import re
import struct
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml import events as yaml_events
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.representer import SafeRepresenter

try:  # libyaml (the ruamel.yaml[libyaml] extra) parses about ten times faster
    from ruamel.yaml import cyaml

    LIBYAML = True
except ImportError:  # the pure-Python parser gives the same events, slower
    LIBYAML = False

TAG = "tag:yaml.org,2002:"
INT64 = 2**63

_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_NUMBER_START = frozenset("+-.0123456789")
_GO_INT = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_BASES = {"x": 16, "o": 8, "b": 2}
_SURROGATE = re.compile("[\ud800-\udfff]")
_TAGGED = {  # explicitly tagged scalars: whether the resolved value fits the tag
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class ReadError(Exception):
    """The text is not YAML kubectl would read; `index` is the 1-based document."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class ReadLimits:
    """Bounds checked while reading."""

    aliases: int = 100
    depth: int = 100
    nodes: int = 1_000_000  # per document, after expanding aliases
    documents: int = 5000


def documents(text: str, limits: ReadLimits = ReadLimits()) -> Iterator[tuple[int, Any]]:
    """(1-based index, value) of every document in `text` that is not empty."""
    if text.lstrip().startswith("{"):
        try:
            yield from _json_documents(text, limits)
            return
        except (ValueError, RecursionError):
            pass  # kubectl, too, falls back to YAML (a flow mapping is not JSON), which says why
    if LIBYAML:
        try:  # all of a file at once: a parser error can still change the parser
            yield from _Reader(limits).read(_c_events(text))
            return
        except YAMLError:
            pass  # the bundled libyaml predates YAML 1.1 fixes go-yaml has (`[image: nginx:1.19]`)
    reader = _Reader(limits)
    try:
        yield from reader.read(YAML(typ="safe", pure=True).parse(io.StringIO(text)))
    except YAMLError as e:
        raise ReadError(max(reader.index, 1), _describe(e)) from None


def dump(values: list[Any]) -> str:
    """YAML documents that kubectl (and `documents`) read back as exactly `values`:
    strings that would read as something else (`"0644"`, `"on"`, `"y"`) are quoted."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump_all(values, out)
    return out.getvalue()


class _Representer(SafeRepresenter):
    """Strings that read back as something else are quoted; multi-line ones are blocks."""

    def represent_str(self, data: str) -> Any:
        style = "|" if "\n" in data.rstrip("\n") else '"' if data == "<<" or _resolve(data) is not data else None
        return self.represent_scalar(TAG + "str", data, style=style)


_Representer.add_representer(str, _Representer.represent_str)


def _json_documents(text: str, limits: ReadLimits) -> Iterator[tuple[int, Any]]:
    """A stream of JSON values, numbers as Kubernetes reads them; the same limits as YAML."""
    decoder = json.JSONDecoder(
        object_pairs_hook=_json_object, parse_float=_json_float, parse_int=_json_int, parse_constant=_no_constant
    )
    values = []
    position, index = 0, 0
    while True:
        position = len(text) - len(text[position:].lstrip())
        if position == len(text):
            break
        value, position = decoder.raw_decode(text, position)
        index += 1
        if index > limits.documents:
            raise ReadError(index, f"more than {limits.documents} objects")
        if _depth(value) > limits.depth:
            raise ReadError(index, f"nesting deeper than {limits.depth} levels")
        values.append((index, value))
    yield from values  # all or nothing: a JSON error falls back to YAML before any is used


def _depth(value: Any) -> int:
    """How deep mappings and lists nest in `value`."""
    depth, level = 0, [value]
    while level := [v for v in level if isinstance(v, (dict, list))]:
        depth += 1
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v)]
    return depth


def _json_int(text: str) -> int | float:
    number = int(text)
    return number if -INT64 <= number < INT64 else float(number)  # as through Go's JSON


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f'duplicate key "{key}"')
        out[key] = value
    return out


def _json_float(text: str) -> int | float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return _number(value)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


@dataclasses.dataclass
class _Node:
    """An open mapping or sequence while its events arrive."""

    anchor: str | None
    value: dict[str, Any] | list[Any]
    nodes: int = 1
    key: Any = None  # a mapping's key waiting for its value
    has_key: bool = False
    keys: set[str] = dataclasses.field(default_factory=set)  # keys set explicitly (not merged)


class _Merge:
    """The merge key `<<`."""


MERGE = _Merge()


class _Reader:
    """Builds the documents of one stream from its events, checking limits as it goes."""

    def __init__(self, limits: ReadLimits) -> None:
        self.limits = limits
        self.index = 0
        self.aliases = 0
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, node count)
        self.stack: list[_Node] = []
        self.root: tuple[Any, int] | None = None  # the document's value and its node count

    def read(self, events: Iterable[yaml_events.Event]) -> list[tuple[int, Any]]:
        found = []
        for event in events:
            if isinstance(event, yaml_events.DocumentStartEvent):
                self.index += 1
                self.anchors, self.root = {}, None
                if self.index > self.limits.documents:
                    self.fail(f"more than {self.limits.documents} objects", 0)
            elif isinstance(event, yaml_events.DocumentEndEvent):
                if self.root is not None and self.root[0] is not None:
                    found.append((self.index, self.root[0]))
            else:
                self.event(event)
        return found

    def event(self, event: yaml_events.Event) -> None:
        """One node event: open or close a collection, or add a scalar or alias."""
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, (yaml_events.MappingStartEvent, yaml_events.SequenceStartEvent)):
            value: dict[str, Any] | list[Any] = {} if isinstance(event, yaml_events.MappingStartEvent) else []
            self.stack.append(_Node(event.anchor, value))
            if len(self.stack) > self.limits.depth:
                self.fail(f"nesting deeper than {self.limits.depth} levels", line)
        elif isinstance(event, (yaml_events.MappingEndEvent, yaml_events.SequenceEndEvent)):
            node = self.stack.pop()
            if node.anchor:
                self.anchors[node.anchor] = (node.value, node.nodes)
            self.add(node.value, node.nodes, line)
        elif isinstance(event, yaml_events.ScalarEvent):
            scalar = self.scalar(event, line)
            if event.anchor:
                self.anchors[event.anchor] = ("<<" if scalar is MERGE else scalar, 1)
            self.add(scalar, 1, line)
        elif isinstance(event, yaml_events.AliasEvent):
            self.aliases += 1
            if self.aliases > self.limits.aliases:
                self.fail(f"more than {self.limits.aliases} YAML aliases", line)
            if event.anchor not in self.anchors:
                self.fail(f"alias *{event.anchor} refers to no complete anchor", line)
            value, nodes = self.anchors[event.anchor]
            self.add(value, nodes, line, copy=True)

    def add(self, value: Any, nodes: int, line: int, *, copy: bool = False) -> None:
        """Put a finished value into the collection that holds it (or the document)."""
        total = nodes + sum(n.nodes for n in self.stack) + (self.root[1] if self.root else 0)
        if total > self.limits.nodes:
            self.fail(f"YAML aliases expand to more than {self.limits.nodes} nodes", line)
        if copy:
            value = _copy(value)
        parent = self.stack[-1] if self.stack else None
        if parent is None or isinstance(parent.value, list) or parent.has_key:  # a value, not a key
            if value is MERGE:
                value = "<<"
            elif isinstance(value, float):
                if math.isnan(value) or math.isinf(value):
                    self.fail(".inf and .nan cannot be sent as JSON (kubectl refuses them too)", line)
                value = _number(value)
        if parent is None:
            self.root = (value, nodes)
            return
        parent.nodes += nodes
        if isinstance(parent.value, list):
            parent.value.append(value)
        elif not parent.has_key:
            parent.key, parent.has_key = value, True
        else:
            parent.has_key = False
            if parent.key is MERGE:
                if copy and not isinstance(value, dict):
                    self.fail("a merge key (<<) with an alias needs an alias of a mapping", line)
                self.merge(parent.value, value, line)
            else:
                key = self.key(parent.key, line)
                if key in parent.keys:
                    self.fail(f'duplicate key "{key}"', line)
                parent.keys.add(key)
                parent.value[key] = value

    def merge(self, target: dict[str, Any], value: Any, line: int) -> None:
        """go-yaml v2's merge: keys merged overwrite earlier ones, and of a list of
        mappings the first wins."""
        sources = value if isinstance(value, list) else [value]
        for source in reversed(sources):
            if not isinstance(source, dict):
                self.fail("a merge key (<<) needs a mapping or a list of mappings", line)
            target.update(source)

    def key(self, key: Any, line: int) -> str:
        """A map key as text, as sigs.k8s.io/yaml turns it into a JSON key."""
        if isinstance(key, str):
            return key
        if isinstance(key, bool):
            return "true" if key else "false"
        if isinstance(key, int):
            return str(key)
        if isinstance(key, float):
            return _go_float32(key)
        what = "null" if key is None else "a mapping or sequence"
        self.fail(f"a map key that is {what} cannot be converted to JSON", line)

    def scalar(self, event: yaml_events.ScalarEvent, line: int) -> Any:
        """A scalar as go-yaml v2 decodes it into an interface{} (see `_resolve`)."""
        tag, text = event.tag, event.value
        if event.style == '"' and _SURROGATE.search(text):
            self.fail("invalid Unicode escape (a lone surrogate)", line)
        if tag is None:
            if not event.implicit[0]:  # quoted
                return text
            if text == "<<":
                return MERGE  # a key; as a value it is the text again (see add)
            return _resolve(text)
        if not tag.startswith(TAG) or tag == TAG + "str":
            return text  # `!`, local and unknown tags keep the text, as in go-yaml v2
        kind = tag[len(TAG) :]
        if kind == "binary":
            try:
                return base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True).decode(
                    "utf-8", "replace"
                )
            except ValueError:
                self.fail("a !!binary value is not valid base64", line)
        if kind == "merge" and text == "<<":
            return MERGE
        if kind not in _TAGGED:
            return text  # !!timestamp and unknown tags keep the text
        value = _resolve(text)
        if not _TAGGED[kind](value):
            self.fail(f"a !!{kind} value that is not a valid {kind}", line)
        return float(value) if kind == "float" else value

    def fail(self, message: str, line: int) -> NoReturn:
        where = f" at line {line}" if line else ""
        raise ReadError(max(self.index, 1), f"{message}{where}")


def _resolve(text: str) -> Any:
    """A plain scalar as go-yaml v2 resolves it (resolve.go): constants, then integers
    (Go's base prefixes, a leading 0 for octal, underscores ignored), then floats;
    anything else, timestamps and sexagesimals included, is a string."""
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if text[0] not in _NUMBER_START:
        return text
    if text[0] == ".":
        return _go_float(text) if _GO_FLOAT.fullmatch(text) else text
    plain = text.replace("_", "")
    if _GO_INT.fullmatch(plain):
        number = _go_int(plain.lstrip("+-"))
        number = -number if plain[0] == "-" else number
        if -INT64 <= number < INT64:
            return number
        if plain[0] not in "+-" and number < 2 * INT64:
            return float(number)  # a uint64 reaches the API server as a float, through JSON
    if _GO_FLOAT.fullmatch(plain):
        return _go_float(plain, text)
    return text


def _go_float(digits: str, text: str | None = None) -> float | str:
    """strconv.ParseFloat: out of range (1e400) is an error, so go-yaml keeps the text."""
    value = float(digits)
    return (text or digits) if math.isinf(value) else value


def _go_int(digits: str) -> int:
    """Unsigned digits as strconv.ParseInt(s, 0, 64) reads them: 0x, 0o, 0b or a leading 0."""
    if len(digits) > 1 and digits[0] == "0":
        prefix = digits[1].lower()
        if prefix in _BASES:
            return int(digits[2:], _BASES[prefix])
        return int(digits, 8)
    return int(digits)


def _number(value: float) -> int | float:
    """A float as it comes back from JSON: Go writes it with its shortest digits, and a
    whole number written that way that fits int64 is read back as an integer."""
    if value.is_integer() and abs(value) < 1e21:
        whole = int(decimal.Decimal(repr(value)))
        if -INT64 <= whole < INT64:
            return whole
    return value


def _go_float32(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32): how a float map key becomes text."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    single = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        text = f"{single:.{digits - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, exponent = text.split("e")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    power = int(exponent)
    if power < -4 or power >= 6:
        return f"{mantissa}e{power:+03d}"
    fixed = format(decimal.Decimal(text), "f")
    return fixed.rstrip("0").rstrip(".") if "." in fixed else fixed


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _c_events(text: str) -> Iterator[yaml_events.Event]:
    parser = cyaml.CParser(text)  # type: ignore[attr-defined]  # defined in the C extension
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


def _describe(error: YAMLError) -> str:
    """A parser error as problem and position, without quoting the file (it may hold secrets)."""
    if isinstance(error, MarkedYAMLError):
        problem = str(error.problem or error.context or "invalid YAML")
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"invalid YAML: {problem}{where}"
    return f"invalid YAML: {type(error).__name__}"
