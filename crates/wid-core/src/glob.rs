//! Wildcard matching of RBAC actions (ASCII, case-insensitive). Claims-matching expressions have
//! their own, case-sensitive and character-aware (`expression::wildcard`).

/// `*` matches any run (also across `/`), `?` exactly one byte, letters in either case. Linear
/// time with a single backtrack point, so hostile patterns cannot blow up.
pub fn glob_ignore_case(pat: &[u8], text: &[u8]) -> bool {
    let eq = |a: u8, b: u8| a.eq_ignore_ascii_case(&b);
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&tc) = text.get(t) {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || eq(c, tc) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat.get(p..).is_some_and(|r| r.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pat: &[u8], text: &[u8]) -> bool {
        glob_ignore_case(pat, text)
    }

    #[test]
    fn wildcards() {
        assert!(glob(b"a?c*", b"abcdef"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(b"*", b""));
        assert!(glob(b"*/read", b"Microsoft.KeyVault/vaults/read"));
        assert!(!glob(b"*/read", b"Microsoft.KeyVault/vaults/write"));
        assert!(glob_ignore_case(
            b"microsoft.keyvault/vaults/*",
            b"Microsoft.KeyVault/vaults/secrets/getSecret/action"
        ));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
        // Pathological pattern stays fast.
        let text = vec![b'a'; 10_000];
        assert!(!glob(b"*a*a*a*a*a*b", &text));
    }
}
