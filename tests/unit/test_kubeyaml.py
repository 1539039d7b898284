"""kubeyaml: YAML read as kubectl reads it (the same table is checked against kubectl
itself in tests/e2e/test_kubectl_reading.py), with refusals and limits."""

from typing import Any

import pytest

from pullsync.render import kubeyaml
from support import yamlcases


@pytest.fixture(params=[True, False], ids=["libyaml", "pure Python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param and not kubeyaml.LIBYAML:
        pytest.fail("libyaml is missing: install ruamel.yaml[libyaml]")
    monkeypatch.setattr(kubeyaml, "LIBYAML", request.param)


def read(text: str, **limits: int) -> list[Any]:
    return [value for _, value in kubeyaml.documents(text, kubeyaml.ReadLimits(**limits))]


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize("case", list(yamlcases.CASES))
def test_scalars_read_as_kubectl_reads_them(case: str) -> None:
    snippet, expected = yamlcases.CASES[case]
    (obj,) = read(yamlcases.configmap("x", snippet))
    assert obj["values"] == expected
    assert [type(v) for v in obj["values"].values()] == [type(v) for v in expected.values()]


@pytest.mark.usefixtures("parser")
def test_an_alias_is_a_copy_so_changing_one_place_changes_no_other() -> None:
    (obj,) = read("metadata:\n  labels: &l {app: web}\nspec:\n  selector: *l\n  template: {labels: *l}\n")
    obj["metadata"]["labels"]["pullsync.dev/name"] = "s"
    assert obj["spec"]["selector"] == {"app": "web"}
    assert obj["spec"]["template"]["labels"] == {"app": "web"}


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize(
    ("case", "text", "words"),
    [
        ("a duplicate key", "a: 1\nb: 2\na: 3\n", 'duplicate key "a" at line 3'),
        ("keys that are the same after conversion", "on: 1\ntrue: 2\n", 'duplicate key "true"'),
        ("infinity", "a: .inf\n", ".inf and .nan cannot be sent as JSON"),
        ("not a number", "a: [.nan]\n", ".inf and .nan cannot be sent as JSON"),
        ("a null key", "~: 1\n", "a map key that is null"),
        ("an alias before its anchor", "a: *x\nb: &x 1\n", "alias *x refers to no complete anchor"),
        ("a bad !!int", "a: !!int abc\n", "a !!int value that is not a valid int"),
        ("bad base64", "a: !!binary '***'\n", "not valid base64"),
        ("invalid YAML", "a: [1\n", "invalid YAML"),
    ],
)
def test_what_cannot_be_sent_is_refused_with_the_line(case: str, text: str, words: str) -> None:
    with pytest.raises(kubeyaml.ReadError, match=words.replace("*", r"\*").replace(".", r"\.")):
        read(text)


@pytest.mark.usefixtures("parser")
def test_merged_keys_may_be_set_again_explicitly() -> None:
    assert read("a: &a {x: 1}\nb: {<<: *a, x: 2}\n") == [{"a": {"x": 1}, "b": {"x": 2}}]


@pytest.mark.usefixtures("parser")
def test_errors_name_the_document_and_empty_documents_are_skipped() -> None:
    assert [i for i, _ in kubeyaml.documents("a: 1\n---\n---\n# only a comment\n---\nb: 2\n")] == [1, 4]
    with pytest.raises(kubeyaml.ReadError) as e:
        read("a: 1\n---\nb: 2\n---\nc: [\n")
    assert e.value.index == 3


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize(
    ("case", "text", "limits", "words"),
    [
        ("deep nesting", "a: " + "[" * 30 + "]" * 30 + "\n", {"depth": 20}, "nesting deeper than 20"),
        ("many aliases", "a: &x 1\n" + "".join(f"b{i}: *x\n" for i in range(6)), {"aliases": 5}, "more than 5"),
        (
            "a billion laughs",
            "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9)),
            {},
            "expand to more than 1000000 nodes",
        ),
    ],
)
def test_limits_are_checked_while_reading(case: str, text: str, limits: dict[str, int], words: str) -> None:
    with pytest.raises(kubeyaml.ReadError, match=words):
        read(text, **limits)


def test_a_json_stream_is_read_as_json_and_flow_yaml_falls_back() -> None:
    assert read('{"a": 1.0, "b": "\\/"}\n {"c": [1e3]}') == [{"a": 1, "b": "/"}, {"c": [1000]}]
    assert read("{a: yes, b: 0644}") == [{"a": True, "b": 420}]
    with pytest.raises(kubeyaml.ReadError, match='duplicate key "a"'):
        read('{"a": 1, "a": 2}')


def test_dump_quotes_every_string_kubectl_would_read_as_something_else() -> None:
    strings = ["y", "n", "0644", "on", "~", "", "1e3", ".5", "0x1F", "=", "<<", "2024-01-01", "1:30", "a: b", "x\ny\n"]
    value = {"strings": strings, "keys": {"on": 1, "y": "Y", "0644": True}, "numbers": [420, 0.5, None, False]}
    text = kubeyaml.dump([value, {"second": "doc"}])
    assert read(text) == [value, {"second": "doc"}]


def test_a_file_of_many_tiny_documents_stops_at_the_limit_before_building_them() -> None:
    with pytest.raises(kubeyaml.ReadError, match="more than 5 objects") as e:
        read("---\na: 1\n" * 1000, documents=5)
    assert e.value.index == 6


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize(
    ("case", "text", "expected"),
    [
        ("a float out of range stays text", "a: 1e400\nb: -1e400\n", {"a": "1e400", "b": "-1e400"}),
        ("an anchored << used as a key through an alias", "k: &m <<\n*m : {a: 1}\n", {"k": "<<", "<<": {"a": 1}}),
    ],
)
def test_edges_read_as_kubectl_reads_them(case: str, text: str, expected: dict[str, Any]) -> None:
    assert read(text) == [expected]


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize(
    ("case", "text", "words"),
    [
        ("a lone surrogate", 'a: "\\ud800"\n', "lone surrogate"),
        ("a merge of an alias of a list", "s: &s [{a: 1}]\nm: {<<: *s}\n", "alias of a mapping"),
    ],
)
def test_edges_kubectl_refuses_are_refused(case: str, text: str, words: str) -> None:
    with pytest.raises(kubeyaml.ReadError, match=words):
        read(text)


def test_json_has_the_same_limits_and_numbers_as_yaml() -> None:
    with pytest.raises(kubeyaml.ReadError, match="more than 5 objects"):
        read("{}\n" * 6, documents=5)
    with pytest.raises(kubeyaml.ReadError, match="nesting deeper than 3"):
        read('{"a": {"b": {"c": {"d": 1}}}}', depth=3)
    assert read('{"a": 9223372036854775808, "b": 9223372036854775807}') == [
        {"a": 9.223372036854776e18, "b": 9223372036854775807}
    ]
