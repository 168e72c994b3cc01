//! Kubernetes object names, checked exactly as the API server checks them (`IsDNS1123Label`,
//! `IsDNS1123Subdomain` in apimachinery), before a name reaches a URL, a token or a patch.

/// A DNS-1123 label: 1–63 of `[a-z0-9-]`, alphanumeric at both ends (namespace names).
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shaped(s)
}

/// A DNS-1123 subdomain: 1–253 characters, dot-separated labels (ServiceAccount and ConfigMap names).
/// As in Kubernetes, only the whole name is length-limited, not each label.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_shaped)
}

fn is_label_shaped(s: &str) -> bool {
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = s.as_bytes();
    b.first().is_some_and(alnum) && b.last().is_some_and(alnum) && b.iter().all(|c| alnum(c) || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for good in ["default", "a", "0", "kube-system", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a/b", "a.b", "..", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn subdomains() {
        for good in ["workload-identity-sa1", "a.b", "my.sa-1", &format!("{}.b", "a".repeat(100)), &"a".repeat(253)] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        for bad in ["", ".", "a.", ".a", "a..b", "../x", "A.b", "a_b", &"a".repeat(254)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }
}
