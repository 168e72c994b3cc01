#!/usr/bin/env bash
# The AKS workload-identity walkthrough (seed 003) as a script: its steps in its order, with `az`
# replaced by `wid` and `kubectl` talking to a real kube-apiserver, ending with the secret that the
# seed's application (tests/sdk/python/seed004_app.py) read from the Key Vault.
#
#   scripts/walkthrough.sh --local   start everything on loopback first, in a temp dir: etcd and
#                                    kube-apiserver (scripts/kube.sh up), `wid serve` trusting the
#                                    apiserver's CA, the shipped webhook manifests (deploy/manifests)
#                                    with the MutatingWebhookConfiguration pointed at a local
#                                    `wid webhook`; run the steps; stop everything
#   scripts/walkthrough.sh           only the steps, against an existing set-up:
#       KUBECONFIG   a cluster whose pods the wid webhook mutates
#       WID_CONFIG   the CLI profile of a running `wid serve` (default ~/.wid/profile.json)
#   --az (with either)               the steps with the real Azure CLI (scripts/az.sh) instead of
#                                    `wid`: a cloud registered with wid's URL, signed in as the
#                                    profile's admin, in a temporary AZURE_CONFIG_DIR
#
# Also: WID_BIN (the wid binary; default target/debug/wid, built if missing), KUBECTL (default: the
# kubectl of scripts/kube.sh, else `kubectl`), PYTHON (an interpreter with azure-identity and
# azure-keyvault-secrets; default: the venv of tests/e2e/venv.sh). Exit code 0 when the secret was read.
#
# The seed's `export VAR="$(az ...)"` lines are written `VAR="$(az ...)"; export VAR`, so that a
# failing command stops the script; `az` is `wid` unless --az. What else differs from the seed, and why:
#   - `az aks create` is `wid aks create` with --issuer-url (the cluster's service-account issuer,
#     read from its /.well-known/openid-configuration), which az lacks: the registration trusts this
#     cluster's own tokens, and --enable-managed-identity, which az implies (the kubelet identity it
#     makes is what az aks update reads); `az aks get-credentials` is KUBECONFIG.
#   - With --az, nothing answers login.microsoftonline.com, so az is told not to ask it about wid's
#     authority (core.instance_discovery=false); `wid serve --azure-hostnames` needs no setting.
#   - No kubelet, scheduler or controller-manager run here: the pod is admitted and stored (so the
#     webhook's mutation is real) but never started, and it sets automountServiceAccountToken: false
#     (no token controller). `kubectl wait` and `kubectl logs` are replaced by what kubelet would do:
#     fill the projected volume (the token from TokenRequest with the volume's audience and lifetime,
#     bound to the pod; ConfigMap items), mount it where the container would see it (a private mount
#     namespace), and run the application with the container's environment as the webhook set it. The seed's image is replaced by the
#     seed's application.
#   - With --local the webhook also projects wid's CA (ConfigMap wid-ca, `--ca-bundle-configmap`)
#     and sets REQUESTS_CA_BUNDLE/SSL_CERT_FILE; when a pod gets no CA that way, the application is
#     given the CA of the CLI profile.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '\n### %s\n' "$*" >&2; }
die() {
    echo "walkthrough: ERROR: $*" >&2
    exit 1
}

WID_BIN="${WID_BIN:-$root/target/debug/wid}"
if [[ ! -x "$WID_BIN" ]]; then
    (cd "$root" && cargo build --locked --quiet -p wid)
fi
wid() { "$WID_BIN" "$@"; }
if [[ -z "${KUBECTL:-}" ]]; then
    KUBECTL="$(bash "$root/scripts/kube.sh" env 2>/dev/null | sed -n 's/^KUBECTL=//p')"
    KUBECTL="${KUBECTL:-kubectl}"
fi
kubectl() { "$KUBECTL" "$@"; }
PYTHON="${PYTHON:-$(bash "$root/tests/e2e/venv.sh")}"
"$PYTHON" -c 'import azure.identity, azure.keyvault.secrets' 2>/dev/null ||
    die "$PYTHON lacks azure-identity/azure-keyvault-secrets (set PYTHON, or let tests/e2e/venv.sh make one)"

json_get() { "$PYTHON" -c 'import json, sys; print(eval("json.load(sys.stdin)" + sys.argv[1]))' "$1"; }

# --- --local: everything on loopback ---------------------------------------------------------------

pids=()
local_dir=""
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$local_dir" ]]; then
        bash "$root/scripts/kube.sh" down "$local_dir/kube" >/dev/null 2>&1 || true
        [[ -n "${WALKTHROUGH_KEEP:-}" ]] || rm -rf "$local_dir"
    fi
}
trap cleanup EXIT

wait_url() { # URL SECONDS [CA]
    "$PYTHON" - "$@" <<'EOF'
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
    except Exception:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"{url} not ready after {limit}s")
    time.sleep(0.2)
EOF
}

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_local() {
    local_dir="$(mktemp -d -t wid-walkthrough.XXXXXX)"
    say "local set-up in $local_dir: kube-apiserver"
    bash "$root/scripts/kube.sh" up "$local_dir/kube" >/dev/null
    # shellcheck disable=SC1091
    source "$local_dir/kube/env"
    export KUBECONFIG KUBECTL

    say "local set-up: wid serve (trusting the apiserver's CA for issuer discovery)"
    mkdir -p "$local_dir/wid"
    export WID_CONFIG="$local_dir/wid/profile.json"
    "$WID_BIN" serve --data-dir "$local_dir/wid/data" --listen 127.0.0.1:0 --host localhost \
        --issuer-ca-file "$KUBE_CA" >"$local_dir/wid/serve.log" 2>&1 &
    pids+=($!)
    local i
    for ((i = 0; i < 300; i++)); do
        [[ -s "$WID_CONFIG" && -f "$local_dir/wid/data/ca.pem" ]] && break
        sleep 0.2
    done
    [[ -s "$WID_CONFIG" ]] || { cat "$local_dir/wid/serve.log" >&2; die "wid serve did not start"; }
    wait_url "$(json_get '["server"]' <"$WID_CONFIG")/readyz" 60 "$local_dir/wid/data/ca.pem"
    local server tenant
    server="$(json_get '["server"]' <"$WID_CONFIG")"
    tenant="$(wid account show --query tenantId -o tsv)"

    say "local set-up: the shipped webhook manifests, with a local wid webhook"
    kubectl apply -f "$root/deploy/manifests/00-namespace.yaml" >&2
    # kube-apiserver 1.20 predates policy/v1 (PodDisruptionBudget).
    sed 's#^apiVersion: policy/v1$#apiVersion: policy/v1beta1#' "$root/deploy/manifests/wid-webhook.yaml" |
        kubectl apply -f - >&2
    kubectl -n wid-system patch configmap azure-wi-webhook-config --type=merge \
        -p "{\"data\":{\"AZURE_TENANT_ID\":\"$tenant\"}}" >&2
    # wid's CA for the pods of the walkthrough's namespace, projected by the webhook (--ca-bundle-configmap).
    kubectl -n default create configmap wid-ca --from-file=ca.crt="$local_dir/wid/data/ca.pem" >&2
    "$CERTGEN" ca -out "$local_dir/webhook-ca" -cn wid-webhook-ca
    "$CERTGEN" server -ca-cert "$local_dir/webhook-ca/ca.crt" -ca-key "$local_dir/webhook-ca/ca.key" \
        -out "$local_dir/webhook-certs" -ip 127.0.0.1
    local port health metrics
    port="$(free_port)" health="$(free_port)" metrics="$(free_port)"
    # The Deployment's arguments, with addresses for a process outside a pod and a kubeconfig for the
    # webhook's ServiceAccount (its access is the shipped ClusterRole).
    AZURE_TENANT_ID="$tenant" AZURE_ENVIRONMENT=AzurePublicCloud POD_NAMESPACE=wid-system \
        "$WID_BIN" webhook --webhook-cert-dir="$local_dir/webhook-certs" --listen="127.0.0.1:$port" \
        --health-addr="127.0.0.1:$health" --metrics-addr="127.0.0.1:$metrics" --log-level=info \
        --tls-min-version=1.3 --authority-host="$server/" --ca-bundle-configmap=wid-ca \
        --kubeconfig "$KUBE_WEBHOOK_KUBECONFIG" >"$local_dir/webhook.log" 2>&1 &
    pids+=($!)
    wait_url "http://127.0.0.1:$health/readyz" 60 || { cat "$local_dir/webhook.log" >&2; die "wid webhook did not start"; }
    local ca_bundle
    ca_bundle="$(base64 -w0 <"$local_dir/webhook-ca/ca.crt")"
    kubectl patch mutatingwebhookconfiguration azure-wi-webhook-mutating-webhook-configuration --type=json -p \
        "[{\"op\":\"replace\",\"path\":\"/webhooks/0/clientConfig\",\"value\":{\"url\":\"https://127.0.0.1:$port/mutate-v1-pod\",\"caBundle\":\"$ca_bundle\"}}]" >&2
}

local_mode="" az_mode=""
for arg in "$@"; do
    case "$arg" in
    --local) local_mode=1 ;;
    --az) az_mode=1 ;;
    *)
        sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 64
        ;;
    esac
done
[[ -z "$local_mode" ]] || start_local
[[ -n "${KUBECONFIG:-}" ]] || die "KUBECONFIG is not set (or use --local)"

# The walkthrough's `az`: wid's own CLI, or (--az) the real one, pointed at wid by a registered cloud.
if [[ -n "$az_mode" ]]; then
    AZ_BIN="$(bash "$root/scripts/az.sh")"
    profile="${WID_CONFIG:-$HOME/.wid/profile.json}"
    export AZURE_CONFIG_DIR
    AZURE_CONFIG_DIR="$(mktemp -d -t wid-walkthrough-az.XXXXXX)"
    trap 'cleanup; rm -rf "$AZURE_CONFIG_DIR"' EXIT
    export AZURE_CORE_COLLECT_TELEMETRY=false REQUESTS_CA_BUNDLE
    REQUESTS_CA_BUNDLE="$(json_get '["caCertFile"]' <"$profile")"
    say "az: register wid as a cloud and sign in as the profile's admin"
    "$AZ_BIN" cloud register --name wid --endpoint-resource-manager "$(json_get '["server"]' <"$profile")/"
    "$AZ_BIN" cloud set --name wid
    "$AZ_BIN" config set core.instance_discovery=false 2>/dev/null
    "$AZ_BIN" login --service-principal -u "$(json_get '["clientId"]' <"$profile")" \
        -p "$(json_get '["clientSecret"]' <"$profile")" --tenant "$(json_get '["tenantId"]' <"$profile")" -o none
    # The vault's host name must resolve for az (wid's CLI finds the server by itself): when it does
    # not, az runs in a private mount namespace whose /etc/hosts sends it where the server's host
    # resolves (as root, else in a user namespace).
    vault_suffix="$(json_get '.get("keyVaultDnsSuffix") or ""' <"$profile")"
    server_host="$(json_get '["server"]' <"$profile" | sed -E 's#^https://##; s#[:/].*$##')"
    resolves() { "$PYTHON" -c 'import socket, sys; socket.getaddrinfo(sys.argv[1], 443)' "$1" 2>/dev/null; }
    az() {
        local vault_host="${KEYVAULT_NAME:+${KEYVAULT_NAME,,}.${vault_suffix%%:*}}"
        if [[ -z "$vault_host" ]] || resolves "$vault_host"; then
            "$AZ_BIN" "$@"
            return
        fi
        local address flags=-rm
        address="$("$PYTHON" -c 'import socket, sys; print(socket.getaddrinfo(sys.argv[1], 443)[0][4][0])' "$server_host")"
        { cat /etc/hosts; echo "$address $vault_host"; } >"$AZURE_CONFIG_DIR/hosts"
        [[ "$(id -u)" != 0 ]] || flags=-m
        # shellcheck disable=SC2016
        unshare "$flags" -- sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$AZURE_CONFIG_DIR/hosts" "$AZ_BIN" "$@"
    }
else
    az() { wid "$@"; }
fi

# --- kubelet's part, for a pod that never runs here -------------------------------------------------

# run_pod NAMESPACE POD: runs the seed's application as container 0 of the stored pod would run.
run_pod() {
    local ns="$1" name="$2" work
    work="$(mktemp -d -t wid-pod.XXXXXX)"
    kubectl get pod "$name" -n "$ns" -o json >"$work/pod.json"
    # The projected volume the webhook added (every source: the token from TokenRequest with the
    # volume's audience and lifetime, bound to the pod; ConfigMap items), and the container's env.
    KUBECTL="$KUBECTL" "$PYTHON" - "$work" "$ns" <<'EOF'
import json, os, shlex, subprocess, sys
work, ns = sys.argv[1], sys.argv[2]
kubectl = os.environ["KUBECTL"]
pod = json.load(open(f"{work}/pod.json"))
c = pod["spec"]["containers"][0]
mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
(vol,) = [v for v in pod["spec"].get("volumes", [])
          if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))]
root = f"{work}/volume"


def put(path, data):
    os.makedirs(os.path.dirname(f"{root}/{path}"), exist_ok=True)
    with open(f"{root}/{path}", "w") as f:
        f.write(data)


def run(*args):
    return subprocess.run([kubectl, *args], check=True, capture_output=True, text=True).stdout


for s in vol["projected"]["sources"]:
    if "serviceAccountToken" in s:
        t = s["serviceAccountToken"]
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
            "audiences": [t["audience"]], "expirationSeconds": t["expirationSeconds"],
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"],
                               "uid": pod["metadata"]["uid"]}}}
        json.dump(request, open(f"{work}/tokenrequest.json", "w"))
        sa = pod["spec"].get("serviceAccountName") or "default"
        answer = run("create", "--raw", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                     "-f", f"{work}/tokenrequest.json")
        put(t["path"], json.loads(answer)["status"]["token"])
    elif "configMap" in s:
        cm = s["configMap"]
        data = json.loads(run("get", "configmap", cm["name"], "-n", ns, "-o", "json"))["data"]
        for item in cm["items"]:
            put(item["path"], data[item["key"]])
    else:
        sys.exit(f"unexpected projected source {s}")
with open(f"{work}/vars", "w") as f:
    f.write(f"mount={shlex.quote(mounts[vol['name']])}\n")
with open(f"{work}/container.env", "w") as f:
    for e in c.get("env", []):
        f.write(f"{e['name']}={e['value']}\n")
EOF
    local mount
    # shellcheck disable=SC1091
    source "$work/vars"

    local -a env_args=(env -i "PATH=$PATH" "HOME=$work" "LANG=C.UTF-8")
    while IFS= read -r line; do env_args+=("$line"); done <"$work/container.env"
    if ! grep -q '^REQUESTS_CA_BUNDLE=' "$work/container.env"; then
        # No CA bundle from the webhook (--ca-bundle-configmap): trust wid's CA from the CLI profile.
        local ca
        ca="$(json_get '.get("caCertFile") or ""' <"${WID_CONFIG:-$HOME/.wid/profile.json}")"
        [[ -n "$ca" ]] && env_args+=("REQUESTS_CA_BUNDLE=$ca" "SSL_CERT_FILE=$ca")
    fi

    # The vault's host name must resolve; *.localhost often does not outside systemd-resolved.
    local vault_host hosts=""
    vault_host="$(sed -n 's/^KEYVAULT_URL=https:\/\/\([^:/]*\).*/\1/p' "$work/container.env")"
    if ! "$PYTHON" -c 'import socket, sys; socket.getaddrinfo(sys.argv[1], 443)' "$vault_host" 2>/dev/null; then
        hosts="$work/hosts"
        { cat /etc/hosts; echo "127.0.0.1 $vault_host"; } >"$hosts"
    fi
    # Mount the token where the container would see it, in a private mount namespace (as root); the
    # mount point is created if needed and removed again afterwards.
    local created=() d="$mount" rc=0
    while [[ ! -e "$d" ]]; do
        created=("$d" "${created[@]}")
        d="$(dirname "$d")"
    done
    if [[ "$(id -u)" == 0 ]] && unshare -m true 2>/dev/null && mkdir -p "$mount"; then
        # shellcheck disable=SC2016
        unshare -m -- sh -c '
            mount --bind "$1" "$2" || exit 125
            if [ -n "$3" ]; then mount --bind "$3" /etc/hosts || exit 125; fi
            shift 3
            exec "$@"' sh "$work/volume" "$mount" "$hosts" \
            "${env_args[@]}" "$PYTHON" "$root/tests/sdk/python/seed004_app.py" >"$work/out" 2>"$work/err" || rc=$?
    elif [[ -n "$hosts" ]]; then
        echo "walkthrough: $vault_host does not resolve and a private mount namespace needs root" >"$work/err"
        rc=1
    else
        echo "(not root: the application reads the volume from $work/volume, not $mount)" >&2
        local -a fixed=()
        local a
        for a in "${env_args[@]}"; do
            fixed+=("${a//=$mount\//=$work/volume/}")
        done
        "${fixed[@]}" "$PYTHON" "$root/tests/sdk/python/seed004_app.py" >"$work/out" 2>"$work/err" || rc=$?
    fi
    local i
    for ((i = ${#created[@]} - 1; i >= 0; i--)); do rmdir "${created[$i]}" 2>/dev/null || true; done
    if ((rc != 0)); then
        cat "$work/err" >&2
    else
        cat "$work/out"
    fi
    rm -rf "$work"
    return "$rc"
}

# --- the walkthrough ---------------------------------------------------------------------------------

say "Create a resource group"
export RANDOM_ID="$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')" # seed: openssl rand -hex 3
export RESOURCE_GROUP="myResourceGroup$RANDOM_ID"
export LOCATION="eastus"
az group create --name "${RESOURCE_GROUP}" --location "${LOCATION}"

say "Enable OIDC issuer and Workload ID (register this cluster with wid by its issuer)"
export CLUSTER_NAME="myAKSCluster$RANDOM_ID"
CLUSTER_ISSUER="$(kubectl get --raw /.well-known/openid-configuration | json_get '["issuer"]')"
wid aks create \
    --resource-group "${RESOURCE_GROUP}" \
    --name "${CLUSTER_NAME}" \
    --enable-oidc-issuer \
    --enable-workload-identity \
    --generate-ssh-keys \
    --enable-managed-identity \
    --issuer-url "${CLUSTER_ISSUER}"

say "Retrieve the OIDC issuer URL"
AKS_OIDC_ISSUER="$(az aks show --name "${CLUSTER_NAME}" \
    --resource-group "${RESOURCE_GROUP}" \
    --query "oidcIssuerProfile.issuerUrl" \
    --output tsv)"
export AKS_OIDC_ISSUER
echo "${AKS_OIDC_ISSUER}"

say "Create a managed identity"
SUBSCRIPTION="$(az account show --query id --output tsv)"
export SUBSCRIPTION
export USER_ASSIGNED_IDENTITY_NAME="myIdentity$RANDOM_ID"
az identity create \
    --name "${USER_ASSIGNED_IDENTITY_NAME}" \
    --resource-group "${RESOURCE_GROUP}" \
    --location "${LOCATION}" \
    --subscription "${SUBSCRIPTION}"
USER_ASSIGNED_CLIENT_ID="$(az identity show \
    --resource-group "${RESOURCE_GROUP}" \
    --name "${USER_ASSIGNED_IDENTITY_NAME}" \
    --query 'clientId' \
    --output tsv)"
export USER_ASSIGNED_CLIENT_ID

say "Create a Kubernetes service account (az aks get-credentials: KUBECONFIG=$KUBECONFIG)"
export SERVICE_ACCOUNT_NAME="workload-identity-sa$RANDOM_ID"
export SERVICE_ACCOUNT_NAMESPACE="default"
cat <<EOF | kubectl apply -f -
apiVersion: v1
kind: ServiceAccount
metadata:
  annotations:
    azure.workload.identity/client-id: "${USER_ASSIGNED_CLIENT_ID}"
  name: "${SERVICE_ACCOUNT_NAME}"
  namespace: "${SERVICE_ACCOUNT_NAMESPACE}"
EOF

say "Create the federated identity credential"
export FEDERATED_IDENTITY_CREDENTIAL_NAME="myFedIdentity$RANDOM_ID"
az identity federated-credential create \
    --name ${FEDERATED_IDENTITY_CREDENTIAL_NAME} \
    --identity-name "${USER_ASSIGNED_IDENTITY_NAME}" \
    --resource-group "${RESOURCE_GROUP}" \
    --issuer "${AKS_OIDC_ISSUER}" \
    --subject system:serviceaccount:"${SERVICE_ACCOUNT_NAMESPACE}":"${SERVICE_ACCOUNT_NAME}" \
    --audience api://AzureADTokenExchange

say "Create a key vault with Azure RBAC authorization"
# Ensure the key vault name is between 3-24 characters: the seed's "keyvault-workload-id$RANDOM_ID" has
# 26, which Key Vault (and wid) refuse, so the prefix is shortened.
export KEYVAULT_NAME="kv-workload-id$RANDOM_ID"
az keyvault create \
    --name "${KEYVAULT_NAME}" \
    --resource-group "${RESOURCE_GROUP}" \
    --location "${LOCATION}" \
    --enable-purge-protection \
    --enable-rbac-authorization
KEYVAULT_RESOURCE_ID=$(az keyvault show --resource-group "${RESOURCE_GROUP}" \
    --name "${KEYVAULT_NAME}" \
    --query id \
    --output tsv)
export KEYVAULT_RESOURCE_ID

say "Assign RBAC permissions for key vault management"
CALLER_OBJECT_ID=$(az ad signed-in-user show --query id -o tsv)
export CALLER_OBJECT_ID
az role assignment create --assignee "${CALLER_OBJECT_ID}" \
    --role "Key Vault Secrets Officer" \
    --scope "${KEYVAULT_RESOURCE_ID}"

say "Create and configure secret access"
export KEYVAULT_SECRET_NAME="my-secret$RANDOM_ID"
# As in the seed: the stored value is Hello\! (a backslash stays inside double quotes).
az keyvault secret set \
    --vault-name "${KEYVAULT_NAME}" \
    --name "${KEYVAULT_SECRET_NAME}" \
    --value "Hello\!"
IDENTITY_PRINCIPAL_ID=$(az identity show \
    --name "${USER_ASSIGNED_IDENTITY_NAME}" \
    --resource-group "${RESOURCE_GROUP}" \
    --query principalId \
    --output tsv)
export IDENTITY_PRINCIPAL_ID
az role assignment create \
    --assignee-object-id "${IDENTITY_PRINCIPAL_ID}" \
    --role "Key Vault Secrets User" \
    --scope "${KEYVAULT_RESOURCE_ID}" \
    --assignee-principal-type ServicePrincipal
KEYVAULT_URL="$(az keyvault show \
    --resource-group "${RESOURCE_GROUP}" \
    --name ${KEYVAULT_NAME} \
    --query properties.vaultUri \
    --output tsv)"
export KEYVAULT_URL

say "Deploy a verification pod (the seed's image: the seed's application; no token automount here)"
kubectl apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: sample-workload-identity-key-vault
  namespace: ${SERVICE_ACCOUNT_NAMESPACE}
  labels:
    azure.workload.identity/use: "true"
spec:
  serviceAccountName: ${SERVICE_ACCOUNT_NAME}
  automountServiceAccountToken: false
  containers:
    - image: seed004-app:local
      name: oidc
      env:
      - name: KEYVAULT_URL
        value: ${KEYVAULT_URL}
      - name: SECRET_NAME
        value: ${KEYVAULT_SECRET_NAME}
  nodeSelector:
    kubernetes.io/os: linux
EOF

say "Check that the SECRET_NAME environment variable is set in the pod"
kubectl describe pod sample-workload-identity-key-vault -n "${SERVICE_ACCOUNT_NAMESPACE}" | grep "SECRET_NAME:"
echo "What the webhook injected:" >&2
kubectl describe pod sample-workload-identity-key-vault -n "${SERVICE_ACCOUNT_NAMESPACE}" | grep -E "AZURE_|SSL_CERT_FILE|REQUESTS_CA_BUNDLE|NODE_EXTRA_CA_CERTS|/var/run/secrets/azure" >&2

say "Verify that the pod can get a token and access the resource (kubelet's part done here)"
SECRET_VALUE="$(run_pod "${SERVICE_ACCOUNT_NAMESPACE}" sample-workload-identity-key-vault)"
echo "successfully got secret: ${SECRET_VALUE}" >&2

say "Disable Workload ID on the cluster registration"
az aks update \
    --resource-group "${RESOURCE_GROUP}" \
    --name "${CLUSTER_NAME}" \
    --disable-workload-identity -o none

printf '%s\n' "${SECRET_VALUE}"
