//! Token shapes: access tokens (Entra v1 claims, as managed identities receive them) and
//! service-account tokens of hosted cluster issuers (as kube-apiserver's TokenRequest mints them).

use serde_json::{Value, json};
use uuid::Uuid;
use wid_crypto::keys::SigningKey;
use wid_crypto::{Alg, JoseError, encode_compact};

/// Who an access token is for.
pub struct AccessSubject<'a> {
    pub client_id: Uuid,
    pub principal_id: Uuid,
    /// ARM id of the managed identity (`xms_mirid`), if the client is one.
    pub mirid: Option<&'a str>,
    /// `2` for an assertion, `1` for a client secret.
    pub appidacr: &'static str,
    /// The client asked for `xms_cc` (CAE capable).
    pub cp1: bool,
}

/// Claims of a v1 access token.
pub fn access_claims(
    issuer: &str,
    tenant: &Uuid,
    audience: &str,
    s: &AccessSubject<'_>,
    iat: i64,
    lifetime: i64,
) -> Value {
    let mut c = json!({
        "aud": audience,
        "iss": issuer,
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "aio": wid_crypto::secret::base64url(Uuid::new_v4().as_bytes()),
        "appid": s.client_id.to_string(),
        "appidacr": s.appidacr,
        "idp": issuer,
        "idtyp": "app",
        "oid": s.principal_id.to_string(),
        "rh": "0.wid",
        "sub": s.principal_id.to_string(),
        "tid": tenant.to_string(),
        "uti": wid_crypto::secret::base64url(Uuid::new_v4().as_bytes()),
        "ver": "1.0",
    });
    if let (Some(mirid), Some(obj)) = (s.mirid, c.as_object_mut()) {
        obj.insert("xms_mirid".into(), Value::String(mirid.to_string()));
    }
    if let (true, Some(obj)) = (s.cp1, c.as_object_mut()) {
        obj.insert("xms_cc".into(), json!(["CP1"]));
    }
    c
}

/// Signs claims with RS256 and the key's kid; access tokens carry `typ: JWT`, service-account tokens
/// (like kube-apiserver's) do not.
pub fn sign(key: &SigningKey, claims: &Value, typ: bool) -> Result<String, JoseError> {
    let header = if typ {
        json!({"typ": "JWT", "alg": "RS256", "kid": key.kid()})
    } else {
        json!({"alg": "RS256", "kid": key.kid()})
    };
    encode_compact(&header, claims, key, Alg::Rs256)
}

/// Claims of a service-account token, shaped like kube-apiserver's TokenRequest output.
pub fn service_account_claims(
    issuer: &str,
    cluster_id: &Uuid,
    namespace: &str,
    service_account: &str,
    audiences: &[String],
    iat: i64,
    lifetime: i64,
) -> Value {
    // A stable uid per (cluster, namespace, account), as a real ServiceAccount object has.
    let digest = wid_crypto::secret::sha256(format!("{cluster_id}/{namespace}/{service_account}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
    let uid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    json!({
        "aud": audiences,
        "exp": iat + lifetime,
        "iat": iat,
        "iss": issuer,
        "jti": Uuid::new_v4().to_string(),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": uid.to_string()},
        },
        "nbf": iat,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sa_claims_shape() {
        let c = service_account_claims(
            "https://h/oidc/t/c/",
            &Uuid::nil(),
            "ns",
            "sa",
            &["api://AzureADTokenExchange".into()],
            100,
            3600,
        );
        assert_eq!(c["sub"], "system:serviceaccount:ns:sa");
        assert_eq!(c["aud"], json!(["api://AzureADTokenExchange"]));
        assert_eq!(c["exp"], 3700);
        let again = service_account_claims("https://h/oidc/t/c/", &Uuid::nil(), "ns", "sa", &[], 0, 1);
        assert_eq!(c["kubernetes.io"]["serviceaccount"]["uid"], again["kubernetes.io"]["serviceaccount"]["uid"]);
    }
}
