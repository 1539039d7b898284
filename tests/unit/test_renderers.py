"""Render through kustomize and helm (the real tools, installed with pullsync): what they
build from a commit, parity with the tools run by hand, and every refusal of the sandbox
(outside the repository, remote, plugins, Helm inflation, time, memory, output,
environment)."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from pullsync import api, cli
from pullsync.render import build, documents, kubeyaml, sandbox, trees
from support.git import Repo
from support.remote import recording_server

EXAMPLES = Path(__file__).parents[2] / "examples"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: '1'}}\n"
BASE = {
    "base/kustomization.yaml": "resources: [cm.yaml]\nconfigMapGenerator:\n- name: app\n  literals: [greeting=hello]\n",
    "base/cm.yaml": CM.format(name="plain"),
}
CHART = {
    "chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "chart/values.yaml": "greeting: hi\nreplicas: 1\n",
    "chart/crds/crd.yaml": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: webs.example.dev}\n"
        "spec:\n  group: example.dev\n  names: {kind: Web, plural: webs}\n  scope: Namespaced\n"
        "  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n"
    ),
    "chart/templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "  namespace: {{ .Release.Namespace }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n"
        "  replicas: {{ .Values.replicas | quote }}\n"
    ),
    "chart/templates/tests/test.yaml": (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n"
        "  annotations: {helm.sh/hook: test}\nspec: {containers: [{name: t, image: busybox}]}\n"
    ),
    "values/prod.yaml": "replicas: 3\ngreeting: prod\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo.git")


def render(repo: Repo, sha: str, path: str, **kwargs: Any) -> list[documents.Document]:
    tree = trees.GitTree(pygit2.Repository(str(repo.bare)), sha)
    return build.render(tree, path, sync_name="web", sync_namespace="team", **kwargs)


def objects(docs: list[documents.Document] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects without pullsync's owner labels (as the tool printed them)."""
    found = [d.obj if isinstance(d, documents.Document) else d for d in docs]
    for obj in found:
        labels = obj["metadata"]["labels"]
        for label in api.owner_labels("web", "team"):
            del labels[label]
        if not labels:
            del obj["metadata"]["labels"]
    return found


def tool(*args: str, cwd: Path) -> list[dict[str, Any]]:
    out = subprocess.run([sandbox.find(args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, check=True)
    return [value for _, value in kubeyaml.documents(out.stdout) if value]


def test_an_overlay_builds_as_kubectl_kustomize_builds_it(repo: Repo) -> None:
    overlay = "resources: [../../base]\nnamePrefix: prod-\nconfigMapGenerator:\n"
    overlay += "- {name: app, behavior: merge, literals: [level=debug]}\n"
    sha = repo.commit({**BASE, "overlays/prod/kustomization.yaml": overlay})
    docs = render(repo, sha, "./overlays/prod")
    assert all(d.obj["metadata"]["labels"] == api.owner_labels("web", "team") for d in docs)
    assert docs[0].where == "overlays/prod/kustomization.yaml (kustomize build, document 1)"
    built = objects(docs)
    assert built == tool("kubectl", "kustomize", "overlays/prod", cwd=repo.work)
    generated = next(o for o in built if o["metadata"]["name"].startswith("prod-app-"))
    assert generated["data"] == {"greeting": "hello", "level": "debug"}


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("../../../outside", "resources entry '../../../outside' is outside the repository"),
        ("/etc", "resources entry '/etc' is outside the repository"),
        ("out", "resources entry 'out': overlays/prod/out: symbolic link to '/etc' leaves the repository"),
        ("https://example.com/app.yaml", "resources entry 'https://example.com/app.yaml' is remote; remote bases"),
        ("github.com/org/repo//x?ref=v1", "resources entry 'github.com/org/repo//x?ref=v1' is not in the repository"),
        ("github.com/org/repo/x", "resources entry 'github.com/org/repo/x' is not in the repository; remote"),
        ("nothere.yaml", "resources entry 'nothere.yaml' does not exist in the repository"),
    ],
)
def test_a_kustomization_reaching_outside_the_repository_is_refused_naming_the_entry(
    repo: Repo, entry: str, words: str
) -> None:
    files = {**BASE, "overlays/prod/kustomization.yaml": f"resources: [../../base, {entry}]\n"}
    sha = repo.commit(files, links={"overlays/prod/out": "/etc"})
    with pytest.raises(documents.RenderError) as e:
        render(repo, sha, "overlays/prod")
    assert str(e.value).startswith(f"overlays/prod/kustomization.yaml: {words}")


@pytest.mark.parametrize(
    "field",
    [
        "patches: [{path: ../../../secret.yaml}]",
        "configMapGenerator: [{name: x, files: [key=../../../../etc/passwd]}]",
        "secretGenerator: [{name: x, envs: [/etc/environment]}]",
        "components: [../../../component]",
    ],
)
def test_every_path_field_of_a_kustomization_is_checked(repo: Repo, field: str) -> None:
    sha = repo.commit({**BASE, "overlays/prod/kustomization.yaml": f"resources: [../../base]\n{field}\n"})
    with pytest.raises(documents.RenderError, match="is outside the repository"):
        render(repo, sha, "overlays/prod")


def test_a_base_reached_through_another_base_is_checked_too(repo: Repo) -> None:
    files = {**BASE, "base/kustomization.yaml": "resources: [cm.yaml, ../../elsewhere]\n"}
    sha = repo.commit({**files, "overlays/prod/kustomization.yaml": "resources: [../../base]\n"})
    with pytest.raises(documents.RenderError) as e:
        render(repo, sha, "overlays/prod")
    assert str(e.value).startswith("base/kustomization.yaml: resources entry '../../elsewhere' is outside")


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    with recording_server(CM.format(name="remote").encode()) as server:
        yield server


def test_a_remote_resource_gets_no_request_unless_remote_bases_are_allowed(
    repo: Repo, web_server: tuple[str, list[str]]
) -> None:
    url, requests = web_server
    sha = repo.commit({**BASE, "app/kustomization.yaml": f"resources: [../base, {url}/app.yaml]\n"})
    with pytest.raises(documents.RenderError, match="is remote; remote bases and resources are refused"):
        render(repo, sha, "app")
    assert requests == []
    docs = render(repo, sha, "app", allow_remote_bases=True)  # the same build, allowed: it is fetched
    assert requests == ["/app.yaml"]
    assert "remote" in [d.obj["metadata"]["name"] for d in docs]


def test_helm_inflation_and_plugins_never_run(repo: Repo, tmp_path: Path) -> None:
    marker = tmp_path / "plugin-ran"
    plugin = (
        "apiVersion: example.com/v1\nkind: Touch\nmetadata:\n  name: t\n  annotations:\n"
        f"    config.kubernetes.io/function: |\n      exec: {{path: /usr/bin/touch, args: [{marker}]}}\n"
    )
    helm_chart = "helmCharts: [{name: redis, repo: https://charts.example.com, version: 1.0.0}]\n"
    sha = repo.commit(
        {
            **BASE,
            "inflate/kustomization.yaml": helm_chart,
            "plugin/kustomization.yaml": "resources: [../base]\ngenerators: [touch.yaml]\n",
            "plugin/touch.yaml": plugin,
        }
    )
    with pytest.raises(documents.RenderError, match="helmCharts: kustomize's Helm inflation never runs in pullsync"):
        render(repo, sha, "inflate")
    with pytest.raises(documents.RenderError, match=r"kustomize build failed: .*external plugins disabled"):
        render(repo, sha, "plugin")
    assert not marker.exists()


def test_a_kustomize_error_names_repository_paths_only(repo: Repo) -> None:
    sha = repo.commit({**BASE, "app/kustomization.yaml": "resources: [../base]\npatches: [{path: nope.yaml}]\n"})
    with pytest.raises(documents.RenderError) as e:
        render(repo, sha, "app")
    message = str(e.value)
    assert message.startswith("kustomize build failed: ")
    assert "app/nope.yaml" in message
    assert "pullsync-render" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        ({"render_seconds": 0.001}, "kustomize build ran longer than the limit of 0.001s and was stopped"),
        ({"render_memory": 40 * 1024 * 1024}, "kustomize build ran out of its memory limit of 40 MiB"),
        ({"total_bytes": 1000}, "kustomize build: the output exceeds the limit of 1000 bytes"),
    ],
)
def test_a_renderer_over_a_limit_is_stopped_with_a_clear_error(repo: Repo, limits: dict[str, Any], words: str) -> None:
    label = "labels: [{pairs: {app.kubernetes.io/part-of: a-label-that-every-object-gets-so-the-output-grows}}]\n"
    many = "".join(f"---\n{CM.format(name=f'cm-{i}')}" for i in range(10))
    sha = repo.commit({"base/kustomization.yaml": "resources: [cms.yaml]\n" + label, "base/cms.yaml": many})
    with pytest.raises(documents.RenderError, match=words):
        render(repo, sha, "base", limits=documents.Limits(**limits))


def test_a_renderer_gets_no_credentials_and_no_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pass@proxy:3128")
    work = tmp_path / "w"
    work.mkdir()
    with sandbox.Workspace(trees.DirTree(work), rules=_no_rules(), limits=documents.Limits()) as workspace:
        printed = workspace.run("env", [], what="env", network=False).decode()
        home = workspace.dir
    env = dict(line.split("=", 1) for line in printed.splitlines())
    assert "s3cr3t-value" not in printed
    assert "KUBERNETES_SERVICE_HOST" not in env
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == sandbox.NOWHERE
    assert env["HOME"].startswith(str(home))
    assert env["PATH"] == str(home / "no-tools")  # no git: nothing to clone with
    assert not home.exists()  # the copy is gone once the render is done


def _no_rules() -> Any:
    from pullsync.render import ignore

    return ignore.Rules()


def test_a_chart_templates_as_helm_template_does_with_values_files_then_inline_values(repo: Repo) -> None:
    sha = repo.commit(CHART)
    helm = api.HelmSpec.parse(
        {"releaseName": "site", "valuesFiles": ["../values/prod.yaml"], "values": {"replicas": 5}}
    )
    docs = render(repo, sha, "chart", helm_spec=helm, target_namespace="apps")
    assert [d.where for d in docs] == [
        "chart/crds/crd.yaml (helm template, document 1)",
        "chart/templates/cm.yaml (helm template, document 1)",
    ]  # the test hook is left out
    inline = repo.work / "inline.json"
    inline.write_text(json.dumps({"replicas": 5}))
    expected = tool(
        *("helm", "template", "site", "chart", "--namespace", "apps", "--include-crds", "--skip-tests"),
        *("--values", "values/prod.yaml", "--values", str(inline)),
        cwd=repo.work,
    )
    assert objects(docs) == expected
    assert expected[1]["data"] == {"greeting": "prod", "replicas": "5"}
    assert expected[1]["metadata"]["namespace"] == "apps"


def test_a_chart_defaults_to_the_sync_name_and_namespace(repo: Repo) -> None:
    docs = render(repo, repo.commit(CHART), "chart")
    assert docs[1].obj["metadata"]["name"] == "web-cm"
    assert docs[1].obj["metadata"]["namespace"] == "team"


@pytest.mark.parametrize(
    ("files", "helm", "words"),
    [
        ({}, {"valuesFiles": ["../../outside.yaml"]}, "spec.helm.valuesFiles entry '../../outside.yaml' leaves the"),
        ({}, {"valuesFiles": ["missing.yaml"]}, "spec.helm.valuesFiles entry 'missing.yaml': no such file"),
        (
            {"chart/Chart.yaml": CHART["chart/Chart.yaml"] + "dependencies: [{name: redis, version: 1.0.0}]\n"},
            {},
            "helm template failed: .*missing in charts/ directory: redis",
        ),
        ({"chart/templates/bad.yaml": "a: {{ .Values.nope.deeper }}\n"}, {}, "helm template failed: .*bad.yaml"),
    ],
)
def test_a_chart_that_cannot_be_templated_fails_naming_why(
    repo: Repo, files: dict[str, str], helm: dict[str, Any], words: str
) -> None:
    sha = repo.commit({**CHART, **files})
    with pytest.raises(documents.RenderError, match=words) as failed:
        render(repo, sha, "chart", helm_spec=api.HelmSpec.parse(helm))
    assert "--debug" not in str(failed.value)  # helm's advice names a flag no Sync can pass


def test_helm_values_for_a_path_without_a_chart_are_an_error(repo: Repo) -> None:
    sha = repo.commit(BASE)
    with pytest.raises(documents.RenderError, match=r"spec\.helm is set, but path 'base' holds no Chart\.yaml"):
        render(repo, sha, "base", helm_spec=api.HelmSpec())


def test_a_commit_that_changes_nothing_a_render_read_is_known_unchanged(repo: Repo) -> None:
    overlays = {"overlays/prod/kustomization.yaml": "resources: [../../base]\n", "overlays/dev/a.yaml": "x"}
    first = repo.commit({**BASE, **overlays})
    recorded = trees.Recorded(trees.GitTree(pygit2.Repository(str(repo.bare)), first))
    build.render(recorded, "overlays/prod", sync_name="web", sync_namespace="team")
    elsewhere = repo.commit({"overlays/dev/a.yaml": "y"})  # beside the overlay: not read
    in_base = repo.commit({"base/cm.yaml": CM.format(name="renamed")})
    tree = pygit2.Repository(str(repo.bare))
    assert trees.GitTree(tree, elsewhere).unchanged(recorded.observed)
    assert not trees.GitTree(tree, in_base).unchanged(recorded.observed)


def build_command(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert cli.main(["build", *args, "-o", "json", "--sync", "web", "-n", "team"]) == 0
    return objects(json.loads(capsys.readouterr().out)["items"])


@pytest.mark.parametrize("directory", ["base", "overlays/staging", "overlays/production"])
def test_pullsync_build_of_the_kustomize_examples_equals_kubectl_kustomize(
    capsys: pytest.CaptureFixture[str], directory: str
) -> None:
    path = EXAMPLES / "kustomize" / directory
    built = build_command(capsys, str(path))
    assert built == tool("kubectl", "kustomize", str(path), cwd=EXAMPLES)
    assert len(built) >= 3


@pytest.mark.parametrize("values", ["values-staging.yaml", "values-production.yaml"])
def test_pullsync_build_of_the_helm_example_equals_helm_template(
    capsys: pytest.CaptureFixture[str], values: str
) -> None:
    chart, values_file = EXAMPLES / "helm" / "web", str(EXAMPLES / "helm" / values)
    built = build_command(capsys, str(chart), "--helm-values", values_file)
    template = ("helm", "template", "web", str(chart), "--namespace", "team", "--include-crds", "--skip-tests")
    assert built == tool(*template, "--values", values_file, cwd=EXAMPLES)
    assert built[0]["kind"] == "CustomResourceDefinition"
