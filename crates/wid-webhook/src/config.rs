//! What the webhook injects, decided once at start-up and validated: tenant, authority host, audience,
//! token layout, optional CA trust, proxy images and the custom token endpoint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use wid_core::kube::is_dns1123_subdomain;

use crate::consts::*;

/// A start-up configuration error (upstream: a crash-looping panic; here a sentence naming the fix).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `AZURE_ENVIRONMENT` names no known cloud.
    #[error(
        "autorest/azure: There is no cloud environment matching the name \"{0}\"; AZURE_ENVIRONMENT must be one of \
         AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud, AzureCloud, AzureUSGovernment \
         or AzureStackCloud (with AZURE_ENVIRONMENT_FILEPATH), or pass --authority-host URL"
    )]
    UnknownEnvironment(String),
    /// `AzureStackCloud`'s environment file could not be read or parsed.
    #[error("AZURE_ENVIRONMENT=AzureStackCloud: {0}")]
    StackEnvironment(String),
    /// Any other invalid setting; the text says which and what to do.
    #[error("{0}")]
    Invalid(String),
}

/// Where the token goes: v1.6.0's layout (default) or the one of v1.5.1 and earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenLayout {
    /// Volume `azure-workload-identity-reserved-<hash>`, mount `/var/run/secrets/azure/wi`, file
    /// `token/azure-identity-token`.
    #[default]
    V1_6,
    /// Volume `azure-identity-token`, mount `/var/run/secrets/azure/tokens`, file `azure-identity-token`.
    V1_5,
}

impl TokenLayout {
    /// Parses `v1.6` / `v1.5` (also without the `v`).
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s.trim_start_matches('v') {
            "1.6" => Ok(TokenLayout::V1_6),
            "1.5" => Ok(TokenLayout::V1_5),
            _ => Err(ConfigError::Invalid(format!(
                "--token-layout '{s}' is not known: use v1.6 (/var/run/secrets/azure/wi/token/azure-identity-token, \
                 azure-workload-identity v1.6.0) or v1.5 (/var/run/secrets/azure/tokens/azure-identity-token, v1.5.1 \
                 and earlier)"
            ))),
        }
    }

    /// Where the volume is mounted in each container.
    pub fn mount_path(self) -> &'static str {
        match self {
            TokenLayout::V1_6 => "/var/run/secrets/azure/wi",
            TokenLayout::V1_5 => "/var/run/secrets/azure/tokens",
        }
    }

    /// The token's path inside the volume.
    pub fn token_path(self) -> &'static str {
        match self {
            TokenLayout::V1_6 => "token/azure-identity-token",
            TokenLayout::V1_5 => "azure-identity-token",
        }
    }

    /// `AZURE_FEDERATED_TOKEN_FILE`.
    pub fn token_file(self) -> String {
        format!("{}/{}", self.mount_path(), self.token_path())
    }
}

/// The IMDS proxy containers (§1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `PROXY_IMAGE` or upstream's release image.
    pub image: String,
    /// `PROXY_INIT_IMAGE` or upstream's release image.
    pub init_image: String,
    /// The apiserver is ≥ 1.32: the sidecar becomes an init container with `restartPolicy: Always`.
    pub native_sidecar: bool,
    /// `--log-level=` passed to the proxy (the webhook's own level, as upstream).
    pub log_level: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            image: DEFAULT_PROXY_IMAGE.into(),
            init_image: DEFAULT_PROXY_INIT_IMAGE.into(),
            native_sidecar: false,
            log_level: "info".into(),
        }
    }
}

/// Where the custom token endpoint's CA comes from (at most one, as upstream).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CustomCa {
    /// Nothing projected (`AZURE_KUBERNETES_CA_DATA` may still be set as an env var).
    #[default]
    None,
    /// `AZURE_KUBERNETES_CA_CONFIGMAP_NAME`: key `ca.crt` projected to `ca-cert/ca.crt`.
    ConfigMap(String),
    /// `AZURE_KUBERNETES_CA_CTB_SIGNER_NAME` and optional label selector (a JSON LabelSelector).
    ClusterTrustBundle { signer_name: String, label_selector: Option<serde_json::Value> },
}

/// The custom token endpoint of v1.6.0 (§1.10), enabled by two flags together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTokenEndpoint {
    /// `azure.workload.identity/use-<suffix>`: the pod opts in with the value `true` (any case).
    pub annotation: String,
    /// Audience of the projected token for pods that opt in.
    pub audience: String,
    pub token_proxy: String,
    pub sni_name: String,
    pub ca_data: String,
    pub ca: CustomCa,
}

/// The raw custom-endpoint settings, as flags and environment give them.
#[derive(Debug, Clone, Default)]
pub struct CustomTokenEndpointSettings {
    pub annotation_suffix: String,
    pub audience: String,
    pub token_proxy: String,
    pub sni_name: String,
    pub ca_data: String,
    pub ca_configmap_name: String,
    pub ctb_signer_name: String,
    pub ctb_label_selector: String,
}

impl CustomTokenEndpointSettings {
    /// Validates as upstream's `NewPodMutator` and `validateConfig`; `None` when both flags are empty.
    pub fn build(&self) -> Result<Option<CustomTokenEndpoint>, ConfigError> {
        let ca_sources = [&self.ca_data, &self.ca_configmap_name, &self.ctb_signer_name];
        if ca_sources.iter().filter(|v| !v.is_empty()).count() > 1 {
            return Err(ConfigError::Invalid(
                "only one of AZURE_KUBERNETES_CA_DATA, AZURE_KUBERNETES_CA_CONFIGMAP_NAME or \
                 AZURE_KUBERNETES_CA_CTB_SIGNER_NAME can be set"
                    .into(),
            ));
        }
        let label_selector = match self.ctb_label_selector.trim() {
            "" => None,
            json => Some(parse_label_selector(json)?),
        };
        if label_selector.is_some() && self.ctb_signer_name.is_empty() {
            return Err(ConfigError::Invalid(
                "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME needs to be set when AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR is set"
                    .into(),
            ));
        }
        if self.annotation_suffix.is_empty() && self.audience.is_empty() {
            return Ok(None);
        }
        if self.annotation_suffix.is_empty() {
            return Err(ConfigError::Invalid(
                "custom token endpoint annotation suffix cannot be empty when audience is set: pass \
                 --custom-token-endpoint-annotation-suffix too"
                    .into(),
            ));
        }
        if self.audience.is_empty() {
            return Err(ConfigError::Invalid(
                "custom token endpoint audience cannot be empty when annotation suffix is set: pass \
                 --custom-token-endpoint-audience too"
                    .into(),
            ));
        }
        if self.audience.eq_ignore_ascii_case(DEFAULT_AUDIENCE) {
            return Err(ConfigError::Invalid(format!(
                "custom token endpoint audience cannot be equal to default audience \"{DEFAULT_AUDIENCE}\""
            )));
        }
        let annotation = format!("{CUSTOM_ENDPOINT_ANNOTATION_PREFIX}{}", self.annotation_suffix);
        let errs = qualified_name_errors(&annotation.to_lowercase());
        if !errs.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "custom token endpoint annotation key \"{annotation}\" is not valid: {}",
                errs.join(", ")
            )));
        }
        let ca = if !self.ca_configmap_name.is_empty() {
            CustomCa::ConfigMap(self.ca_configmap_name.clone())
        } else if !self.ctb_signer_name.is_empty() {
            CustomCa::ClusterTrustBundle { signer_name: self.ctb_signer_name.clone(), label_selector }
        } else {
            CustomCa::None
        };
        Ok(Some(CustomTokenEndpoint {
            annotation,
            audience: self.audience.clone(),
            token_proxy: self.token_proxy.clone(),
            sni_name: self.sni_name.clone(),
            ca_data: self.ca_data.clone(),
            ca,
        }))
    }
}

#[derive(Deserialize, Serialize)]
struct LabelSelector {
    #[serde(rename = "matchLabels", default, skip_serializing_if = "Option::is_none")]
    match_labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "matchExpressions", default, skip_serializing_if = "Option::is_none")]
    match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

#[derive(Deserialize, Serialize)]
struct LabelSelectorRequirement {
    #[serde(default)]
    key: String,
    #[serde(default)]
    operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
}

/// A `metav1.LabelSelector` in JSON, re-serialised in its canonical shape.
fn parse_label_selector(json: &str) -> Result<serde_json::Value, ConfigError> {
    let sel: LabelSelector =
        serde_json::from_str(json).map_err(|e| ConfigError::Invalid(format!("failed to decode LabelSelector: {e}")))?;
    serde_json::to_value(&sel).map_err(|e| ConfigError::Invalid(format!("failed to decode LabelSelector: {e}")))
}

/// `k8s.io/apimachinery/pkg/util/validation.IsQualifiedName`.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match value.split_once('/') {
        None => (None, value),
        Some((p, n)) if !n.contains('/') => (Some(p), n),
        Some(_) => {
            return vec![
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
                 with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
                 validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and \
                 '/' (e.g. 'example.com/MyName')"
                    .into(),
            ];
        }
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else if !is_dns1123_subdomain(p) {
            errs.push(format!("prefix part {}", dns1123_subdomain_message()));
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".into());
    }
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name.is_empty() && !ok {
        errs.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .into(),
        );
    }
    errs
}

fn dns1123_subdomain_message() -> &'static str {
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start \
     and end with an alphanumeric character"
}

/// The authority host (`ActiveDirectoryEndpoint`) of a go-autorest environment name, case-insensitive;
/// empty means the public cloud. `AzureStackCloud` reads the JSON environment file that `stack_file`
/// returns (the contents of `AZURE_ENVIRONMENT_FILEPATH`).
pub fn authority_host_for_environment(
    name: &str,
    stack_file: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<String, ConfigError> {
    let host = match name.to_ascii_uppercase().as_str() {
        "" | "AZURECLOUD" | "AZUREPUBLICCLOUD" => "https://login.microsoftonline.com/",
        "AZUREUSGOVERNMENT" | "AZUREUSGOVERNMENTCLOUD" => "https://login.microsoftonline.us/",
        "AZURECHINACLOUD" => "https://login.chinacloudapi.cn/",
        "AZUREGERMANCLOUD" => "https://login.microsoftonline.de/",
        "AZURESTACKCLOUD" => {
            let bytes = stack_file().map_err(ConfigError::StackEnvironment)?;
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ConfigError::StackEnvironment(format!("the environment file is not JSON: {e}")))?;
            return Ok(v.get("activeDirectoryEndpoint").and_then(|h| h.as_str()).unwrap_or_default().to_string());
        }
        upper => return Err(ConfigError::UnknownEnvironment(upper.to_string())),
    };
    Ok(host.to_string())
}

/// Validates `--authority-host`: an absolute `https://` URL (the Azure SDKs refuse anything else).
pub fn validate_authority_host(url: &str) -> Result<String, ConfigError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        ConfigError::Invalid(format!(
            "--authority-host '{url}' must be an https:// URL, e.g. https://wid.example.com:8443 (the Azure SDKs \
             only talk to an HTTPS authority)"
        ))
    })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || rest.contains(char::is_whitespace) || rest.contains(['?', '#', '@']) {
        return Err(ConfigError::Invalid(format!(
            "--authority-host '{url}' is not a plain https://HOST[:PORT][/] URL"
        )));
    }
    Ok(url.to_string())
}

/// Trust for a wid server with a private CA (wid's addition, `--ca-bundle-configmap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// ConfigMap in the pod's namespace (like `kube-root-ca.crt`, it must exist in every namespace).
    pub configmap: String,
    /// Key holding the PEM bundle.
    pub key: String,
}

impl CaBundle {
    /// Validates the ConfigMap name and key.
    pub fn new(configmap: &str, key: &str) -> Result<Self, ConfigError> {
        if !is_dns1123_subdomain(configmap) {
            return Err(ConfigError::Invalid(format!(
                "--ca-bundle-configmap '{configmap}' is not a ConfigMap name ({})",
                dns1123_subdomain_message()
            )));
        }
        let key_ok = !key.is_empty()
            && key.len() <= 253
            && key != "."
            && key != ".."
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !key_ok {
            return Err(ConfigError::Invalid(format!(
                "--ca-bundle-key '{key}' is not a ConfigMap key (alphanumerics, '-', '_' or '.')"
            )));
        }
        Ok(CaBundle { configmap: configmap.into(), key: key.into() })
    }
}

/// Everything a decision needs besides the request and its ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `AZURE_TENANT_ID` of the webhook: the tenant when the SA has no tenant-id annotation.
    pub tenant_id: String,
    /// `AZURE_AUTHORITY_HOST`; empty means the variable is not injected.
    pub authority_host: String,
    /// Audience of the projected token (`--audience`, default `api://AzureADTokenExchange`).
    pub audience: String,
    pub layout: TokenLayout,
    pub ca_bundle: Option<CaBundle>,
    pub proxy: ProxyConfig,
    pub custom_endpoint: Option<CustomTokenEndpoint>,
}

impl Config {
    /// Public cloud, default audience, v1.6 layout, no extras.
    pub fn new(tenant_id: impl Into<String>) -> Self {
        Config {
            tenant_id: tenant_id.into(),
            authority_host: "https://login.microsoftonline.com/".into(),
            audience: DEFAULT_AUDIENCE.into(),
            layout: TokenLayout::default(),
            ca_bundle: None,
            proxy: ProxyConfig::default(),
            custom_endpoint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_file() -> Result<Vec<u8>, String> {
        Err("no file".into())
    }

    /// Upstream `TestGetAzureAuthorityHost`, plus the aliases go-autorest v0.11.30 accepts.
    #[test]
    fn authority_host_per_cloud_as_go_autorest() {
        for (name, want) in [
            ("", "https://login.microsoftonline.com/"),
            ("AzurePublicCloud", "https://login.microsoftonline.com/"),
            ("azurepubliccloud", "https://login.microsoftonline.com/"),
            ("AzureCloud", "https://login.microsoftonline.com/"),
            ("AzureUSGovernmentCloud", "https://login.microsoftonline.us/"),
            ("AzureUSGovernment", "https://login.microsoftonline.us/"),
            ("AzureChinaCloud", "https://login.chinacloudapi.cn/"),
            ("AzureGermanCloud", "https://login.microsoftonline.de/"),
        ] {
            assert_eq!(authority_host_for_environment(name, no_file).unwrap(), want, "{name}");
        }
        let err = authority_host_for_environment("InvalidCloud", no_file).unwrap_err();
        assert_eq!(err, ConfigError::UnknownEnvironment("INVALIDCLOUD".into()));
        assert!(err.to_string().contains("There is no cloud environment matching the name \"INVALIDCLOUD\""));
    }

    #[test]
    fn authority_host_of_azure_stack_comes_from_the_environment_file() {
        let file = || Ok(br#"{"name":"stack","activeDirectoryEndpoint":"https://login.stack.local/"}"#.to_vec());
        assert_eq!(authority_host_for_environment("AzureStackCloud", file).unwrap(), "https://login.stack.local/");
        assert!(matches!(
            authority_host_for_environment("AZURESTACKCLOUD", no_file),
            Err(ConfigError::StackEnvironment(_))
        ));
    }

    #[test]
    fn authority_host_flag_must_be_https() {
        assert_eq!(validate_authority_host("https://localhost:8443").unwrap(), "https://localhost:8443");
        assert!(validate_authority_host("https://wid.example.com/").is_ok());
        for bad in ["http://localhost:8443", "localhost:8443", "https://", "https://a b", "https://u@h/"] {
            assert!(validate_authority_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_layouts() {
        assert_eq!(TokenLayout::V1_6.token_file(), "/var/run/secrets/azure/wi/token/azure-identity-token");
        assert_eq!(TokenLayout::V1_5.token_file(), "/var/run/secrets/azure/tokens/azure-identity-token");
        assert_eq!(TokenLayout::parse("v1.5").unwrap(), TokenLayout::V1_5);
        assert_eq!(TokenLayout::parse("1.6").unwrap(), TokenLayout::V1_6);
        assert!(TokenLayout::parse("v2").is_err());
    }

    /// Upstream `pkg/config/config_test.go` and `NewPodMutator` validation.
    #[test]
    fn custom_endpoint_settings_validated_as_upstream() {
        let base = CustomTokenEndpointSettings::default();
        assert_eq!(base.build().unwrap(), None);
        let only_suffix = CustomTokenEndpointSettings { annotation_suffix: "identity-binding".into(), ..base.clone() };
        assert!(only_suffix.build().unwrap_err().to_string().contains("audience cannot be empty"));
        let only_aud = CustomTokenEndpointSettings { audience: "api://AKSIdentityBinding".into(), ..base.clone() };
        assert!(only_aud.build().unwrap_err().to_string().contains("annotation suffix cannot be empty"));
        let default_aud = CustomTokenEndpointSettings {
            annotation_suffix: "x".into(),
            audience: "API://AzureADTokenExchange".into(),
            ..base.clone()
        };
        assert!(default_aud.build().unwrap_err().to_string().contains("cannot be equal to default audience"));
        let bad_suffix =
            CustomTokenEndpointSettings { annotation_suffix: "a/b".into(), audience: "api://x".into(), ..base.clone() };
        assert!(bad_suffix.build().unwrap_err().to_string().contains("is not valid"));
        let two_cas = CustomTokenEndpointSettings {
            ca_data: "PEM".into(),
            ca_configmap_name: "kube-root-ca.crt".into(),
            ..base.clone()
        };
        assert!(two_cas.build().unwrap_err().to_string().starts_with("only one of AZURE_KUBERNETES_CA_DATA"));
        let selector_without_signer =
            CustomTokenEndpointSettings { ctb_label_selector: r#"{"matchLabels":{"a":"b"}}"#.into(), ..base.clone() };
        assert!(selector_without_signer.build().unwrap_err().to_string().contains("needs to be set"));
        let bad_selector = CustomTokenEndpointSettings {
            ctb_signer_name: "example.com/signer".into(),
            ctb_label_selector: "{".into(),
            ..base.clone()
        };
        assert!(bad_selector.build().unwrap_err().to_string().starts_with("failed to decode LabelSelector"));
        let ok = CustomTokenEndpointSettings {
            annotation_suffix: "identity-binding".into(),
            audience: "api://AKSIdentityBinding".into(),
            token_proxy: "https://kubernetes.default.svc".into(),
            ctb_signer_name: "example.com/signer".into(),
            ctb_label_selector: r#"{"matchExpressions":[{"key":"k","operator":"In","values":["v"]}],"x":1}"#.into(),
            ..base
        };
        let built = ok.build().unwrap().unwrap();
        assert_eq!(built.annotation, "azure.workload.identity/use-identity-binding");
        assert_eq!(
            built.ca,
            CustomCa::ClusterTrustBundle {
                signer_name: "example.com/signer".into(),
                label_selector: Some(
                    serde_json::json!({"matchExpressions":[{"key":"k","operator":"In","values":["v"]}]})
                ),
            }
        );
    }

    #[test]
    fn ca_bundle_names_are_checked() {
        assert!(CaBundle::new("wid-ca", "ca.crt").is_ok());
        assert!(CaBundle::new("Wid_CA", "ca.crt").is_err());
        assert!(CaBundle::new("wid-ca", "a/b").is_err());
        assert!(CaBundle::new("wid-ca", "..").is_err());
    }
}
