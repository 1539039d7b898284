"""YAML reading rules as kubectl applies them: each case is a snippet (the `values` of an
object) and what kubectl reads from it. The unit tests check pullsync's reader against
the expectation, the e2e tests check kubectl itself against the same table."""

from typing import Any

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "octal file modes": (
        "a: 0644\nb: 0400\nc: 0o755\nd: -0644\ne: 08\nf: 0\n",
        {"a": 420, "b": 256, "c": 493, "d": -420, "e": 8, "f": 0},
    ),
    "hex, binary, underscores and signs": (
        "a: 0x1F\nb: 0b101\nc: 1_000\nd: +12\ne: -0x10\n",
        {"a": 31, "b": 5, "c": 1000, "d": 12, "e": -16},
    ),
    "YAML 1.1 booleans": (
        "a: yes\nb: no\nc: on\nd: off\ne: y\nf: n\ng: Y\nh: True\ni: FALSE\nj: ON\nk: No\n",
        {"a": True, "b": False, "c": True, "d": False, "e": True, "f": False, "g": True, "h": True}
        | {"i": False, "j": True, "k": False},
    ),
    "nulls": ("a: ~\nb: null\nc:\nd: Null\n", {"a": None, "b": None, "c": None, "d": None}),
    "floats, whole ones as integers": (
        "a: 1.0\nb: 1e3\nc: .5\nd: 1.5e300\ne: 9.2e18\nf: -2.50\n",
        {"a": 1, "b": 1000, "c": 0.5, "d": 1.5e300, "e": 9200000000000000000, "f": -2.5},
    ),
    "integers past int64 become floats": (
        "a: 9223372036854775807\nb: 9223372036854775808\nc: -9223372036854775809\n",
        {"a": 9223372036854775807, "b": 9.223372036854776e18, "c": -9.223372036854776e18},
    ),
    "sexagesimal numbers stay strings": ("a: 1:30\nb: 190:20:30\n", {"a": "1:30", "b": "190:20:30"}),
    "timestamps stay strings": (
        "a: 2024-01-15\nb: 2001-12-14t21:59:43.10-05:00\nc: 2001-12-14 21:59:43.10\nd: !!timestamp 2024-01-15\n",
        {"a": "2024-01-15", "b": "2001-12-14t21:59:43.10-05:00", "c": "2001-12-14 21:59:43.10", "d": "2024-01-15"},
    ),
    "the YAML 1.1 value tag is a string": ("a: =\nb:\n- =\n- '!='\n- =~\n", {"a": "=", "b": ["=", "!=", "=~"]}),
    "merge keys merge as go-yaml v2 does": (
        "base: &b {p: 1, q: 1}\nm: {<<: *b, q: 2}\nk: {q: 0, <<: *b}\no: {<<: [{p: 1}, {p: 2, r: 3}]}\n",
        {"base": {"p": 1, "q": 1}, "m": {"p": 1, "q": 2}, "k": {"p": 1, "q": 1}, "o": {"p": 1, "r": 3}},
    ),
    "binary is decoded": ("a: !!binary aGVsbG8=\n", {"a": "hello"}),
    "explicit and unknown tags": (
        "a: !!str 0644\nb: !!int '12'\nc: !!float 1\nd: !Ref x\ne: !!python/object/apply:os.system [id]\nf: ! 12\n",
        {"a": "0644", "b": 12, "c": 1, "d": "x", "e": ["id"], "f": "12"},
    ),
    "keys become strings": (
        "on: 1\n1: 2\n1.5: 3\n1e6: 4\nn: 5\n2024-01-01: 6\n",
        {"true": 1, "1": 2, "1.5": 3, "1e+06": 4, "false": 5, "2024-01-01": 6},
    ),
    "quoted scalars are strings": ("a: '0644'\nb: \"yes\"\nc: '~'\n", {"a": "0644", "b": "yes", "c": "~"}),
    "colons inside flow collections": (
        "a: [nginx:1.19, 'x']\nb: {url: http://x:80/}\n",
        {"a": ["nginx:1.19", "x"], "b": {"url": "http://x:80/"}},
    ),
    "block scalars": (
        "a: |\n  line 1\n  line 2\nb: >-\n  folded\n  text\n",
        {"a": "line 1\nline 2\n", "b": "folded text"},
    ),
}


def configmap(name: str, values: str) -> str:
    """A ConfigMap carrying `values` in a field of its own (the API server would refuse
    non-strings in `data`; reading is what is tested)."""
    indented = "".join(f"  {line}\n" for line in values.splitlines())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\nvalues:\n{indented}"
