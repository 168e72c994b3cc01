//! Parsing and validation of what callers send: the vault host, `api-version`, secret names and
//! versions, paging parameters and the JSON bodies of set, update and restore. Everything here is a
//! pure function over untrusted input and refuses instead of panicking.

use serde::Deserialize;
use wid_core::model::Tags;
use zeroize::Zeroizing;

use crate::error::VaultError;

/// Largest secret value in bytes (Key Vault: 25k).
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
/// Longest `contentType`.
pub const MAX_CONTENT_TYPE: usize = 255;
/// Most tags on one secret.
pub const MAX_TAGS: usize = 15;
/// Longest tag name.
pub const MAX_TAG_NAME: usize = 512;
/// Longest tag value.
pub const MAX_TAG_VALUE: usize = 256;
/// Longest secret name.
pub const MAX_NAME: usize = 127;
/// Page size bounds (`maxresults`).
pub const MAX_PAGE: usize = 25;

/// The vault a request is for, as read from its `Host` (or HTTP/2 `:authority`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultHost {
    /// The vault's name, lower-case.
    pub vault: String,
    /// `host[:port]` as the client wrote it; ids and `nextLink`s are built on it, so the client can
    /// re-parse them into the vault URL it uses.
    pub authority: String,
    /// Reached under Azure's own name, `{vault}.vault.azure.net` (`wid serve --azure-hostnames`):
    /// tokens and the challenge are then Azure's Key Vault resource.
    pub azure: bool,
}

impl VaultHost {
    /// `{vault}.{suffix}` (case-insensitive) → the vault. `suffix` is `host[:port]` exactly as in
    /// the public URLs (no port when it is 443; then an explicit `:443` is accepted too).
    pub fn parse(authority: &str, suffix: &str) -> Option<VaultHost> {
        let lower = authority.to_ascii_lowercase();
        let suffix = suffix.to_ascii_lowercase();
        let host = if suffix.contains(':') { lower.as_str() } else { lower.strip_suffix(":443").unwrap_or(&lower) };
        let label = host.strip_suffix(suffix.as_str())?.strip_suffix('.')?;
        let dns_label = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        dns_label.then(|| VaultHost { vault: label.to_string(), authority: authority.to_string(), azure: false })
    }
}

/// Accepts `\d+\.\d+(-preview(\.\d+)?)?` and `\d{4}-\d{2}-\d{2}(-preview)?`.
pub fn valid_api_version(v: &str) -> bool {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn dotted(s: &str) -> bool {
        matches!(s.split_once('.'), Some((a, b)) if digits(a) && digits(b))
    }
    fn dated(s: &str) -> bool {
        let parts: Vec<&str> = s.split('-').collect();
        matches!(parts.as_slice(), [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 && digits(y) && digits(m) && digits(d))
    }
    if let Some((base, tail)) = v.split_once("-preview") {
        if dotted(base) {
            return tail.is_empty() || tail.strip_prefix('.').is_some_and(digits);
        }
        return dated(base) && tail.is_empty();
    }
    dotted(v) || dated(v)
}

/// Checks a secret name: `^[0-9a-zA-Z-]{1,127}$`.
pub fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        return Ok(());
    }
    // Echoed as sent, but bounded: the path segment may be up to the header limit long.
    let mut shown: String = name.chars().take(MAX_NAME + 1).collect();
    if shown.len() < name.len() {
        shown.push('…');
    }
    Err(VaultError::BadParameter(format!("The request URI contains an invalid name: {shown}")))
}

/// A version id as sent (any case): 32 hex digits, or `None` if it cannot name a version.
pub fn parse_version(version: &str) -> Option<String> {
    (version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit())).then(|| version.to_ascii_lowercase())
}

/// `maxresults` (1–25, default 25).
pub fn page_size(maxresults: Option<&str>) -> Result<usize, VaultError> {
    let Some(raw) = maxresults else { return Ok(MAX_PAGE) };
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(VaultError::BadParameter(format!(
            "The value '{}' of the 'maxresults' parameter is invalid; it must be an integer from 1 to {MAX_PAGE}.",
            raw.chars().take(32).collect::<String>()
        ))),
    }
}

/// The store cursor inside a `$skiptoken`.
pub fn decode_skiptoken(token: Option<&str>) -> Result<Option<String>, VaultError> {
    let Some(t) = token.filter(|t| !t.is_empty()) else { return Ok(None) };
    wid_crypto::secret::base64url_decode(t)
        .filter(|b| b.len() <= 1024)
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| {
            VaultError::BadParameter("The $skiptoken parameter is invalid; use the nextLink as returned.".into())
        })
}

/// A store cursor as a `$skiptoken`.
pub fn encode_skiptoken(cursor: &str) -> String {
    wid_crypto::secret::base64url(cursor.as_bytes())
}

fn bad_json(e: &serde_json::Error) -> VaultError {
    VaultError::BadParameter(format!("The request body is not valid JSON for this operation: {e}."))
}

/// Attributes a caller may set.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributesIn {
    pub enabled: Option<bool>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
}

/// The secret value as sent: zeroized on drop, never printed.
pub struct SecretValue(pub Zeroizing<String>);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(..)")
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretValue(Zeroizing::new(s)))
    }
}

/// `SecretSetParameters`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetParams {
    pub value: Option<SecretValue>,
    pub content_type: Option<String>,
    pub tags: Option<Tags>,
    pub attributes: Option<AttributesIn>,
}

/// `SecretUpdateParameters`: fields present replace, fields absent (or null) stay.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateParams {
    pub content_type: Option<String>,
    pub tags: Option<Tags>,
    pub attributes: Option<AttributesIn>,
}

/// `{"value": "<backup blob>"}`.
#[derive(Debug, Deserialize)]
pub struct RestoreParams {
    pub value: Option<String>,
}

fn check_meta(content_type: Option<&str>, tags: Option<&Tags>) -> Result<(), VaultError> {
    if content_type.is_some_and(|c| c.chars().count() > MAX_CONTENT_TYPE) {
        return Err(VaultError::BadParameter(format!("contentType is longer than {MAX_CONTENT_TYPE} characters.")));
    }
    if let Some(tags) = tags {
        if tags.len() > MAX_TAGS {
            return Err(VaultError::BadParameter(format!(
                "A secret can have at most {MAX_TAGS} tags; the request has {}.",
                tags.len()
            )));
        }
        for (k, v) in tags {
            if k.is_empty() || k.chars().count() > MAX_TAG_NAME {
                return Err(VaultError::BadParameter(format!("Tag names must have 1 to {MAX_TAG_NAME} characters.")));
            }
            if v.chars().count() > MAX_TAG_VALUE {
                return Err(VaultError::BadParameter(format!(
                    "The value of tag '{}' is longer than {MAX_TAG_VALUE} characters.",
                    k.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    Ok(())
}

impl SetParams {
    /// Parses and validates a set body; `value` is required and at most 25 KiB.
    pub fn parse(body: &[u8]) -> Result<(SecretValue, SetParams), VaultError> {
        let mut p: SetParams = serde_json::from_slice(body).map_err(|e| bad_json(&e))?;
        let value = p
            .value
            .take()
            .ok_or_else(|| VaultError::BadParameter("The request body must contain the secret's 'value'.".into()))?;
        if value.0.len() > MAX_VALUE_BYTES {
            return Err(VaultError::BadParameter(format!(
                "The secret value is {} bytes; the maximum is {MAX_VALUE_BYTES} bytes.",
                value.0.len()
            )));
        }
        check_meta(p.content_type.as_deref(), p.tags.as_ref())?;
        Ok((value, p))
    }
}

impl UpdateParams {
    /// Parses and validates an update body (an empty body changes nothing).
    pub fn parse(body: &[u8]) -> Result<UpdateParams, VaultError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(UpdateParams::default());
        }
        let p: UpdateParams = serde_json::from_slice(body).map_err(|e| bad_json(&e))?;
        check_meta(p.content_type.as_deref(), p.tags.as_ref())?;
        Ok(p)
    }
}

impl RestoreParams {
    /// The blob of a restore body.
    pub fn parse(body: &[u8]) -> Result<String, VaultError> {
        let p: RestoreParams = serde_json::from_slice(body).map_err(|e| bad_json(&e))?;
        p.value
            .ok_or_else(|| VaultError::BadParameter("The request body must contain the backup blob as 'value'.".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let h = VaultHost::parse("MyVault.Vault.Localhost:8443", "vault.localhost:8443").unwrap();
        assert_eq!(h.vault, "myvault");
        assert_eq!(h.authority, "MyVault.Vault.Localhost:8443");
        assert!(VaultHost::parse("myvault.vault.localhost", "vault.localhost:8443").is_none());
        assert!(VaultHost::parse("myvault.vault.localhost:9999", "vault.localhost:8443").is_none());
        assert!(VaultHost::parse("vault.localhost:8443", "vault.localhost:8443").is_none());
        assert!(VaultHost::parse(".vault.localhost:8443", "vault.localhost:8443").is_none());
        assert!(VaultHost::parse("a.b.vault.localhost:8443", "vault.localhost:8443").is_none());
        assert!(VaultHost::parse("a_b.vault.localhost:8443", "vault.localhost:8443").is_none());
        assert!(VaultHost::parse("xvault.localhost:8443", "vault.localhost:8443").is_none());
        assert!(VaultHost::parse("localhost:8443", "vault.localhost:8443").is_none());
        assert_eq!(VaultHost::parse("kv.vault.example.test:443", "vault.example.test").unwrap().vault, "kv");
        assert_eq!(VaultHost::parse("kv.vault.example.test", "vault.example.test").unwrap().vault, "kv");
    }

    #[test]
    fn api_versions() {
        for ok in ["7.4", "7.6-preview.2", "7.5-preview", "2025-07-01", "2026-03-01-preview", "2016-10-01"] {
            assert!(valid_api_version(ok), "{ok}");
        }
        for bad in
            ["", "7", "7.", ".4", "7.4-beta", "2025-7-01", "2025-07-01-preview.1", "x7.4", "7.4-preview.", "1.0 "]
        {
            assert!(!valid_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn names_versions_paging() {
        assert!(check_name("a-B-9").is_ok());
        assert!(check_name(&"a".repeat(127)).is_ok());
        for bad in ["", "a_b", "a.b", "a b", "é", &"a".repeat(128)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_version("03BCCCC7C8CF4546A0E3E21E52560441").as_deref(),
            Some("03bcccc7c8cf4546a0e3e21e52560441")
        );
        assert!(parse_version("xyz").is_none());
        assert_eq!(page_size(None).unwrap(), 25);
        assert_eq!(page_size(Some("1")).unwrap(), 1);
        for bad in ["0", "26", "-1", "x", ""] {
            assert!(page_size(Some(bad)).is_err(), "{bad}");
        }
        let t = encode_skiptoken("abc/def");
        assert_eq!(decode_skiptoken(Some(&t)).unwrap().as_deref(), Some("abc/def"));
        assert!(decode_skiptoken(Some("!!")).is_err());
        assert_eq!(decode_skiptoken(Some("")).unwrap(), None);
    }

    #[test]
    fn bodies() {
        let (v, p) = SetParams::parse(
            br#"{"value":"s3cret","contentType":"text/plain","tags":{"a":"b"},"attributes":{"enabled":false,"exp":5}}"#,
        )
        .unwrap();
        assert_eq!(v.0.as_str(), "s3cret");
        assert_eq!(p.attributes.unwrap().enabled, Some(false));
        assert!(format!("{v:?}").contains(".."));
        assert!(SetParams::parse(b"").is_err());
        assert!(SetParams::parse(b"{").is_err());
        assert!(SetParams::parse(br#"{"contentType":"x"}"#).is_err());
        let big = format!(r#"{{"value":"{}"}}"#, "x".repeat(MAX_VALUE_BYTES + 1));
        assert!(SetParams::parse(big.as_bytes()).is_err());
        let exact = format!(r#"{{"value":"{}"}}"#, "x".repeat(MAX_VALUE_BYTES));
        assert!(SetParams::parse(exact.as_bytes()).is_ok());
        let many: Tags = (0..16).map(|i| (format!("t{i}"), "v".into())).collect();
        let body = serde_json::json!({"value": "v", "tags": many}).to_string();
        assert!(SetParams::parse(body.as_bytes()).is_err());
        let body = serde_json::json!({"value": "v", "tags": {"k": "v".repeat(257)}}).to_string();
        assert!(SetParams::parse(body.as_bytes()).is_err());
        let body = serde_json::json!({"value": "v", "tags": {"k".repeat(513): "v"}}).to_string();
        assert!(SetParams::parse(body.as_bytes()).is_err());
        let body = serde_json::json!({"value": "v", "contentType": "c".repeat(256)}).to_string();
        assert!(SetParams::parse(body.as_bytes()).is_err());
        assert!(UpdateParams::parse(b"").unwrap().tags.is_none());
        assert!(RestoreParams::parse(br#"{"value":"abc"}"#).is_ok());
        assert!(RestoreParams::parse(b"{}").is_err());
    }
}
