"""Publishing a plan to GitHub, Gitea, GitLab and a generic receiver, against a local fake
of their REST APIs with a real aiohttp client: the exact requests, one comment per marker
edited in place, only comments of the token's own user taken for ours, and errors that say
what failed (and what was sent) without the token."""

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

import pullsync
from pullsync import api
from pullsync.preview import comment, report
from pullsync.web import providers, webhook
from support.provider import BOT, FakeProvider

TOKEN = "s3cr3t-forge-token"
SHA = "4f1c2ab" + "9" * 33
REF = "refs/pull/12/head"
CONTEXT = "pullsync/team-a/prod-prs"


def a_plan(*, replicas: int = 3, errors: list[str] | None = None) -> report.Report:
    return report.Report(
        sync_namespace="team-a",
        sync_name="prod",
        revision=f"{REF}@sha1:{SHA}",
        changes=[
            report.Change(
                report.CREATE,
                "team-a_web__Service",
                "Service",
                "team-a",
                "web",
                "deploy/web.yaml#1",
                [{"op": "add", "path": "", "value": {"kind": "Service", "metadata": {"name": "web"}}}],
            ),
            report.Change(
                report.CHANGE,
                "team-a_web_apps_Deployment",
                "Deployment",
                "team-a",
                "web",
                "deploy/web.yaml#0",
                [{"op": "replace", "path": "/spec/replicas", "value": replicas}],
            ),
            report.Change(report.PRUNE, "team-a_old__ConfigMap", "ConfigMap", "team-a", "old", "", []),
        ],
        unchanged=5,
        errors=errors or [],
    )


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(TOKEN) as server:
        yield server


async def publish(target: providers.Target, *, ref: str = REF, plan: report.Report | None = None, **kw: Any) -> None:
    async with aiohttp.ClientSession() as session:
        await providers.publish(session, target, context=CONTEXT, ref=ref, commit=SHA, report=plan or a_plan(), **kw)


def github(fake: FakeProvider, token: str | None = TOKEN) -> providers.Target:
    return providers.Target("github", fake.url, "org/deploy-config", token)


# pull request refs


@pytest.mark.parametrize(
    ("ref", "number"),
    [
        ("refs/pull/12/head", 12),
        ("refs/pull/7/merge", 7),
        ("refs/merge-requests/3/head", 3),
        ("refs/merge-requests/3/merge", 3),
        ("refs/heads/main", None),
        ("refs/heads/pull/12/head", None),
        ("refs/pull/0/head", None),
        ("refs/pull/x/head", None),
    ],
)
def test_the_pull_request_number_is_read_from_pull_and_merge_request_refs_only(ref: str, number: int | None) -> None:
    assert providers.pull_request(ref) == number


def test_a_target_never_shows_its_token_and_refuses_an_unknown_type() -> None:
    assert TOKEN not in repr(providers.Target("github", "https://api.github.com", "org/repo", TOKEN))
    with pytest.raises(ValueError, match="unknown provider type"):
        providers.Target("bitbucket", "https://x", "org/repo", TOKEN)


def test_the_provider_types_are_those_of_the_preview_api() -> None:
    for kind in api.PROVIDER_ADDRESSES:
        assert providers.Target(kind, "https://x.example.com", "org/repo").type == kind
    assert set(providers._API_PREFIX) == set(api.PROVIDER_ADDRESSES)


def test_a_publish_error_says_what_was_sent() -> None:
    assert providers.PublishError("boom").sent == frozenset()
    error = providers.PublishError("boom", sent=frozenset({"status"}))
    assert (str(error), error.sent) == ("boom", {"status"})


def test_the_api_prefix_of_gitea_and_gitlab_is_added_once() -> None:
    assert providers.Target("gitea", "https://gitea.example.com/", "o/r").base == "https://gitea.example.com/api/v1"
    assert providers.Target("gitea", "https://g.example.com/api/v1", "o/r").base == "https://g.example.com/api/v1"
    assert providers.Target("gitlab", "https://gitlab.example.com", "o/r").base == "https://gitlab.example.com/api/v4"
    assert providers.Target("github", "https://api.github.com", "o/r").base == "https://api.github.com"


# GitHub


async def test_github_gets_a_commit_status_and_one_new_comment_with_the_exact_requests(fake: FakeProvider) -> None:
    await publish(github(fake))

    calls = fake.calls
    assert [(c.method, c.path, c.query) for c in calls] == [
        ("POST", f"/repos/org/deploy-config/statuses/{SHA}", {}),
        ("GET", "/user", {}),
        ("GET", "/repos/org/deploy-config/issues/12/comments", {"per_page": "100", "page": "1"}),
        ("POST", "/repos/org/deploy-config/issues/12/comments", {}),
    ]
    assert calls[0].json == {"state": "success", "description": "+1 ~1 -1", "context": CONTEXT}
    body = comment.markdown(a_plan(), context=CONTEXT, commit=SHA)
    assert calls[3].json == {"body": body}
    for call in calls:
        assert call.headers["authorization"] == f"Bearer {TOKEN}"
        assert call.headers["accept"] == "application/vnd.github+json"
        assert call.headers["user-agent"] == f"pullsync/{pullsync.__version__}"
    assert [c.body for c in fake.comments("org/deploy-config", 12)] == [body]
    assert fake.statuses("org/deploy-config", SHA) == [calls[0].json]


async def test_a_second_publish_edits_the_github_comment_in_place(fake: FakeProvider) -> None:
    await publish(github(fake))
    (first,) = fake.comments("org/deploy-config", 12)
    fake.clear()

    failing = a_plan(replicas=4, errors=["deploy/web.yaml#0: bad"])
    await publish(github(fake), plan=failing)

    assert fake.calls_to("POST", "/repos/org/deploy-config/issues") == []
    (patch,) = fake.calls_to("PATCH")
    assert patch.path == f"/repos/org/deploy-config/issues/comments/{first.id}"
    assert patch.json == {"body": comment.markdown(failing, context=CONTEXT, commit=SHA)}
    (edited,) = fake.comments("org/deploy-config", 12)
    assert edited.id == first.id
    assert "This revision would fail" in edited.body
    assert fake.statuses("org/deploy-config", SHA)[-1]["state"] == "failure"


async def test_an_unchanged_plan_does_not_edit_the_comment(fake: FakeProvider) -> None:
    await publish(github(fake))
    fake.clear()

    await publish(github(fake))

    assert fake.calls_to("PATCH") == []
    assert len(fake.calls_to("POST", "/repos/org/deploy-config/issues")) == 0
    assert len(fake.comments("org/deploy-config", 12)) == 1


async def test_our_comment_is_found_past_the_first_page_and_others_are_left_alone(fake: FakeProvider) -> None:
    for i in range(150):
        fake.add_comment("org/deploy-config", 12, f"LGTM {i}")
    ours = fake.add_comment("org/deploy-config", 12, comment.marker(CONTEXT) + "\nold plan", author=BOT)
    fake.add_comment("org/deploy-config", 12, comment.marker("pullsync/other-preview") + "\nnot ours")

    await publish(github(fake))

    assert [c.query["page"] for c in fake.calls_to("GET", "/repos/")] == ["1", "2"]
    assert [c.path for c in fake.calls_to("PATCH")] == [f"/repos/org/deploy-config/issues/comments/{ours}"]
    assert fake.calls_to("POST", "/repos/org/deploy-config/issues") == []
    bodies = [c.body for c in fake.comments("org/deploy-config", 12)]
    assert len(bodies) == 152
    assert bodies[150] == comment.markdown(a_plan(), context=CONTEXT, commit=SHA)
    assert bodies[151].endswith("not ours")


async def test_a_known_comment_id_skips_the_listing_and_a_deleted_one_falls_back_to_a_new_comment(
    fake: FakeProvider,
) -> None:
    known: dict[str, Any] = {}
    target = github(fake)
    key = providers.comment_key(target, marker=CONTEXT, number=12)
    await publish(target, known=known)
    (first,) = fake.comments("org/deploy-config", 12)
    assert known == {key: first.id, providers.user_key(target): BOT}
    fake.clear()

    await publish(target, plan=a_plan(replicas=9), known=known)
    assert [(c.method, c.path) for c in fake.calls if c.method != "POST" or "/issues/" in c.path] == [
        ("GET", f"/repos/org/deploy-config/issues/comments/{first.id}"),
        ("PATCH", f"/repos/org/deploy-config/issues/comments/{first.id}"),
    ]  # nor GET /user: the login is known too

    fake.delete_comment(first.id)
    fake.clear()
    await publish(target, known=known)
    assert [c.method for c in fake.calls if "/issues/" in c.path] == ["GET", "GET", "POST"]
    (second,) = fake.comments("org/deploy-config", 12)
    assert known[key] == second.id


async def test_a_branch_ref_gets_a_commit_status_and_no_comment(fake: FakeProvider) -> None:
    await publish(github(fake), ref="refs/heads/feature-x")

    assert [(c.method, c.path) for c in fake.calls] == [("POST", f"/repos/org/deploy-config/statuses/{SHA}")]


# Gitea


async def test_gitea_gets_the_same_calls_under_api_v1_with_its_token_scheme(fake: FakeProvider) -> None:
    target = providers.Target("gitea", fake.url, "org/deploy-config", TOKEN)
    await publish(target)
    first = fake.comments("org/deploy-config", 12)[0]
    await publish(target, plan=a_plan(replicas=1))

    assert [(c.method, c.path, c.query) for c in fake.calls] == [
        ("POST", f"/api/v1/repos/org/deploy-config/statuses/{SHA}", {}),
        ("GET", "/api/v1/user", {}),
        ("GET", "/api/v1/repos/org/deploy-config/issues/12/comments", {}),
        ("POST", "/api/v1/repos/org/deploy-config/issues/12/comments", {}),
        ("POST", f"/api/v1/repos/org/deploy-config/statuses/{SHA}", {}),
        ("GET", "/api/v1/user", {}),
        ("GET", "/api/v1/repos/org/deploy-config/issues/12/comments", {}),
        ("PATCH", f"/api/v1/repos/org/deploy-config/issues/comments/{first.id}", {}),
    ]
    assert fake.calls[0].json == {"state": "success", "description": "+1 ~1 -1", "context": CONTEXT}
    assert fake.calls[-1].json == {"body": comment.markdown(a_plan(replicas=1), context=CONTEXT, commit=SHA)}
    assert {c.headers["authorization"] for c in fake.calls} == {f"token {TOKEN}"}
    assert len(fake.comments("org/deploy-config", 12)) == 1


# GitLab


async def test_gitlab_gets_a_named_status_and_one_merge_request_note_edited_with_put(fake: FakeProvider) -> None:
    target = providers.Target("gitlab", fake.url, "group/sub/deploy-config", TOKEN)
    failing = a_plan(errors=["deploy/web.yaml#0: spec.replicas: must be an integer"])
    await publish(target, ref="refs/merge-requests/3/head", plan=failing)
    (note,) = fake.comments("group/sub/deploy-config", 3)
    await publish(target, ref="refs/merge-requests/3/head")

    project = "/api/v4/projects/group%2Fsub%2Fdeploy-config"
    listing = {"sort": "asc", "order_by": "created_at", "per_page": "100", "page": "1"}
    assert [(c.method, c.path, c.query) for c in fake.calls] == [
        ("POST", f"{project}/statuses/{SHA}", {}),
        ("GET", "/api/v4/user", {}),
        ("GET", f"{project}/merge_requests/3/notes", listing),
        ("POST", f"{project}/merge_requests/3/notes", {}),
        ("POST", f"{project}/statuses/{SHA}", {}),
        ("GET", "/api/v4/user", {}),
        ("GET", f"{project}/merge_requests/3/notes", listing),
        ("PUT", f"{project}/merge_requests/3/notes/{note.id}", {}),
    ]
    assert fake.calls[0].json == {
        "state": "failed",
        "name": CONTEXT,
        "description": "failed: deploy/web.yaml#0: spec.replicas: must be an integer",
    }
    assert fake.calls[4].json["state"] == "success"
    assert {c.headers["private-token"] for c in fake.calls} == {TOKEN}
    assert all("authorization" not in c.headers for c in fake.calls)
    (edited,) = fake.comments("group/sub/deploy-config", 3)
    assert edited.body == comment.markdown(a_plan(), context=CONTEXT, commit=SHA)


# generic


async def test_the_generic_receiver_gets_the_plan_signed_with_the_token(fake: FakeProvider) -> None:
    target = providers.Target("generic", f"{fake.url}/hooks/plans", "", TOKEN)
    await publish(target)

    (call,) = fake.calls
    assert (call.method, call.path) == ("POST", "/hooks/plans")
    assert call.json == {
        "context": CONTEXT,
        "ref": REF,
        "commit": SHA,
        "state": "success",
        "description": "+1 ~1 -1",
        "plan": a_plan().as_json(),
    }
    assert call.headers["x-signature"] == "sha256=" + hmac.new(TOKEN.encode(), call.body, hashlib.sha256).hexdigest()
    assert webhook.signature_valid({"X-Signature": call.headers["x-signature"]}, call.body, TOKEN.encode())
    assert "authorization" not in call.headers
    assert call.headers["content-type"] == "application/json"


async def test_the_generic_receiver_without_a_token_gets_no_signature(fake: FakeProvider) -> None:
    await publish(providers.Target("generic", f"{fake.url}/hook", "", None))

    (call,) = fake.calls
    assert "x-signature" not in call.headers
    assert json.loads(call.body)["plan"]["summary"] == "+1 ~1 -1"


# failures


async def test_a_wrong_token_is_a_publish_error_that_does_not_contain_the_token(fake: FakeProvider) -> None:
    wrong = "wrong-token-123456"
    with pytest.raises(providers.PublishError) as caught:
        await publish(github(fake, token=wrong))

    message = str(caught.value)
    assert f"github: POST /repos/org/deploy-config/statuses/{SHA}: 401 Bad credentials" in message
    assert "github: GET /user: 401 Bad credentials" in message  # the comment's first call
    assert caught.value.sent == frozenset()
    assert wrong not in message
    assert TOKEN not in message


async def test_a_token_echoed_by_the_server_is_redacted(fake: FakeProvider) -> None:
    fake.fail_next(403, message=f"token {TOKEN} lacks the repo:status scope")
    with pytest.raises(providers.PublishError, match=r"gitlab: POST .*: 403 token \*\*\* lacks") as caught:
        await publish(providers.Target("gitlab", fake.url, "org/repo", TOKEN), ref="refs/heads/main")
    assert TOKEN not in str(caught.value)


async def test_a_server_error_is_a_publish_error_and_the_next_publish_completes_the_job(fake: FakeProvider) -> None:
    fake.fail_next(500, times=2)  # the status and the comment's first call
    with pytest.raises(providers.PublishError, match="500 Internal Server Error") as caught:
        await publish(github(fake))
    assert caught.value.sent == frozenset()
    assert fake.comments("org/deploy-config", 12) == []

    await publish(github(fake))  # the controller's retry

    assert len(fake.comments("org/deploy-config", 12)) == 1
    assert fake.statuses("org/deploy-config", SHA)[-1]["state"] == "success"


async def test_a_status_that_fails_still_gets_the_comment_and_raises(fake: FakeProvider) -> None:
    await publish(github(fake))
    fake.clear()
    fake.fail_next(502, message="Bad Gateway", method="POST", path="/repos/org/deploy-config/statuses/")
    with pytest.raises(providers.PublishError, match=r"statuses/.*: 502 Bad Gateway") as caught:
        await publish(github(fake), plan=a_plan(replicas=7))

    assert caught.value.sent == {"comment"}
    assert "comments" not in str(caught.value)
    assert [c.method for c in fake.calls] == ["POST", "GET", "GET", "PATCH"]
    assert "replicas" in fake.comments("org/deploy-config", 12)[0].body
    assert len(fake.statuses("org/deploy-config", SHA)) == 1  # the first publish's only


async def test_a_comment_that_fails_still_gets_the_status_and_raises(fake: FakeProvider) -> None:
    fake.fail_next(502, message="Bad Gateway", method="GET", path="/repos/org/deploy-config/issues/")
    with pytest.raises(providers.PublishError, match=r"issues/12/comments: 502 Bad Gateway") as caught:
        await publish(github(fake))

    assert caught.value.sent == {"status"}
    assert "statuses" not in str(caught.value)
    assert [c.json["state"] for c in fake.calls_to("POST", "/repos/org/deploy-config/statuses/")] == ["success"]
    assert fake.comments("org/deploy-config", 12) == []


async def test_only_the_failed_part_is_retried(fake: FakeProvider) -> None:
    known: dict[str, Any] = {}
    fake.fail_next(500, method="POST", path="/repos/org/deploy-config/issues/12/comments")
    with pytest.raises(providers.PublishError) as caught:
        await publish(github(fake), known=known)
    assert caught.value.sent == {"status"}
    fake.clear()

    await publish(github(fake), known=known, parts=providers.PARTS - caught.value.sent)  # the controller's retry

    assert fake.calls_to("POST", "/repos/org/deploy-config/statuses/") == []
    assert len(fake.statuses("org/deploy-config", SHA)) == 1
    (posted,) = fake.comments("org/deploy-config", 12)
    assert posted.body == comment.markdown(a_plan(), context=CONTEXT, commit=SHA)

    fake.clear()
    await publish(github(fake), known=known, parts=frozenset({"status"}))
    assert [c.path for c in fake.calls] == [f"/repos/org/deploy-config/statuses/{SHA}"]
    fake.clear()
    await publish(providers.Target("generic", f"{fake.url}/hook", "", None), parts=frozenset({"comment"}))
    await publish(github(fake), parts=frozenset())
    assert fake.calls == []
    with pytest.raises(ValueError, match="unknown parts"):
        await publish(github(fake), parts=frozenset({"statuses"}))


async def test_a_network_failure_of_the_generic_receiver_sent_nothing() -> None:
    with FakeProvider(TOKEN) as gone:
        url = gone.url
    with pytest.raises(providers.PublishError, match="generic: POST") as caught:
        await publish(providers.Target("generic", f"{url}/hook", "", TOKEN))
    assert caught.value.sent == frozenset()


# whose comment


async def test_two_markers_on_one_pull_request_keep_two_comments(fake: FakeProvider) -> None:
    known: dict[str, Any] = {}
    heads, merges = f"{CONTEXT}/heads", f"{CONTEXT}/merges"
    await publish(github(fake), known=known, marker=heads)
    await publish(github(fake), known=known, marker=merges, plan=a_plan(replicas=5))
    await publish(github(fake), known=known, marker=heads, plan=a_plan(replicas=6))
    await publish(github(fake), marker=merges, plan=a_plan(replicas=7))  # found again without `known`

    first, second = fake.comments("org/deploy-config", 12)
    assert first.body == comment.markdown(a_plan(replicas=6), context=CONTEXT, commit=SHA, marker=heads)
    assert second.body == comment.markdown(a_plan(replicas=7), context=CONTEXT, commit=SHA, marker=merges)
    assert first.body.startswith(comment.marker(heads) + "\n")
    assert {s["context"] for s in fake.statuses("org/deploy-config", SHA)} == {CONTEXT}  # the status keeps it


@pytest.mark.parametrize("kind", ["github", "gitea", "gitlab"])
async def test_a_marker_comment_by_someone_else_is_ignored_even_when_the_token_could_edit_it(kind: str) -> None:
    with FakeProvider(TOKEN, admin=True) as fake:
        target = providers.Target(kind, fake.url, "org/deploy-config", TOKEN)
        theirs = fake.add_comment("org/deploy-config", 12, comment.marker(CONTEXT) + "\nhijacked", author="mallory")
        known: dict[str, Any] = {}

        await publish(target, known=known)
        await publish(target, known=known, plan=a_plan(replicas=8))
        await publish(target, plan=a_plan(replicas=9))  # found again without `known`

        first, ours = fake.comments("org/deploy-config", 12)
        edits = [c.path.rsplit("/", 1)[1] for c in fake.calls if c.method in ("PATCH", "PUT")]
        assert edits == [str(ours.id)] * 2
        assert (first.id, first.body, first.author) == (theirs, comment.marker(CONTEXT) + "\nhijacked", "mallory")
        assert ours.author == BOT
        assert ours.body == comment.markdown(a_plan(replicas=9), context=CONTEXT, commit=SHA)
        assert known[providers.comment_key(target, marker=CONTEXT, number=12)] == ours.id


async def test_without_the_tokens_login_a_comment_that_cannot_be_edited_gets_a_new_one() -> None:
    with FakeProvider(TOKEN, user_refused=True) as fake:  # a GitHub App's token: 403 on /user
        theirs = fake.add_comment("org/deploy-config", 12, comment.marker(CONTEXT) + "\nhijacked", author="mallory")
        known: dict[str, Any] = {}

        await publish(github(fake), known=known)  # their comment: PATCH 403, then a new one

        assert [(c.method, c.path) for c in fake.calls if c.path != f"/repos/org/deploy-config/statuses/{SHA}"] == [
            ("GET", "/user"),
            ("GET", "/repos/org/deploy-config/issues/12/comments"),
            ("PATCH", f"/repos/org/deploy-config/issues/comments/{theirs}"),
            ("POST", "/repos/org/deploy-config/issues/12/comments"),
        ]
        first, ours = fake.comments("org/deploy-config", 12)
        assert (first.id, first.body) == (theirs, comment.marker(CONTEXT) + "\nhijacked")
        assert known[providers.comment_key(github(fake), marker=CONTEXT, number=12)] == ours.id
        fake.clear()

        await publish(github(fake), known=known, plan=a_plan(replicas=2))  # ours, by its id
        assert [(c.method, c.path) for c in fake.calls if "/issues/" in c.path] == [
            ("GET", f"/repos/org/deploy-config/issues/comments/{ours.id}"),
            ("PATCH", f"/repos/org/deploy-config/issues/comments/{ours.id}"),
        ]
        fake.clear()

        await publish(github(fake), plan=a_plan(replicas=3))  # without `known`: theirs refused, then ours
        assert [c.method for c in fake.calls if "/issues/" in c.path] == ["GET", "PATCH", "PATCH"]
        assert len(fake.comments("org/deploy-config", 12)) == 2
        assert fake.comments("org/deploy-config", 12)[1].body == comment.markdown(
            a_plan(replicas=3), context=CONTEXT, commit=SHA
        )


@pytest.mark.parametrize("kind", ["github", "gitea", "gitlab"])
async def test_when_the_user_endpoint_is_refused_the_marker_alone_finds_our_comment(kind: str) -> None:
    ref = "refs/merge-requests/12/head" if kind == "gitlab" else REF
    with FakeProvider(TOKEN, user_refused=True) as fake:
        target = providers.Target(kind, fake.url, "org/deploy-config", TOKEN)
        known: dict[str, Any] = {}
        await publish(target, ref=ref, known=known)
        await publish(target, ref=ref, plan=a_plan(replicas=4), known=known)
        await publish(target, ref=ref, plan=a_plan(replicas=5))  # found by its marker again

        (ours,) = fake.comments("org/deploy-config", 12)
        assert ours.body == comment.markdown(a_plan(replicas=5), context=CONTEXT, commit=SHA)
        assert known[providers.user_key(target)] is None
        assert len([c for c in fake.calls if c.path.endswith("/user")]) == 2  # asked once per `known`


async def test_a_server_error_of_the_user_endpoint_fails_the_comment(fake: FakeProvider) -> None:
    fake.fail_next(503, message="Service Unavailable", path="/user")
    with pytest.raises(providers.PublishError, match="GET /user: 503 Service Unavailable") as caught:
        await publish(github(fake))
    assert caught.value.sent == {"status"}
    assert fake.comments("org/deploy-config", 12) == []


async def test_a_redirect_is_not_followed(fake: FakeProvider) -> None:
    fake.fail_next(302, message="moved")
    with pytest.raises(providers.PublishError, match="302"):
        await publish(github(fake), ref="refs/heads/main")
    assert len(fake.calls) == 1


async def test_an_unreachable_server_is_a_publish_error() -> None:
    with FakeProvider(TOKEN) as gone:
        url = gone.url
    with pytest.raises(providers.PublishError, match=r"github: POST /repos/org/repo/statuses/"):
        await publish(providers.Target("github", url, "org/repo", TOKEN), ref="refs/heads/main")
