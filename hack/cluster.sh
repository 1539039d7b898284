#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for pullsync's tests and demo.
#
# etcd + kube-apiserver (RBAC, token auth, audit log) + kube-controller-manager, built
# once from Debian's `kubernetes` source package and cached outside the checkout.
#
#   hack/cluster.sh deps     install the Debian packages the build and the run need
#   hack/cluster.sh build    build kube-apiserver and kube-controller-manager (cached)
#   hack/cluster.sh up       start everything (idempotent; with etcd still running, only what
#                            stopped), print the kubeconfig path
#   hack/cluster.sh down     stop what `up` started (by pid)
#   hack/cluster.sh status   say whether the API server answers
#
# State lives in $CLUSTER_DIR (default: .cluster in the checkout, git-ignored).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/.cluster}
K8S_VERSION=1.20.2
CACHE=${PULLSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pullsync}
BIN=$CACHE/kubernetes-$K8S_VERSION/bin
API_PORT=${PULLSYNC_API_PORT:-16443}
ETCD_PORT=${PULLSYNC_ETCD_PORT:-12379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
KUBECONFIG_OUT=$CLUSTER_DIR/kubeconfig

log() { printf '[cluster] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

deps() {
  local need=()
  command -v go >/dev/null || need+=(golang-go)
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v rsync >/dev/null || need+=(rsync)
  command -v jq >/dev/null || need+=(jq)
  command -v dpkg-source >/dev/null || need+=(dpkg-dev)
  command -v openssl >/dev/null || need+=(openssl)
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh-keygen >/dev/null || need+=(openssh-client)
  [ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need+=(golang-github-modern-go-reflect2-dev)
  [ -x /usr/lib/git-core/git-http-backend ] || need+=(git)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing Debian packages: ${need[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # The etcd package starts a system service on the default ports; we run our own.
    as_root systemctl disable --now etcd >/dev/null 2>&1 || as_root service etcd stop >/dev/null 2>&1 || true
    pkill -x etcd -u 0 --parent 1 2>/dev/null || true
  fi
}

add_deb_src() {
  local list=/etc/apt/sources.list.d/pullsync-deb-src.sources
  [ -f "$list" ] && return 0
  log "adding a deb-src entry for bookworm main"
  as_root tee "$list" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  as_root apt-get update -qq
}

build() {
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
    return 0
  fi
  deps
  add_deb_src
  local work
  work=$(mktemp -d "$CACHE/build.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE"; mktemp -d "$CACHE/build.XXXXXX"; })
  log "building kube-apiserver and kube-controller-manager $K8S_VERSION in $work (about 4 minutes, once)"
  (
    cd "$work"
    apt-get source --download-only kubernetes >/dev/null 2>&1
    local orig
    orig=$(ls kubernetes_*.orig.tar.* | head -n1)
    mkdir src && tar -xf "$orig" -C src --strip-components=1
    cd src
    # Go >= 1.18 crashes 1.20's vendored reflect2 1.0.1; Debian ships the fixed 1.0.2.
    rm -rf vendor/github.com/modern-go/reflect2
    cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
    env HOME="$work" GOPATH="$work/.go" GOCACHE="$work/.gocache" CGO_ENABLED=0 \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 \
      || { tail -n 40 "$work/build.log" >&2; exit 1; }
    mkdir -p "$BIN"
    cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$BIN/"
  )
  rm -rf "$work"
  log "binaries cached in $BIN"
}

running() { [ -f "$CLUSTER_DIR/$1.pid" ] && kill -0 "$(cat "$CLUSTER_DIR/$1.pid")" 2>/dev/null; }

ready() {
  curl -fsk --max-time 2 -H "Authorization: Bearer $(cat "$CLUSTER_DIR/admin.token")" \
    "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then log "timed out waiting for $what"; return 1; fi
    sleep 0.2
  done
}

certs() {
  local d=$CLUSTER_DIR/pki
  [ -f "$d/apiserver.crt" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=pullsync-local-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >"$d/san.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

kubeconfig() { # kubeconfig FILE TOKEN USER
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $CLUSTER_DIR/pki/ca.crt
users:
- name: $3
  user:
    token: $2
contexts:
- name: local
  context: {cluster: local, user: $3}
current-context: local
KC
  chmod 600 "$1"
}

start_apiserver() {
  log "starting kube-apiserver on 127.0.0.1:$API_PORT"
  "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$CLUSTER_DIR/pki/apiserver.crt" --tls-private-key-file "$CLUSTER_DIR/pki/apiserver.key" \
    --cert-dir "$CLUSTER_DIR/pki" \
    --token-auth-file "$CLUSTER_DIR/tokens.csv" --authorization-mode RBAC \
    --service-account-key-file "$CLUSTER_DIR/pki/sa.pub" \
    --service-account-signing-key-file "$CLUSTER_DIR/pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/16 \
    --audit-policy-file "$CLUSTER_DIR/audit-policy.yaml" --audit-log-path "$CLUSTER_DIR/audit.log" \
    --audit-log-maxsize 200 --audit-log-maxbackup 1 \
    >>"$CLUSTER_DIR/kube-apiserver.log" 2>&1 &
  echo $! >"$CLUSTER_DIR/kube-apiserver.pid"
  wait_for 60 kube-apiserver ready
}

start_controller_manager() {
  log "starting kube-controller-manager"
  "$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG_OUT" \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 --leader-elect=false \
    --service-account-private-key-file "$CLUSTER_DIR/pki/sa.key" --root-ca-file "$CLUSTER_DIR/pki/ca.crt" \
    --use-service-account-credentials=false \
    --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service,-csrsigning' \
    >>"$CLUSTER_DIR/kube-controller-manager.log" 2>&1 &
  echo $! >"$CLUSTER_DIR/kube-controller-manager.pid"
}

up() {
  build
  command -v etcd >/dev/null || deps
  mkdir -p "$CLUSTER_DIR" && chmod 700 "$CLUSTER_DIR"
  if running kube-apiserver && ready; then
    log "already running"; echo "$KUBECONFIG_OUT"; return 0
  fi
  if running etcd && [ -f "$CLUSTER_DIR/tokens.csv" ]; then
    # Only the API server (or the controller manager) stopped: start it again on the same
    # etcd, as after an API server restart in a real cluster. One that was told to stop
    # closes its port at once but drains its watches for a minute: stop it for good first.
    if running kube-apiserver && ! wait_for 10 "kube-apiserver to listen on $API_PORT" listening; then
      log "it runs but does not listen (stopping): stopping it to start it again"
      stop_one kube-apiserver
    fi
    running kube-apiserver || start_apiserver
    running kube-controller-manager || start_controller_manager
    wait_for 60 kube-apiserver ready
    log "ready"; echo "$KUBECONFIG_OUT"; return 0
  fi
  down_quiet
  for port in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "port $port is in use (another checkout's cluster? stop it there with 'make cluster-down'," \
          "or choose other ports with PULLSYNC_API_PORT / PULLSYNC_ETCD_PORT)"
      exit 1
    fi
  done
  certs
  [ -f "$CLUSTER_DIR/admin.token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$CLUSTER_DIR/admin.token"
  # One static identity, the admin (tests, kubectl, helm). Operators run as the chart's
  # ServiceAccount (tests/support/helm.py: chart_identity), as a pod would.
  printf '%s,admin,admin,system:masters\n' "$(cat "$CLUSTER_DIR/admin.token")" >"$CLUSTER_DIR/tokens.csv"
  printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n' >"$CLUSTER_DIR/audit-policy.yaml"
  kubeconfig "$KUBECONFIG_OUT" "$(cat "$CLUSTER_DIR/admin.token")" admin

  : >"$CLUSTER_DIR/kube-apiserver.log"; : >"$CLUSTER_DIR/kube-controller-manager.log"  # appended to on restarts
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  etcd --name pullsync --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "pullsync=http://127.0.0.1:$ETCD_PEER_PORT" \
    --quota-backend-bytes 4294967296 --unsafe-no-fsync \
    >"$CLUSTER_DIR/etcd.log" 2>&1 &
  echo $! >"$CLUSTER_DIR/etcd.pid"
  wait_for 30 etcd curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$ETCD_PORT/health"

  start_apiserver
  start_controller_manager
  log "ready"
  echo "$KUBECONFIG_OUT"
}

stop_one() {
  local f=$CLUSTER_DIR/$1.pid
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down_quiet() { for c in kube-controller-manager kube-apiserver etcd; do stop_one "$c"; done; }

down() {
  down_quiet
  # etcd data goes too: the next `up` starts from an empty cluster.
  rm -rf "$CLUSTER_DIR/etcd" "$CLUSTER_DIR/audit.log"*
  log "stopped"
}

case "${1:-}" in
  deps) deps ;;
  build) build ;;
  up) up ;;
  down) down ;;
  status) if ready; then echo running; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 deps|build|up|down|status" >&2; exit 2 ;;
esac
