//! The names azure-workload-identity fixed: labels, annotations, environment variables, paths and the
//! proxy containers (`pkg/webhook/consts.go` at v1.6.0).

/// Pod label the MutatingWebhookConfiguration's objectSelector matches; the handler never re-checks it.
pub const USE_LABEL: &str = "azure.workload.identity/use";
/// ServiceAccount annotation: becomes `AZURE_CLIENT_ID`.
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// ServiceAccount annotation: becomes `AZURE_TENANT_ID` when present, even empty.
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
/// Pod (wins) or ServiceAccount annotation: `expirationSeconds` of the projected token.
pub const TOKEN_EXPIRATION_ANNOTATION: &str = "azure.workload.identity/service-account-token-expiration";
/// Pod annotation: `;`-separated container names left alone.
pub const SKIP_CONTAINERS_ANNOTATION: &str = "azure.workload.identity/skip-containers";
/// Pod annotation: its presence (any value) injects the IMDS proxy.
pub const INJECT_PROXY_SIDECAR_ANNOTATION: &str = "azure.workload.identity/inject-proxy-sidecar";
/// Pod annotation: the proxy's port (default 8000).
pub const PROXY_SIDECAR_PORT_ANNOTATION: &str = "azure.workload.identity/proxy-sidecar-port";
/// Prefix of the custom-token-endpoint opt-in annotation (`use-<suffix>`).
pub const CUSTOM_ENDPOINT_ANNOTATION_PREFIX: &str = "azure.workload.identity/use-";

/// Smallest accepted token lifetime, seconds.
pub const MIN_TOKEN_EXPIRATION: i64 = 3600;
/// Largest accepted token lifetime, seconds.
pub const MAX_TOKEN_EXPIRATION: i64 = 86400;
/// Token lifetime when neither pod nor ServiceAccount says.
pub const DEFAULT_TOKEN_EXPIRATION: i64 = 3600;
/// Proxy port when the pod does not say.
pub const DEFAULT_PROXY_PORT: i32 = 8000;

/// The proxy's init container (iptables redirect of IMDS traffic).
pub const PROXY_INIT_CONTAINER: &str = "azwi-proxy-init";
/// The proxy sidecar.
pub const PROXY_SIDECAR_CONTAINER: &str = "azwi-proxy";
/// Environment variable of the init container naming the proxy port.
pub const PROXY_PORT_ENV: &str = "PROXY_PORT";
/// Default proxy sidecar image (upstream's release, overridden by `PROXY_IMAGE`).
pub const DEFAULT_PROXY_IMAGE: &str = "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0";
/// Default proxy init image (overridden by `PROXY_INIT_IMAGE`).
pub const DEFAULT_PROXY_INIT_IMAGE: &str = "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0";

pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
pub const AZURE_KUBERNETES_TOKEN_PROXY: &str = "AZURE_KUBERNETES_TOKEN_PROXY";
pub const AZURE_KUBERNETES_SNI_NAME: &str = "AZURE_KUBERNETES_SNI_NAME";
pub const AZURE_KUBERNETES_CA_FILE: &str = "AZURE_KUBERNETES_CA_FILE";
pub const AZURE_KUBERNETES_CA_DATA: &str = "AZURE_KUBERNETES_CA_DATA";
/// CA trust for OpenSSL-based clients (Python `ssl`, curl, Go).
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
/// CA trust for Python `requests`.
pub const REQUESTS_CA_BUNDLE: &str = "REQUESTS_CA_BUNDLE";
/// Extra CA trust for Node.js.
pub const NODE_EXTRA_CA_CERTS: &str = "NODE_EXTRA_CA_CERTS";

/// Prefix of the v1.6 projected volume's name; the rest is 30 hex digits of SHA-256(pod name).
pub const RESERVED_VOLUME_PREFIX: &str = "azure-workload-identity-reserved-";
/// The ≤ v1.5 volume (and mount) name.
pub const LEGACY_VOLUME_NAME: &str = "azure-identity-token";
/// Default `audience` of the projected token.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Path of the custom endpoint's CA inside the volume.
pub const CUSTOM_CA_FILE_PATH: &str = "ca-cert/ca.crt";
/// Path of the `--ca-bundle-configmap` CA inside the volume (wid's addition).
pub const CA_BUNDLE_FILE_PATH: &str = "ca-bundle/ca.crt";
