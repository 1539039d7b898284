"""Render: manifests from a git tree, with limits, symlink rules and precise errors."""

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from pullsync import render

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: '1'}}\n"


def commit(tmp_path: Path, files: dict[str, str], links: dict[str, str] | None = None) -> tuple[pygit2.Repository, str]:
    work = tmp_path / "work"
    for name, content in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(content)
    for name, target in (links or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, work / name)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=work, env=env, check=True)
    repo = pygit2.Repository(str(work))
    return repo, str(repo.head.target)


def names(docs: list[render.Document]) -> list[str]:
    return [d.obj["metadata"]["name"] for d in docs]


def run(
    tmp_path: Path, files: dict[str, str], path: str = ".", links: dict[str, str] | None = None, **limits: int
) -> list[render.Document]:
    repo, sha = commit(tmp_path, files, links)
    return render.render(repo, sha, path, sync_name="s", sync_namespace="ns", limits=render.Limits(**limits))


def test_files_are_read_recursively_in_path_order_with_owner_labels(tmp_path: Path) -> None:
    docs = run(
        tmp_path,
        {
            "deploy/b.yaml": CM.format(name="b") + "---\n---\n" + CM.format(name="b2"),
            "deploy/a/z.yml": CM.format(name="az"),
            "deploy/c.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}',
            "deploy/notes.txt": "ignored",
            "elsewhere.yaml": CM.format(name="outside"),
        },
        path="./deploy",
    )
    assert names(docs) == ["az", "b", "b2", "c"]
    assert [d.index for d in docs] == [1, 1, 3, 1]
    assert docs[0].obj["metadata"]["labels"] == {"pullsync.dev/name": "s", "pullsync.dev/namespace": "ns"}


def test_list_kinds_are_expanded(tmp_path: Path) -> None:
    items = "apiVersion: v1\nkind: List\nitems:\n- " + CM.format(name="x").replace("\n", "\n  ") + "\n"
    assert names(run(tmp_path, {"l.yaml": items})) == ["x"]


def test_symlinks_inside_the_repository_are_followed(tmp_path: Path) -> None:
    docs = run(
        tmp_path, {"shared/cm.yaml": CM.format(name="shared")}, path="deploy", links={"deploy/common": "../shared"}
    )
    assert names(docs) == ["shared"]


@pytest.mark.parametrize(
    ("case", "target", "path"),
    [
        ("to an absolute path", "/var/run/secrets/kubernetes.io/serviceaccount/token", "."),
        ("to the parent of the repository", "../..", "."),
    ],
)
def test_symlinks_leaving_the_repository_are_refused(tmp_path: Path, case: str, target: str, path: str) -> None:
    with pytest.raises(render.RenderError, match="leaves the repository"):
        run(tmp_path, {"ok.yaml": CM.format(name="ok")}, path=path, links={"evil.yaml": target})


@pytest.mark.parametrize("path", ["../../etc", "/etc", "a/../../b"])
def test_a_path_leaving_the_repository_is_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(render.RenderError, match=r"spec.path .* leaves the repository"):
        run(tmp_path, {"ok.yaml": CM.format(name="ok")}, path=path)


@pytest.mark.parametrize(
    ("case", "content", "limits", "words"),
    [
        ("a large file", CM.format(name="x") + "#" * 2000, {"file_bytes": 1000}, "over the limit of 1000 per file"),
        (
            "too many objects",
            "---\n".join(CM.format(name=f"c{i}") for i in range(6)),
            {"objects": 5},
            "more than 5 objects",
        ),
        ("deep nesting", "a: " + "[" * 50 + "]" * 50 + "\n", {"depth": 20}, "nesting deeper than 20"),
        (
            "many aliases",
            "a: &x [1]\n" + "".join(f"b{i}: *x\n" for i in range(10)),
            {"aliases": 5},
            "more than 5 YAML aliases",
        ),
    ],
)
def test_limits_fail_with_a_clear_message(
    tmp_path: Path, case: str, content: str, limits: dict[str, int], words: str
) -> None:
    with pytest.raises(render.RenderError, match=words):
        run(tmp_path, {"f.yaml": content}, **limits)


def test_billion_laughs_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    with pytest.raises(render.RenderError, match="YAML aliases"):
        run(tmp_path, {"lol.yaml": "\n".join(lines) + "\n"})


@pytest.mark.parametrize(
    ("case", "content", "words"),
    [
        ("a python tag", "x: !!python/object/apply:os.system ['id']\n", "could not determine a constructor"),
        (
            "duplicate keys",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: secret-one\n  k: secret-two\n",
            'duplicate key "k"',
        ),
        ("not a mapping", "- a\n- b\n", "expected a Kubernetes object"),
        ("no kind", "apiVersion: v1\nmetadata: {name: a}\n", "missing kind"),
    ],
)
@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure Python"])
def test_bad_documents_are_named_without_quoting_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, content: str, words: str, libyaml: bool
) -> None:
    monkeypatch.setattr(render, "LIBYAML", libyaml and render.LIBYAML)
    with pytest.raises(render.RenderError) as e:
        run(tmp_path, {"ok.yaml": CM.format(name="ok"), "z/bad.yaml": CM.format(name="first") + "---\n" + content})
    assert "z/bad.yaml (document 2)" in str(e.value)
    assert words in str(e.value)
    assert "secret-one" not in str(e.value)
    assert "secret-two" not in str(e.value)
