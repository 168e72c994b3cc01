//! JWS/JWT compact serialization (RFC 7515/7519): strict parsing of untrusted tokens,
//! signature verification with pre-parsed keys, and signing.
//!
//! The parser is deliberately narrower than the RFCs: asymmetric algorithms only (no
//! `none`, no HMAC, so a public key can never be misused as a MAC secret), no `crit`
//! extensions, no duplicate JSON members, and header fields that point at keys (`jku`,
//! `x5u`, `jwk`, `x5c`) are ignored — keys come only from the issuer's configured JWKS.

use std::fmt;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use serde_json::{Map, Value};

use crate::error::{JoseError, sanitize_for_message};
use crate::json;
use crate::jwk::{Jwk, check_rsa_modulus_bits};
use crate::keys::{EcCurve, SigningKey};
use crate::secret::{base64url, base64url_decode};

/// A JWS algorithm we accept (RFC 7518 §3.1, asymmetric only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 (salt = hash length).
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
}

impl Alg {
    /// Every supported algorithm.
    pub const ALL: [Alg; 9] =
        [Alg::Rs256, Alg::Rs384, Alg::Rs512, Alg::Ps256, Alg::Ps384, Alg::Ps512, Alg::Es256, Alg::Es384, Alg::Es512];

    /// Parse a JOSE `alg` value (case-sensitive, RFC 7515 §4.1.1). `none`, `HS*` and
    /// anything unknown are [`JoseError::UnsupportedAlgorithm`].
    pub fn parse(s: &str) -> Result<Alg, JoseError> {
        Alg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| JoseError::UnsupportedAlgorithm(sanitize_for_message(s, 32)))
    }

    /// The JOSE name, e.g. `"RS256"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Es512 => "ES512",
        }
    }

    /// Whether this is an RSA algorithm (RS* or PS*).
    #[must_use]
    pub fn is_rsa(self) -> bool {
        self.rsa_params().is_some()
    }

    fn rsa_params(self) -> Option<&'static RsaParameters> {
        match self {
            Alg::Rs256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Alg::Rs384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Alg::Rs512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Alg::Ps256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Alg::Ps384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Alg::Ps512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            Alg::Es256 | Alg::Es384 | Alg::Es512 => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JOSE header fields we look at. Everything else (`jku`, `x5u`, `jwk`, `x5c`, …) is
/// ignored on purpose: a token must never choose the key it is verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwsHeader {
    /// `alg` as written in the token (already validated into [`Jws::alg`]).
    pub alg: String,
    /// `kid`: which issuer key signed the token.
    pub kid: Option<String>,
    /// `typ`, e.g. `JWT`.
    pub typ: Option<String>,
    /// `x5t`: SHA-1 certificate thumbprint (Entra client assertions use it like a kid).
    pub x5t: Option<String>,
}

/// A parsed, not yet verified, compact JWS. Claims are untrusted until [`Jws::verify`]
/// succeeds.
///
/// `Debug` leaves out the signing input and signature: together they are the token, and
/// a client assertion is a bearer credential that must not end up in logs.
#[derive(Clone)]
pub struct Jws {
    /// The protected header.
    pub header: JwsHeader,
    /// The validated algorithm from the header.
    pub alg: Alg,
    /// The payload, which must be a JSON object (JWT claims set).
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

/// Parse a compact JWS (`header.payload.signature`) without verifying it.
///
/// ASCII whitespace around the token is trimmed. Refused, each with a reason: longer
/// than `max_len` bytes ([`JoseError::TooLarge`]); not exactly three parts; base64url with
/// padding or invalid characters; header or payload not a JSON object; duplicate JSON
/// member names; a `crit` header; an empty signature; and any `alg` outside [`Alg`]
/// ([`JoseError::UnsupportedAlgorithm`]). Never panics.
pub fn parse_compact(token: &str, max_len: usize) -> Result<Jws, JoseError> {
    let token = token.trim_ascii();
    if token.len() > max_len {
        return Err(JoseError::TooLarge);
    }
    if token.is_empty() {
        return Err(JoseError::Malformed("token is empty".to_owned()));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let count = token.bytes().filter(|&b| b == b'.').count().saturating_add(1);
        return Err(JoseError::Malformed(format!("expected 3 dot-separated parts, found {count}")));
    };

    let header_bytes = base64url_decode(header_b64)
        .ok_or_else(|| JoseError::Malformed("header is not unpadded base64url".to_owned()))?;
    let header_map = json::parse_object(&header_bytes).map_err(|e| JoseError::Malformed(format!("header: {e}")))?;
    let header = header_from_map(&header_map)?;
    // Decide on the algorithm before touching anything else: `none` and HMAC tokens are
    // refused here, so no code path ever treats key bytes as a MAC secret.
    let alg = Alg::parse(&header.alg)?;
    if header_map.contains_key("crit") {
        return Err(JoseError::Malformed("header has \"crit\" extensions, which are not supported".to_owned()));
    }

    let claims_bytes = base64url_decode(claims_b64)
        .ok_or_else(|| JoseError::Malformed("payload is not unpadded base64url".to_owned()))?;
    let claims = json::parse_object(&claims_bytes).map_err(|e| JoseError::Malformed(format!("payload: {e}")))?;

    if signature_b64.is_empty() {
        return Err(JoseError::Malformed("signature is empty".to_owned()));
    }
    let signature = base64url_decode(signature_b64)
        .ok_or_else(|| JoseError::Malformed("signature is not unpadded base64url".to_owned()))?;

    // The signing input is everything before the last dot; its length is the two first
    // parts plus the dot between them, which cannot overflow since it is within `token`.
    let signing_input_len = header_b64.len() + 1 + claims_b64.len();
    let signing_input =
        token.get(..signing_input_len).ok_or_else(|| JoseError::Malformed("token structure".to_owned()))?.to_owned();

    Ok(Jws { header, alg, claims, signing_input, signature })
}

fn header_from_map(map: &Map<String, Value>) -> Result<JwsHeader, JoseError> {
    let alg = match map.get("alg") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(JoseError::Malformed("header \"alg\" is not a string".to_owned())),
        None => return Err(JoseError::Malformed("header has no \"alg\"".to_owned())),
    };
    Ok(JwsHeader {
        alg,
        kid: optional_header_string(map, "kid")?,
        typ: optional_header_string(map, "typ")?,
        x5t: optional_header_string(map, "x5t")?,
    })
}

fn optional_header_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, JoseError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JoseError::Malformed(format!("header \"{name}\" is not a string"))),
    }
}

impl fmt::Debug for Jws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jws")
            .field("header", &self.header)
            .field("alg", &self.alg)
            .field("claims", &self.claims)
            .field("signature_len", &self.signature.len())
            .finish_non_exhaustive()
    }
}

impl Jws {
    /// Verify the signature with `key`: the key's type must fit [`Jws::alg`] (and its own
    /// `alg`, if the JWK pinned one, must equal it).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), JoseError> {
        key.verify(self.alg, self.signing_input.as_bytes(), &self.signature)
    }

    /// The exact bytes that were signed: `base64url(header) "." base64url(payload)`.
    #[must_use]
    pub fn signing_input(&self) -> &str {
        &self.signing_input
    }

    /// The raw signature bytes.
    #[must_use]
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// A string claim; `None` if absent or not a string.
    #[must_use]
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// An integer claim such as `exp`/`nbf`/`iat`. Accepts JSON integers and floats with
    /// an integral value (some issuers emit `1.7e9`); `None` otherwise or out of range.
    #[must_use]
    pub fn claim_i64(&self, name: &str) -> Option<i64> {
        // i64::MAX is not exactly representable as f64; 2^63 is, and is out of range.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        let n = self.claims.get(name)?.as_number()?;
        if let Some(i) = n.as_i64() {
            return Some(i);
        }
        let f = n.as_f64()?;
        if f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) {
            // In range and integral, so the cast is exact.
            return Some(f as i64);
        }
        None
    }

    /// The `aud` claim as a list: a single string or the strings of an array. Non-string
    /// array elements are skipped; absent or other types give an empty list.
    #[must_use]
    pub fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// A public key ready to verify signatures: parsed once from a JWK, then used for many
/// verifications (this is on the hot path of every token exchange).
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    alg: Option<Alg>,
    kind: VerifyingKind,
}

#[derive(Clone)]
enum VerifyingKind {
    /// One parsed key per RSA algorithm the key may be used with: aws-lc binds a parsed
    /// key to its padding/digest, and building them up front keeps `verify` parse-free.
    Rsa {
        bits: usize,
        by_alg: Vec<(Alg, ParsedPublicKey)>,
    },
    Ec {
        curve: EcCurve,
        key: ParsedPublicKey,
    },
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            VerifyingKind::Rsa { bits, .. } => format!("RSA-{bits}"),
            VerifyingKind::Ec { curve, .. } => format!("EC {}", curve.jwk_crv()),
        };
        f.debug_struct("VerifyingKey").field("kid", &self.kid).field("alg", &self.alg).field("kind", &kind).finish()
    }
}

impl VerifyingKey {
    /// Build a verifying key from a JWK. Refuses: `use` other than `sig`; an `alg` that
    /// is not a supported signature algorithm or does not fit the key type; RSA keys
    /// outside 2048–8192 bits; EC keys off-curve, with wrong-length coordinates, or on
    /// unsupported curves; any other `kty`.
    pub fn from_jwk(jwk: &Jwk) -> Result<VerifyingKey, JoseError> {
        if let Some(use_) = jwk.use_.as_deref()
            && use_ != "sig"
        {
            return Err(JoseError::UnsupportedKey(format!(
                "key use is \"{}\", not \"sig\"",
                sanitize_for_message(use_, 16)
            )));
        }
        let alg = match jwk.alg.as_deref() {
            None => None,
            Some(a) => Some(Alg::parse(a).map_err(|_| {
                JoseError::UnsupportedKey(format!(
                    "key algorithm \"{}\" is not a supported signature algorithm",
                    sanitize_for_message(a, 32)
                ))
            })?),
        };
        let kind = match jwk.kty.as_str() {
            "RSA" => rsa_from_jwk(jwk, alg)?,
            "EC" => ec_from_jwk(jwk, alg)?,
            other => {
                return Err(JoseError::UnsupportedKey(format!(
                    "key type \"{}\" is not supported",
                    sanitize_for_message(other, 16)
                )));
            }
        };
        Ok(VerifyingKey { kid: jwk.kid.clone(), alg, kind })
    }

    /// The JWK's `kid`, if it had one.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The JWK's pinned `alg`, if it had one.
    #[must_use]
    pub fn alg(&self) -> Option<Alg> {
        self.alg
    }

    /// Whether this key may verify `alg`.
    #[must_use]
    pub fn supports(&self, alg: Alg) -> bool {
        self.check_alg(alg).is_ok()
    }

    fn check_alg(&self, alg: Alg) -> Result<&ParsedPublicKey, JoseError> {
        if let Some(pinned) = self.alg
            && pinned != alg
        {
            return Err(JoseError::KeyMismatch(format!("token is signed with {alg} but the key is for {pinned}")));
        }
        match &self.kind {
            VerifyingKind::Rsa { by_alg, .. } => by_alg
                .iter()
                .find(|(a, _)| *a == alg)
                .map(|(_, k)| k)
                .ok_or_else(|| JoseError::KeyMismatch(format!("{alg} cannot be verified with an RSA key"))),
            VerifyingKind::Ec { curve, key } => {
                if curve.alg() == alg {
                    Ok(key)
                } else {
                    Err(JoseError::KeyMismatch(format!("{alg} cannot be verified with an EC {} key", curve.jwk_crv())))
                }
            }
        }
    }

    /// Verify `signature` over `message` with `alg`. ES* signatures are JWS fixed-size
    /// `r || s`.
    pub fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        let key = self.check_alg(alg)?;
        key.verify_sig(message, signature).map_err(|_| JoseError::BadSignature)
    }
}

fn decode_member(jwk: &Jwk, value: Option<&String>, name: &str) -> Result<Vec<u8>, JoseError> {
    let value = value.ok_or_else(|| {
        JoseError::UnsupportedKey(format!("{} key has no \"{name}\"", sanitize_for_message(&jwk.kty, 16)))
    })?;
    base64url_decode(value).ok_or_else(|| JoseError::UnsupportedKey(format!("key member \"{name}\" is not base64url")))
}

fn rsa_from_jwk(jwk: &Jwk, alg: Option<Alg>) -> Result<VerifyingKind, JoseError> {
    let n = decode_member(jwk, jwk.n.as_ref(), "n")?;
    let e = decode_member(jwk, jwk.e.as_ref(), "e")?;
    // RFC 7518 forbids leading zeros, but some issuers emit one on `n`; tolerate it
    // (aws-lc refuses non-minimal encodings).
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    let bits = check_rsa_modulus_bits(n)?;
    if e.is_empty() || e.len() > 8 {
        return Err(JoseError::UnsupportedKey("RSA exponent is out of range".to_owned()));
    }
    let algs: Vec<Alg> = match alg {
        Some(a) if a.is_rsa() => vec![a],
        Some(a) => {
            return Err(JoseError::UnsupportedKey(format!("key algorithm {a} does not fit an RSA key")));
        }
        None => Alg::ALL.into_iter().filter(|a| a.is_rsa()).collect(),
    };
    let components = RsaPublicKeyComponents { n, e };
    let mut by_alg = Vec::with_capacity(algs.len());
    for a in algs {
        let Some(params) = a.rsa_params() else { continue };
        let parsed = components
            .to_parsed_public_key(params)
            .map_err(|e| JoseError::UnsupportedKey(format!("invalid RSA public key: {e}")))?;
        by_alg.push((a, parsed));
    }
    Ok(VerifyingKind::Rsa { bits, by_alg })
}

fn ec_from_jwk(jwk: &Jwk, alg: Option<Alg>) -> Result<VerifyingKind, JoseError> {
    let crv = jwk.crv.as_deref().ok_or_else(|| JoseError::UnsupportedKey("EC key has no \"crv\"".to_owned()))?;
    let curve = EcCurve::from_jwk_crv(crv).ok_or_else(|| {
        JoseError::UnsupportedKey(format!("EC curve \"{}\" is not supported", sanitize_for_message(crv, 16)))
    })?;
    if let Some(a) = alg
        && a != curve.alg()
    {
        return Err(JoseError::UnsupportedKey(format!("key algorithm {a} does not fit curve {crv}")));
    }
    let x = decode_member(jwk, jwk.x.as_ref(), "x")?;
    let y = decode_member(jwk, jwk.y.as_ref(), "y")?;
    let len = curve.coordinate_len();
    if x.len() != len || y.len() != len {
        return Err(JoseError::UnsupportedKey(format!("EC {crv} coordinates must be {len} bytes each")));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let key = ParsedPublicKey::new(curve.verification_alg(), &point)
        .map_err(|_| JoseError::UnsupportedKey(format!("invalid EC {crv} public key")))?;
    Ok(VerifyingKind::Ec { curve, key })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// Sign and serialize a compact JWS.
///
/// `header` and `claims` must be JSON objects. The header's `alg` is always set to `alg`
/// (so it cannot disagree with the signature), and `kid` is set to [`SigningKey::kid`]
/// unless the caller supplied one.
pub fn encode_compact(header: &Value, claims: &Value, key: &SigningKey, alg: Alg) -> Result<String, JoseError> {
    let Value::Object(header) = header else {
        return Err(JoseError::Malformed("JWS header must be a JSON object".to_owned()));
    };
    if !claims.is_object() {
        return Err(JoseError::Malformed("JWS claims must be a JSON object".to_owned()));
    }
    if !key.supports(alg) {
        return Err(JoseError::KeyMismatch(format!("key {} cannot sign {alg}", key.kid())));
    }
    let mut header = header.clone();
    header.insert("alg".to_owned(), Value::String(alg.as_str().to_owned()));
    if !header.contains_key("kid") {
        header.insert("kid".to_owned(), Value::String(key.kid().to_owned()));
    }
    let header_json =
        serde_json::to_vec(&header).map_err(|e| JoseError::Crypto(format!("cannot serialize header: {e}")))?;
    let claims_json =
        serde_json::to_vec(claims).map_err(|e| JoseError::Crypto(format!("cannot serialize claims: {e}")))?;
    let mut token = base64url(&header_json);
    token.push('.');
    token.push_str(&base64url(&claims_json));
    let signature = key.sign(alg, token.as_bytes())?;
    token.push('.');
    token.push_str(&base64url(&signature));
    Ok(token)
}
