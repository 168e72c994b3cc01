//! Where the API server is and how to authenticate: a kubeconfig file (current context, or a named
//! one) or the pod's in-cluster ServiceAccount.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::ConfigError;

/// The directory kubelet mounts the pod's ServiceAccount credentials in.
pub const IN_CLUSTER_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How requests authenticate.
pub enum Credentials {
    /// Anonymous (or a client certificate only).
    None,
    /// A static bearer token.
    Token(Zeroizing<String>),
    /// A bearer token re-read from a file (the in-cluster token rotates).
    TokenFile(PathBuf),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
            Credentials::TokenFile(p) => write!(f, "TokenFile({})", p.display()),
        }
    }
}

/// A client certificate and its key (PEM).
pub struct ClientCert {
    pub cert_pem: Vec<u8>,
    pub key_pem: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCert(<redacted>)")
    }
}

/// Everything needed to talk to one API server.
#[derive(Debug)]
pub struct KubeConfig {
    /// `https://host:port[/prefix]`.
    pub server: String,
    /// CA bundle (PEM) trusted for the server; `None` uses the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify: true` in the kubeconfig.
    pub insecure_skip_tls_verify: bool,
    /// `tls-server-name`: the name the server certificate is checked against.
    pub tls_server_name: Option<String>,
    pub credentials: Credentials,
    pub client_cert: Option<ClientCert>,
    /// The context's default namespace (or the pod's own, in cluster).
    pub namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Kubeconfig {
    #[serde(rename = "current-context")]
    current_context: String,
    clusters: Vec<Named<Cluster>>,
    contexts: Vec<Named<Context>>,
    users: Vec<Named<User>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context", alias = "user")]
    value: Option<T>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<String>,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify")]
    insecure_skip_tls_verify: bool,
    #[serde(rename = "tls-server-name")]
    tls_server_name: Option<String>,
    #[serde(rename = "proxy-url")]
    proxy_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Context {
    cluster: String,
    user: String,
    namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct User {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(rename = "client-certificate")]
    client_certificate: Option<String>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-key")]
    client_key: Option<String>,
    #[serde(rename = "client-key-data")]
    client_key_data: Option<String>,
    username: Option<String>,
    exec: Option<Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<Value>,
}

/// YAML (kubeconfig is YAML, JSON included) to a JSON value.
fn yaml_to_json(y: yaml_rust2::Yaml) -> Result<Value, String> {
    use yaml_rust2::Yaml;
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::Real(s) => {
            s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::String(s), Value::Number)
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Array(a) => Value::Array(a.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = serde_json::Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => return Err("a mapping key is not a scalar".into()),
                };
                m.insert(key, yaml_to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err("an alias names no anchor".into()),
    })
}

impl KubeConfig {
    /// Reads a kubeconfig file; `context` overrides its `current-context`. Relative file references
    /// are resolved against the file's directory, as kubectl does.
    pub fn from_kubeconfig(path: &Path, context: Option<&str>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        Self::from_kubeconfig_str(&text, path, context)
    }

    /// [`KubeConfig::from_kubeconfig`] from text; `path` names the file for errors and relative paths.
    pub fn from_kubeconfig_str(text: &str, path: &Path, context: Option<&str>) -> Result<Self, ConfigError> {
        let bad = |detail: String| ConfigError::Kubeconfig { path: path.into(), detail };
        let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| bad(format!("not YAML: {e}")))?;
        let doc = docs.into_iter().next().ok_or_else(|| bad("the file is empty".into()))?;
        let json = yaml_to_json(doc).map_err(bad)?;
        let kc: Kubeconfig = serde_json::from_value(json).map_err(|e| bad(format!("not a kubeconfig: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));

        let ctx_name = context.unwrap_or(&kc.current_context);
        if ctx_name.is_empty() {
            return Err(bad("no current-context is set (kubectl config use-context NAME)".into()));
        }
        let ctx = kc
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .and_then(|c| c.value.as_ref())
            .ok_or_else(|| bad(format!("context \"{ctx_name}\" is not defined")))?;
        let cluster = kc
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.value.as_ref())
            .ok_or_else(|| bad(format!("cluster \"{}\" of context \"{ctx_name}\" is not defined", ctx.cluster)))?;
        let default_user = User::default();
        let user = match ctx.user.as_str() {
            "" => &default_user,
            name => kc
                .users
                .iter()
                .find(|u| u.name == name)
                .and_then(|u| u.value.as_ref())
                .ok_or_else(|| bad(format!("user \"{name}\" of context \"{ctx_name}\" is not defined")))?,
        };

        if cluster.server.is_empty() {
            return Err(bad(format!("cluster \"{}\" has no server", ctx.cluster)));
        }
        if cluster.proxy_url.is_some() {
            return Err(ConfigError::Unsupported(format!(
                "kubeconfig {}: cluster \"{}\" uses proxy-url, which wid does not support",
                path.display(),
                ctx.cluster
            )));
        }
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err(ConfigError::Unsupported(format!(
                "kubeconfig {}: user \"{}\" authenticates with an exec or auth-provider plugin, which wid does not \
                 run; use a kubeconfig with a token, tokenFile or client certificate (e.g. for a ServiceAccount: \
                 kubectl create token NAME)",
                path.display(),
                ctx.user
            )));
        }
        if user.username.is_some() && user.token.is_none() && user.token_file.is_none() {
            return Err(ConfigError::Unsupported(format!(
                "kubeconfig {}: user \"{}\" uses basic authentication, which Kubernetes removed in 1.19",
                path.display(),
                ctx.user
            )));
        }

        let read = |p: &str| -> Result<Vec<u8>, ConfigError> {
            let full = base.join(p);
            std::fs::read(&full).map_err(|source| ConfigError::Io { path: full, source })
        };
        let decode = |field: &str, data: &str| -> Result<Vec<u8>, ConfigError> {
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| bad(format!("{field} is not base64: {e}")))
        };

        let ca_pem = match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
            (Some(d), _) if !d.is_empty() => Some(decode("certificate-authority-data", d)?),
            (_, Some(f)) if !f.is_empty() => Some(read(f)?),
            _ => None,
        };
        let cert = match (&user.client_certificate_data, &user.client_certificate) {
            (Some(d), _) if !d.is_empty() => Some(decode("client-certificate-data", d)?),
            (_, Some(f)) if !f.is_empty() => Some(read(f)?),
            _ => None,
        };
        let key = match (&user.client_key_data, &user.client_key) {
            (Some(d), _) if !d.is_empty() => Some(Zeroizing::new(decode("client-key-data", d)?)),
            (_, Some(f)) if !f.is_empty() => Some(Zeroizing::new(read(f)?)),
            _ => None,
        };
        let client_cert = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Some(ClientCert { cert_pem, key_pem }),
            (None, None) => None,
            _ => {
                return Err(bad(format!(
                    "user \"{}\" has a client certificate without its key (or the reverse)",
                    ctx.user
                )));
            }
        };
        let credentials = match (&user.token, &user.token_file) {
            (Some(t), _) if !t.is_empty() => Credentials::Token(Zeroizing::new(t.clone())),
            (_, Some(f)) if !f.is_empty() => Credentials::TokenFile(base.join(f)),
            _ => Credentials::None,
        };
        Ok(KubeConfig {
            server: cluster.server.trim_end_matches('/').to_string(),
            ca_pem,
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify,
            tls_server_name: cluster.tls_server_name.clone().filter(|s| !s.is_empty()),
            credentials,
            client_cert,
            namespace: ctx.namespace.clone().filter(|s| !s.is_empty()),
        })
    }

    /// The pod's own configuration: `KUBERNETES_SERVICE_HOST`/`PORT`, and the token, CA and namespace
    /// under `dir` (normally [`IN_CLUSTER_DIR`]).
    pub fn in_cluster(env: &HashMap<String, String>, dir: &Path) -> Result<Self, ConfigError> {
        let host = env.get("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty()).ok_or(ConfigError::NotInCluster)?;
        let port = env.get("KUBERNETES_SERVICE_PORT").filter(|p| !p.is_empty()).ok_or(ConfigError::NotInCluster)?;
        let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        let token = dir.join("token");
        if let Err(source) = std::fs::metadata(&token) {
            return Err(ConfigError::Io { path: token, source });
        }
        let ca_path = dir.join("ca.crt");
        let ca = std::fs::read(&ca_path).map_err(|source| ConfigError::Io { path: ca_path, source })?;
        let namespace = std::fs::read_to_string(dir.join("namespace")).ok().map(|s| s.trim().to_string());
        Ok(KubeConfig {
            server: format!("https://{host}:{port}"),
            ca_pem: Some(ca),
            insecure_skip_tls_verify: false,
            tls_server_name: None,
            credentials: Credentials::TokenFile(token),
            client_cert: None,
            namespace: namespace.filter(|s| !s.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
- name: other
  cluster:
    server: https://other:443
    certificate-authority: ca/other.pem
    insecure-skip-tls-verify: true
    tls-server-name: kubernetes
contexts:
- name: dev
  context: {cluster: local, user: admin, namespace: team}
- name: ops
  context:
    cluster: other
    user: robot
users:
- name: admin
  user:
    token: abc.def.ghi
- name: robot
  user:
    tokenFile: robot.token
    client-certificate: certs/robot.crt
    client-key: certs/robot.key
"#;

    #[test]
    fn current_context_gives_server_ca_and_token() {
        let c = KubeConfig::from_kubeconfig_str(KUBECONFIG, Path::new("/etc/kube/config"), None).unwrap();
        assert_eq!(c.server, "https://127.0.0.1:6443");
        assert_eq!(c.ca_pem.as_deref(), Some(&b"-----BEGIN CERTIFICATE-----\n"[..]));
        assert!(matches!(&c.credentials, Credentials::Token(t) if t.as_str() == "abc.def.ghi"));
        assert_eq!(c.namespace.as_deref(), Some("team"));
        assert!(c.client_cert.is_none());
        assert!(!format!("{c:?}").contains("abc.def"), "tokens are not printed");
    }

    #[test]
    fn named_context_with_files_relative_to_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ca")).unwrap();
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("ca/other.pem"), "CA").unwrap();
        std::fs::write(dir.path().join("certs/robot.crt"), "CERT").unwrap();
        std::fs::write(dir.path().join("certs/robot.key"), "KEY").unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let c = KubeConfig::from_kubeconfig(&path, Some("ops")).unwrap();
        assert_eq!(c.server, "https://other:443");
        assert_eq!(c.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert!(c.insecure_skip_tls_verify);
        assert_eq!(c.tls_server_name.as_deref(), Some("kubernetes"));
        assert!(matches!(&c.credentials, Credentials::TokenFile(p) if *p == dir.path().join("robot.token")));
        let cert = c.client_cert.unwrap();
        assert_eq!(cert.cert_pem, b"CERT");
        assert_eq!(cert.key_pem.as_slice(), b"KEY");
    }

    #[test]
    fn json_kubeconfig_is_yaml_too() {
        let json = r#"{"current-context":"c","clusters":[{"name":"k","cluster":{"server":"https://h:1"}}],
            "contexts":[{"name":"c","context":{"cluster":"k","user":"u"}}],"users":[{"name":"u","user":{}}]}"#;
        let c = KubeConfig::from_kubeconfig_str(json, Path::new("k.json"), None).unwrap();
        assert_eq!(c.server, "https://h:1");
        assert!(matches!(c.credentials, Credentials::None));
    }

    #[test]
    fn unusable_kubeconfigs_say_why() {
        let p = Path::new("kc");
        let err =
            |text: &str, ctx: Option<&str>| KubeConfig::from_kubeconfig_str(text, p, ctx).unwrap_err().to_string();
        assert!(err("", None).contains("empty"));
        assert!(err("a: [", None).contains("not YAML"));
        assert!(err("clusters: 3", None).contains("not a kubeconfig"));
        assert!(err(KUBECONFIG, Some("nope")).contains("context \"nope\" is not defined"));
        assert!(err("current-context: ''", None).contains("no current-context"));
        let exec = KUBECONFIG.replace("    token: abc.def.ghi", "    exec: {command: kubelogin}");
        assert!(err(&exec, None).contains("exec or auth-provider"));
        let no_key = KUBECONFIG.replace("    client-key: certs/robot.key\n", "");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ca")).unwrap();
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("ca/other.pem"), "CA").unwrap();
        std::fs::write(dir.path().join("certs/robot.crt"), "CERT").unwrap();
        let e = KubeConfig::from_kubeconfig_str(&no_key, &dir.path().join("config"), Some("ops")).unwrap_err();
        assert!(e.to_string().contains("without its key"));
        let missing = KubeConfig::from_kubeconfig_str(KUBECONFIG, Path::new("/nonexistent/config"), Some("ops"));
        assert!(matches!(missing, Err(ConfigError::Io { .. })));
    }

    #[test]
    fn in_cluster_reads_env_and_the_service_account_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "tok").unwrap();
        std::fs::write(dir.path().join("ca.crt"), "CA").unwrap();
        std::fs::write(dir.path().join("namespace"), "azure-workload-identity-system\n").unwrap();
        let env: HashMap<String, String> = [
            ("KUBERNETES_SERVICE_HOST".to_string(), "10.0.0.1".to_string()),
            ("KUBERNETES_SERVICE_PORT".to_string(), "443".to_string()),
        ]
        .into();
        let c = KubeConfig::in_cluster(&env, dir.path()).unwrap();
        assert_eq!(c.server, "https://10.0.0.1:443");
        assert_eq!(c.namespace.as_deref(), Some("azure-workload-identity-system"));
        assert!(matches!(&c.credentials, Credentials::TokenFile(p) if p.ends_with("token")));
        let v6: HashMap<String, String> = [
            ("KUBERNETES_SERVICE_HOST".to_string(), "fd00::1".to_string()),
            ("KUBERNETES_SERVICE_PORT".to_string(), "443".to_string()),
        ]
        .into();
        assert_eq!(KubeConfig::in_cluster(&v6, dir.path()).unwrap().server, "https://[fd00::1]:443");
        assert!(matches!(KubeConfig::in_cluster(&HashMap::new(), dir.path()), Err(ConfigError::NotInCluster)));
    }
}
