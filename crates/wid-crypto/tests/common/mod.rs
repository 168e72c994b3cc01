//! Shared fixtures for the integration tests. RSA key generation is slow in debug builds,
//! so each test binary generates its keys once.

// Each test binary uses a different subset; helpers may panic, they are test-only.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::sync::OnceLock;

use base64::Engine as _;
use wid_crypto::{EcCurve, SigningKey};

pub fn rsa_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate_rsa(2048).unwrap())
}

pub fn other_rsa_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate_rsa(2048).unwrap())
}

pub fn ec_key(curve: EcCurve) -> &'static SigningKey {
    static P256: OnceLock<SigningKey> = OnceLock::new();
    static P384: OnceLock<SigningKey> = OnceLock::new();
    static P521: OnceLock<SigningKey> = OnceLock::new();
    let cell = match curve {
        EcCurve::P256 => &P256,
        EcCurve::P384 => &P384,
        EcCurve::P521 => &P521,
    };
    cell.get_or_init(|| SigningKey::generate_ec(curve).unwrap())
}

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Minimal DER reader for tests: returns (tag, contents, rest) of the first TLV.
pub fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = if input[1] & 0x80 == 0 {
        (input[1] as usize, 2)
    } else {
        let n = (input[1] & 0x7f) as usize;
        let mut len = 0usize;
        for b in &input[2..2 + n] {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// Deterministic xorshift64 for the fuzz-like tests (no extra dependency).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}
