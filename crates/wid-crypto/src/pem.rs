//! Minimal RFC 7468 PEM reader: labels and DER payloads, nothing else.
//!
//! Our own rather than a crate's because we need every label (including the legacy
//! `RSA PUBLIC KEY`) and want the decoded bytes in zeroizing buffers, since most of what
//! passes through here is private keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// One `-----BEGIN <label>-----` … `-----END <label>-----` block.
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) der: Zeroizing<Vec<u8>>,
}

/// Parse every PEM block in `input`, in order. Text outside blocks is ignored (as
/// OpenSSL does, so commented key files work). The error is a user-facing reason.
pub(crate) fn parse_all(input: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Zeroizing<String>)> = None;
    for line in input.lines() {
        let line = line.trim();
        match current.as_mut() {
            None => {
                if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|rest| rest.strip_suffix("-----")) {
                    current = Some((label.to_owned(), Zeroizing::new(String::new())));
                }
            }
            Some((label, body)) => {
                if let Some(end) = line.strip_prefix("-----END ").and_then(|rest| rest.strip_suffix("-----")) {
                    if end != label.as_str() {
                        return Err(format!("PEM block BEGIN {label} closed by END {end}"));
                    }
                    let der = Zeroizing::new(
                        STANDARD
                            .decode(body.as_bytes())
                            .map_err(|_| format!("PEM block {label} is not valid base64"))?,
                    );
                    blocks.push(PemBlock { label: std::mem::take(label), der });
                    current = None;
                } else if line.contains(':') {
                    // RFC 1421 headers only appear on legacy encrypted keys.
                    return Err("encrypted (or header-carrying) PEM blocks are not supported".to_owned());
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    if let Some((label, _)) = current {
        return Err(format!("PEM block {label} has no END line"));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_and_ignores_surrounding_text() {
        let text =
            "comment\n-----BEGIN A-----\nAQAB\n-----END A-----\n\n  -----BEGIN B C-----\r\nAQ==\r\n-----END B C-----\n";
        let blocks = parse_all(text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "A");
        assert_eq!(blocks[0].der.as_slice(), &[1, 0, 1]);
        assert_eq!(blocks[1].label, "B C");
        assert_eq!(blocks[1].der.as_slice(), &[1]);
    }

    #[test]
    fn rejects_broken_blocks() {
        assert!(parse_all("-----BEGIN A-----\nAQAB\n").is_err());
        assert!(parse_all("-----BEGIN A-----\nAQAB\n-----END B-----\n").is_err());
        assert!(parse_all("-----BEGIN A-----\n!!!!\n-----END A-----\n").is_err());
        assert!(parse_all("-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\nAQAB\n-----END A-----\n").is_err());
        assert!(parse_all("").unwrap().is_empty());
    }
}
