"""Real git servers for tests: smart HTTP with basic auth (git http-backend) and SSH (sshd).

Repositories are bare directories under the server's root; `Repo` makes commits in a
working clone and pushes them, as a developer would.
"""

import base64
import getpass
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": tempfile.gettempdir(),
}


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV}, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Repo:
    """A bare repository on a server plus a working clone to commit from."""

    def __init__(self, bare: Path) -> None:
        self.bare = bare
        git("init", "-q", "--bare", "-b", "main", str(bare))
        git("-C", str(bare), "config", "uploadpack.allowAnySHA1InWant", "true")
        self.work = bare.parent / f"{bare.name.removesuffix('.git')}.work"  # removed with the bare one
        shutil.rmtree(self.work, ignore_errors=True)  # a repository made again starts afresh (the demo's)
        git("init", "-q", "-b", "main", str(self.work))
        git("-C", str(self.work), "remote", "add", "origin", str(bare))

    def commit(
        self,
        files: dict[str, str | None],
        message: str = "change",
        *,
        branch: str = "main",
        links: dict[str, str] | None = None,
    ) -> str:
        """Write (or, with None, delete) files and symlinks, commit, push `branch`; return the SHA."""
        current = git("-C", str(self.work), "branch", "--show-current") or "main"
        if current != branch:
            exists = git("-C", str(self.work), "branch", "--list", branch)
            git("-C", str(self.work), "checkout", "-q", *(() if exists else ("-b",)), branch)
        for name, content in files.items():
            path = self.work / name
            if content is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
        for name, target in (links or {}).items():
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, self.work / name)
        git("-C", str(self.work), "add", "-A")
        git("-C", str(self.work), "commit", "-q", "--allow-empty", "-m", message)
        git("-C", str(self.work), "push", "-q", "-f", "origin", branch)
        return git("-C", str(self.work), "rev-parse", "HEAD")

    def tag(self, name: str, *, annotated: bool = True) -> str:
        args = ("-a", name, "-m", name) if annotated else (name,)
        git("-C", str(self.work), "tag", *args)
        git("-C", str(self.work), "push", "-q", "origin", name)
        return git("-C", str(self.work), "rev-parse", "HEAD")


class HttpGitServer:
    """git http-backend behind basic auth, on a loopback port, in a thread."""

    def __init__(
        self,
        root: Path,
        username: str = "git",
        password: str = "s3cret-pa55word",
        *,
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.root = root
        self.username = username
        self.password = password
        self.bearer_token = "bearer-" + password  # also accepted, as `Authorization: Bearer ...`
        self.requests: list[tuple[str, str]] = []  # (method, path?query)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.cgi()

            def do_POST(self) -> None:
                self.cgi()

            def cgi(self) -> None:
                server.requests.append((self.command, self.path))
                if self.path.startswith("/elsewhere/"):  # a redirect to another host name
                    self.send_response(302)
                    self.send_header(
                        "Location", f"http://localhost:{server.port}" + self.path.removeprefix("/elsewhere")
                    )
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                expected = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
                if self.headers.get("Authorization") not in (f"Basic {expected}", f"Bearer {server.bearer_token}"):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {
                    "PATH": os.environ["PATH"],
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "REMOTE_USER": server.username,
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                }
                out = subprocess.run(
                    ["git", "http-backend"], input=body, capture_output=True, env=env, check=False
                ).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode().split("\r\n"):
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.port = port or free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.scheme = "http"
        if tls is not None:  # (certificate chain, key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{name}.git"

    def repo(self, name: str) -> Repo:
        return Repo(self.root / f"{name}.git")

    def hits(self, name: str) -> int:
        """How many requests of any kind reached the repository `name`."""
        return sum(1 for _, path in self.requests if path.startswith(f"/{name}.git/"))

    def listings(self, name: str) -> int:
        """How many ref listings (GET info/refs) reached `name`: two per poll with a password
        (libgit2 asks without it first, and is answered 401)."""
        return sum(1 for method, path in self.requests if method == "GET" and path.startswith(f"/{name}.git/info/refs"))

    def fetches(self, name: str) -> int:
        """How many upload-pack POSTs (fetches; ref listings are GETs) reached `name`."""
        return sum(1 for method, path in self.requests if method == "POST" and f"/{name}.git/" in path)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ca, ca_key, cert, key, csr = (directory / n for n in ("ca.crt", "ca.key", "tls.crt", "tls.key", "tls.csr"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return ca, cert, key


class SshGitServer:
    """sshd on a loopback port with its own host key; git over SSH as the current user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = Path(tempfile.mkdtemp(prefix="pullsync-sshd-"))
        os.chmod(self.dir, 0o700)
        self.host_key = self.dir / "host_ed25519"
        self.client_key = self.dir / "client_ed25519"
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (self.dir / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        os.chmod(self.dir / "authorized_keys", 0o600)
        self.port = free_port()
        config = self.dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.dir}/authorized_keys\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
            f"StrictModes no\nUsePAM no\nPidFile {self.dir}/sshd.pid\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        self.process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.user = getpass.getuser()

    def wait_ready(self) -> None:
        from support import wait

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait.until(listening, timeout=10, what="sshd to listen")

    def known_hosts(self) -> str:
        key = Path(f"{self.host_key}.pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n"

    def identity(self) -> str:
        return self.client_key.read_text()

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root}/{name}.git"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
