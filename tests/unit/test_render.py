"""Render: manifests from a git tree (and a directory, for `pullsync build`), with ignore
rules, limits, symlink rules and precise errors."""

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from pullsync.render import build, documents, kubeyaml, trees
from support import manifests as shapes

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


def names(docs: list[documents.Document]) -> list[str]:
    return [d.obj["metadata"]["name"] for d in docs]


def run(
    tmp_path: Path,
    files: dict[str, str],
    path: str = ".",
    links: dict[str, str] | None = None,
    ignore: str | None = None,
    **limits: int,
) -> list[documents.Document]:
    repo, sha = commit(tmp_path, files, links)
    tree = trees.GitTree(repo, sha)
    return build.render(
        tree, path, sync_name="s", sync_namespace="ns", ignore_rules=ignore, limits=documents.Limits(**limits)
    )


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
    with pytest.raises(documents.RenderError, match="leaves the repository"):
        run(tmp_path, {"ok.yaml": CM.format(name="ok")}, path=path, links={"evil.yaml": target})


@pytest.mark.parametrize("path", ["../../etc", "/etc", "a/../../b"])
def test_a_path_leaving_the_repository_is_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(documents.RenderError, match=r"spec.path .* leaves the repository"):
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
    with pytest.raises(documents.RenderError, match=words):
        run(tmp_path, {"f.yaml": content}, **limits)


def test_billion_laughs_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    with pytest.raises(documents.RenderError, match="YAML aliases"):
        run(tmp_path, {"lol.yaml": "\n".join(lines) + "\n"})


@pytest.mark.parametrize(
    ("case", "content", "words"),
    [
        ("invalid YAML", "x: [1\n", "invalid YAML"),
        (
            "duplicate keys",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: secret-one\n  k: secret-two\n",
            'duplicate key "k"',
        ),
        ("not a mapping", "- a\n- b\n", "not a Kubernetes object (a list, not a mapping)"),
        ("no kind", "apiVersion: v1\nmetadata: {name: a}\n", "missing kind"),
    ],
)
@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure Python"])
def test_bad_documents_are_named_without_quoting_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, content: str, words: str, libyaml: bool
) -> None:
    monkeypatch.setattr(kubeyaml, "LIBYAML", libyaml and kubeyaml.LIBYAML)
    with pytest.raises(documents.RenderError) as e:
        run(tmp_path, {"ok.yaml": CM.format(name="ok"), "z/bad.yaml": CM.format(name="first") + "---\n" + content})
    assert "z/bad.yaml (document 2)" in str(e.value)
    assert words in str(e.value)
    assert "secret-one" not in str(e.value)
    assert "secret-two" not in str(e.value)


def test_owner_labels_never_change_what_an_alias_points_at(tmp_path: Path) -> None:
    (doc,) = run(tmp_path, {"svc.yaml": shapes.ALIASED_SERVICE})
    assert doc.obj["metadata"]["labels"] == {"app": "web", "pullsync.dev/name": "s", "pullsync.dev/namespace": "ns"}
    assert doc.obj["spec"]["selector"] == {"app": "web"}


def test_empty_labels_and_annotations_are_read_as_kubectl_reads_them(tmp_path: Path) -> None:
    (doc,) = run(
        tmp_path, {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels:\n  annotations:\n"}
    )
    assert doc.obj["metadata"] == {
        "name": "a",
        "labels": {"pullsync.dev/name": "s", "pullsync.dev/namespace": "ns"},
        "annotations": None,
    }


def test_dates_and_file_modes_become_what_kubectl_sends(tmp_path: Path) -> None:
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  automountServiceAccountToken: no\n"
        "  volumes: [{name: s, secret: {secretName: s, defaultMode: 0400}}]\n"
    )
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  released: 2024-01-15\n"
    pod_doc, cm_doc = run(tmp_path, {"a.yaml": pod, "b.yaml": cm})
    assert pod_doc.obj["spec"]["automountServiceAccountToken"] is False
    assert pod_doc.obj["spec"]["volumes"][0]["secret"]["defaultMode"] == 256
    assert cm_doc.obj["data"] == {"released": "2024-01-15"}


@pytest.mark.parametrize(
    ("kind", "field", "value", "what"),
    [
        ("ConfigMap", "data", "on", "boolean"),
        ("ConfigMap", "data", "0644", "number"),
        ("Secret", "stringData", "no", "boolean"),
    ],
)
def test_configmap_and_secret_values_that_yaml_makes_non_strings_are_refused_with_a_hint(
    tmp_path: Path, kind: str, field: str, value: str, what: str
) -> None:
    doc = f"apiVersion: v1\nkind: {kind}\nmetadata: {{name: c}}\n{field}:\n  ok: 'x'\n  flag: {value}\n"
    with pytest.raises(documents.RenderError) as e:
        run(tmp_path, {"c.yaml": doc})
    assert str(e.value).startswith(f"c.yaml (document 1): {field}.flag is a {what}, not a string")
    assert "quote the value" in str(e.value)


def test_ignore_rules_come_from_defaults_sourceignore_files_and_spec_ignore(tmp_path: Path) -> None:
    files = {
        ".github/workflows/ci.yml": "on: push\njobs: {}\n",
        ".gitlab-ci.yml": "stages: [test]\n",
        ".sourceignore": "all-in-one/\n*.generated.yaml\n!keep.generated.yaml\n",
        "deploy/.sourceignore": "config/\n",
        "deploy/config/app.yaml": "logLevel: debug\n",
        "deploy/web.yaml": CM.format(name="web"),
        "deploy/x.generated.yaml": CM.format(name="generated"),
        "deploy/keep.generated.yaml": CM.format(name="kept"),
        "deploy/all-in-one/web.yaml": CM.format(name="web"),
        "deploy/tmp/scratch.yaml": CM.format(name="scratch"),
    }
    assert names(run(tmp_path, files, path="deploy", ignore="tmp/\n")) == ["kept", "web"]


def test_spec_ignore_can_re_include_what_a_default_leaves_out(tmp_path: Path) -> None:
    files = {".github/cm.yaml": CM.format(name="gh"), "cm.yaml": CM.format(name="a")}
    assert names(run(tmp_path, files, ignore="!.github/\n")) == ["gh", "a"]


def test_a_file_that_is_not_a_kubernetes_object_says_how_to_ignore_it(tmp_path: Path) -> None:
    with pytest.raises(documents.RenderError) as e:
        run(tmp_path, {"app/settings.yaml": "logLevel: debug\n", "cm.yaml": CM.format(name="a")})
    assert str(e.value).startswith("app/settings.yaml (document 1): not a Kubernetes object (no apiVersion and kind)")
    assert ".sourceignore" in str(e.value)
    assert "spec.ignore" in str(e.value)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("kustomization.yaml", "a kustomization below spec.path; pullsync builds a kustomization only at spec.path"),
        ("Kustomization", "a kustomization below spec.path"),
        ("Chart.yaml", "a Helm chart below spec.path; pullsync templates a chart only at spec.path itself"),
    ],
)
def test_kustomize_and_helm_files_are_named_plainly_and_can_be_ignored(tmp_path: Path, name: str, words: str) -> None:
    files = {f"app/{name}": "apiVersion: v2\nname: web\nresources: [cm.yaml]\n", "app/cm.yaml": CM.format(name="a")}
    with pytest.raises(documents.RenderError) as e:
        run(tmp_path, files)
    assert str(e.value).startswith(f"app/{name}: {words}")
    assert names(run(tmp_path / "again", files, ignore=name)) == ["a"]


def test_a_symbolic_link_loop_is_refused(tmp_path: Path) -> None:
    with pytest.raises(documents.RenderError, match="symbolic link loop"):
        run(tmp_path, {"a/cm.yaml": CM.format(name="a")}, links={"a/again": "."})


def test_a_directory_renders_exactly_as_the_same_commit(tmp_path: Path) -> None:
    files = {
        ".sourceignore": "skip/\n",
        "deploy/a.yaml": CM.format(name="a") + "---\n" + shapes.ALIASED_SERVICE,
        "deploy/skip/b.yaml": "not: kubernetes\n",
        "shared/c.yaml": CM.format(name="c"),
    }
    links = {"deploy/shared": "../shared"}
    from_git = run(tmp_path, files, path="deploy", links=links)
    from_dir = build.render(trees.DirTree(tmp_path / "work"), "deploy", sync_name="s", sync_namespace="ns")
    assert [(d.path, d.index, d.obj) for d in from_dir] == [(d.path, d.index, d.obj) for d in from_git]
    assert names(from_dir) == ["a", "web", "c"]


def test_a_link_out_of_the_repository_is_skipped_only_when_its_name_shows_render_never_reads_it(
    tmp_path: Path,
) -> None:
    files = {"cm.yaml": CM.format(name="a")}
    assert names(run(tmp_path, files, links={"tool.sh": "/usr/bin/env", "README.md": "missing.md"})) == ["a"]
    with pytest.raises(documents.RenderError) as e:
        run(tmp_path / "again", files, links={"vendor": "/opt/vendor"})
    assert str(e.value).startswith("vendor: symbolic link to '/opt/vendor' leaves the repository")
    assert ".sourceignore" in str(e.value)
    assert names(run(tmp_path / "ignored", files, links={"vendor": "/opt/vendor"}, ignore="vendor\n")) == ["a"]


def test_a_checkout_renders_without_what_git_ignores_and_without_submodules(tmp_path: Path) -> None:
    files = {".gitignore": "local-*.yaml\n", "deploy/a.yaml": CM.format(name="a")}
    commit(tmp_path, files)
    work = tmp_path / "work"
    (work / "deploy" / "local-secret.yaml").write_text(CM.format(name="local"))
    (work / "deploy" / "vendored").mkdir()
    (work / "deploy" / "vendored" / ".git").write_text("gitdir: ../../.git/modules/vendored\n")
    (work / "deploy" / "vendored" / "b.yaml").write_text(CM.format(name="vendored"))
    (work / "deploy" / "new.yaml").write_text(CM.format(name="uncommitted"))
    docs = build.render(trees.DirTree(work), "deploy", sync_name="s", sync_namespace="ns")
    assert names(docs) == ["a", "uncommitted"]
