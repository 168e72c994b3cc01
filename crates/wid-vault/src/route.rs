//! Key Vault data-plane routing: an HTTP method and a path (below the vault's host) to one
//! operation, or Key Vault's 404 / 405. Untrusted input: never panics (fuzzed).

use crate::VaultError;

/// One data-plane operation, as routed from method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Set(String),
    Get(String, Option<String>),
    Update(String, Option<String>),
    List,
    Versions(String),
    Delete(String),
    GetDeleted(String),
    ListDeleted,
    Recover(String),
    Purge(String),
    Backup(String),
    Restore,
}

/// Routes a request. Collection names are case-insensitive; a trailing slash after a secret name
/// means "the latest version" (`GET|PATCH /secrets/{name}/`).
pub fn route(method: &str, path: &str) -> Result<Op, VaultError> {
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let is = |s: &str, word: &str| s.eq_ignore_ascii_case(word);
    let m = method;
    let not_allowed = || VaultError::MethodNotAllowed { method: m.to_string(), path: path.to_string() };
    let op = match segs.as_slice() {
        [c] | [c, ""] if is(c, "secrets") => match m {
            "GET" => Op::List,
            _ => return Err(not_allowed()),
        },
        [c, r] if is(c, "secrets") && is(r, "restore") && m == "POST" => Op::Restore,
        [c, name] if is(c, "secrets") => match m {
            "PUT" => Op::Set(name.to_string()),
            "GET" => Op::Get(name.to_string(), None),
            "PATCH" => Op::Update(name.to_string(), None),
            "DELETE" => Op::Delete(name.to_string()),
            _ => return Err(not_allowed()),
        },
        [c, name, v] if is(c, "secrets") && is(v, "versions") => match m {
            "GET" => Op::Versions(name.to_string()),
            _ => return Err(not_allowed()),
        },
        [c, name, b] if is(c, "secrets") && is(b, "backup") => match m {
            "POST" => Op::Backup(name.to_string()),
            _ => return Err(not_allowed()),
        },
        [c, name, version] if is(c, "secrets") => {
            let version = (!version.is_empty()).then(|| version.to_string());
            match m {
                "GET" => Op::Get(name.to_string(), version),
                "PATCH" => Op::Update(name.to_string(), version),
                _ => return Err(not_allowed()),
            }
        }
        [c] | [c, ""] if is(c, "deletedsecrets") => match m {
            "GET" => Op::ListDeleted,
            _ => return Err(not_allowed()),
        },
        [c, name] if is(c, "deletedsecrets") => match m {
            "GET" => Op::GetDeleted(name.to_string()),
            "DELETE" => Op::Purge(name.to_string()),
            _ => return Err(not_allowed()),
        },
        [c, name, r] if is(c, "deletedsecrets") && is(r, "recover") => match m {
            "POST" => Op::Recover(name.to_string()),
            _ => return Err(not_allowed()),
        },
        _ => return Err(VaultError::UnknownPath(path.to_string())),
    };
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |m: &str, p: &str| route(m, p);
        assert_eq!(r("PUT", "/secrets/db").unwrap(), Op::Set("db".into()));
        assert_eq!(r("GET", "/secrets/db").unwrap(), Op::Get("db".into(), None));
        assert_eq!(r("GET", "/secrets/db/").unwrap(), Op::Get("db".into(), None));
        assert_eq!(r("GET", "/Secrets/db/abc").unwrap(), Op::Get("db".into(), Some("abc".into())));
        assert_eq!(r("PATCH", "/secrets/db/").unwrap(), Op::Update("db".into(), None));
        assert_eq!(r("PATCH", "/secrets/db/abc").unwrap(), Op::Update("db".into(), Some("abc".into())));
        assert_eq!(r("GET", "/secrets").unwrap(), Op::List);
        assert_eq!(r("GET", "/secrets/").unwrap(), Op::List);
        assert_eq!(r("GET", "/secrets/db/versions").unwrap(), Op::Versions("db".into()));
        assert_eq!(r("DELETE", "/secrets/db").unwrap(), Op::Delete("db".into()));
        assert_eq!(r("GET", "/deletedsecrets/db").unwrap(), Op::GetDeleted("db".into()));
        assert_eq!(r("DELETE", "/deletedsecrets/db").unwrap(), Op::Purge("db".into()));
        assert_eq!(r("GET", "/deletedsecrets").unwrap(), Op::ListDeleted);
        assert_eq!(r("POST", "/deletedsecrets/db/recover").unwrap(), Op::Recover("db".into()));
        assert_eq!(r("POST", "/secrets/db/backup").unwrap(), Op::Backup("db".into()));
        assert_eq!(r("POST", "/secrets/restore").unwrap(), Op::Restore);
        assert_eq!(r("GET", "/secrets/restore").unwrap(), Op::Get("restore".into(), None));
        for (m, p) in [
            ("POST", "/secrets"),
            ("DELETE", "/secrets/db/abc"),
            ("PUT", "/deletedsecrets/db"),
            ("GET", "/secrets/db/backup"),
        ] {
            assert_eq!(r(m, p).unwrap_err().to_wire().status, 405, "{m} {p}");
        }
        for p in ["/", "/keys/x", "/secrets/a/b/c", "/healthz", "/deletedsecrets/a/b"] {
            assert_eq!(r("GET", p).unwrap_err().to_wire().status, 404, "{p}");
        }
    }
}
