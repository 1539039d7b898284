"""The git server down for several intervals: the GitRepository says why, the Sync keeps
correcting drift at the last applied revision, and everything resumes on its return."""

from pathlib import Path

from support import wait
from support.cluster import Cluster, condition, gitrepo_path
from support.faults import LOCAL_GIT, revision
from support.git import HttpGitServer
from support.operator import OperatorProcess
from support.sync import Source, create_sync, get_sync, wait_applied


def test_git_down_for_several_intervals_then_back(
    cluster: Cluster, app: str, identity: tuple[Path, str], tmp_path: Path
) -> None:
    server = HttpGitServer(tmp_path / "git")
    source = Source(cluster, app, server, interval="1s")
    first = source.push(revision(10))
    create_sync(cluster, app)
    operator = OperatorProcess(identity[0], "--namespace", app, *LOCAL_GIT)
    try:
        wait_applied(cluster, app, first)
        server.stop()

        def fetch_failed() -> dict[str, str]:
            ready = condition(cluster.get(gitrepo_path(app, "app")))
            assert ready.get("reason") == "FetchFailed", ready
            return ready

        ready = wait.until(fetch_failed, what="the GitRepository to say the fetch failed")
        assert ready["status"] == "False"
        assert "connect" in ready["message"], ready["message"]
        listings = operator.output().count("failed to poll")
        wait.until(lambda: operator.output().count("failed to poll") >= listings + 2, what="more failed polls")

        path = f"/api/v1/namespaces/{app}/configmaps/cm-003"
        cluster.api("PATCH", path, {"data": {"value": "by hand"}}, content_type="application/merge-patch+json")
        wait.until(lambda: (cluster.get(path) or {})["data"] == {"value": "v1-3"}, what="drift corrected meanwhile")
        sync = get_sync(cluster, app)
        assert condition(sync)["status"] == "True", "the Sync is fine: it applies its last revision"
        assert sync["status"]["lastAppliedRevision"].endswith(first)

        server = HttpGitServer(tmp_path / "git", port=server.port)  # back, at the same address
        wait.until(lambda: condition(cluster.get(gitrepo_path(app, "app"))).get("status") == "True", what="Ready")
        second = source.push(revision(10, data="v2"))
        wait_applied(cluster, app, second)
        assert (cluster.get(path) or {})["data"] == {"value": "v2-3"}
    finally:
        operator.stop()
        server.stop()
