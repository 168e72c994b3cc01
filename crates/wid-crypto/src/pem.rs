//! wid's one PEM reader (RFC 7468): labels and DER payloads ([`parse_all`]), and the blocks of a key
//! file as Go tools find them ([`text_blocks`]).
//!
//! Our own rather than a crate's because we need every label (including the legacy
//! `RSA PUBLIC KEY`) and want the decoded bytes in zeroizing buffers, since most of what
//! passes through here is private keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// One `-----BEGIN <label>-----` … `-----END <label>-----` block.
pub struct PemBlock {
    pub label: String,
    pub der: Zeroizing<Vec<u8>>,
}

/// Parse every PEM block in `input`, in order. Text outside blocks is ignored (as
/// OpenSSL does, so commented key files work). The error is a user-facing reason.
pub fn parse_all(input: &str) -> Result<Vec<PemBlock>, String> {
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

/// One `-----BEGIN L-----` … `-----END L-----` block, re-assembled as PEM text.
#[derive(Debug, PartialEq, Eq)]
pub struct PemText {
    pub label: String,
    pub text: String,
}

/// The PEM blocks of `text` in order, each as its own PEM text, read as Go's `pem.Decode` loop reads
/// key files (kube-apiserver's, `azwi jwks`): text around and between blocks is ignored, an END line
/// with another label does not close a block, an unterminated block is dropped. Each block's
/// contents are then read by [`parse_all`] (e.g. through [`crate::jwk_from_public_pem`]).
pub fn text_blocks(text: &str) -> Vec<PemText> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in text.lines().map(str::trim) {
        match &mut open {
            None => {
                if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
                    open = Some((label.to_owned(), vec![line]));
                }
            }
            Some((label, lines)) => {
                lines.push(line);
                let end = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----"));
                if end == Some(label.as_str()) {
                    let text = lines.join("\n") + "\n";
                    blocks.push(PemText { label: std::mem::take(label), text });
                    open = None;
                }
            }
        }
    }
    blocks
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

    #[test]
    fn pem_blocks_in_order_with_text_around() {
        let text = "junk\r\n-----BEGIN EC PARAMETERS-----\r\nBggqhkjOPQMBBw==\r\n-----END EC PARAMETERS-----\n\
                    between\n-----BEGIN EC PRIVATE KEY-----\nAAAA\nBBBB\n-----END EC PRIVATE KEY-----\n\
                    -----BEGIN PUBLIC KEY-----\nunterminated\n";
        let blocks = text_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "EC PARAMETERS");
        assert_eq!(blocks[1].label, "EC PRIVATE KEY");
        assert_eq!(blocks[1].text, "-----BEGIN EC PRIVATE KEY-----\nAAAA\nBBBB\n-----END EC PRIVATE KEY-----\n");
    }

    #[test]
    fn mismatched_end_label_does_not_close_the_block() {
        let text = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----\n-----END PUBLIC KEY-----\n";
        let blocks = text_blocks(text);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].text.lines().count(), 4);
    }
}
