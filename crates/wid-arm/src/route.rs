//! Parsing of ARM request paths into the resources wid serves.
//!
//! ARM paths are case-insensitive (`resourceGroups`/`resourcegroups`, provider namespaces), so routing
//! is done here on decoded segments rather than by a case-sensitive router. Every segment is
//! percent-decoded once and refused if it decodes to something that could change the path's meaning
//! (`/`, `\`, `.`/`..`, control characters).

/// A management resource addressed by a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArmRoute {
    Subscriptions,
    Tenants,
    MetadataEndpoints,
    Subscription {
        sub: String,
    },
    Groups {
        sub: String,
    },
    Group {
        sub: String,
        rg: String,
    },
    Identities {
        sub: String,
        rg: Option<String>,
    },
    Identity {
        sub: String,
        rg: String,
        name: String,
    },
    Credentials {
        sub: String,
        rg: String,
        identity: String,
    },
    Credential {
        sub: String,
        rg: String,
        identity: String,
        name: String,
    },
    Clusters {
        sub: String,
        rg: Option<String>,
    },
    Cluster {
        sub: String,
        rg: String,
        name: String,
    },
    ClusterToken {
        sub: String,
        rg: String,
        name: String,
    },
    /// A path under a subscription that names no resource type wid serves.
    UnknownType(String),
}

/// Why a path could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// A segment is not valid once decoded.
    BadSegment(String),
    /// Not an ARM path.
    NotArm,
}

fn decode(seg: &str) -> Result<String, RouteError> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let v =
                hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| RouteError::BadSegment(seg.into()))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| RouteError::BadSegment(seg.into()))?;
    if s.is_empty() || s == "." || s == ".." || s.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return Err(RouteError::BadSegment(s));
    }
    Ok(s)
}

/// Routes a raw (percent-encoded) request path.
pub fn parse(path: &str) -> Result<ArmRoute, RouteError> {
    let trimmed = path.trim_end_matches('/');
    let raw: Vec<&str> = trimmed.split('/').skip(1).collect();
    let segs: Vec<String> = raw.iter().map(|s| decode(s)).collect::<Result<_, _>>()?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let route = match s.as_slice() {
        [t] if eq(t, "subscriptions") => ArmRoute::Subscriptions,
        [t] if eq(t, "tenants") => ArmRoute::Tenants,
        [m, e] if eq(m, "metadata") && eq(e, "endpoints") => ArmRoute::MetadataEndpoints,
        [t, sub, rest @ ..] if eq(t, "subscriptions") => under_subscription(sub, rest),
        _ => return Err(RouteError::NotArm),
    };
    Ok(route)
}

fn under_subscription(sub: &str, rest: &[&str]) -> ArmRoute {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let sub = sub.to_string();
    let mi = |ns: &str, ty: &str| eq(ns, "Microsoft.ManagedIdentity") && eq(ty, "userAssignedIdentities");
    let mc = |ns: &str, ty: &str| eq(ns, "Microsoft.ContainerService") && eq(ty, "managedClusters");
    match rest {
        [] => ArmRoute::Subscription { sub },
        [g] if eq(g, "resourceGroups") => ArmRoute::Groups { sub },
        [g, rg] if eq(g, "resourceGroups") => ArmRoute::Group { sub, rg: rg.to_string() },
        [p, ns, ty] if eq(p, "providers") && mi(ns, ty) => ArmRoute::Identities { sub, rg: None },
        [p, ns, ty] if eq(p, "providers") && mc(ns, ty) => ArmRoute::Clusters { sub, rg: None },
        [g, rg, p, ns, ty, tail @ ..] if eq(g, "resourceGroups") && eq(p, "providers") => {
            let rg = rg.to_string();
            match tail {
                [] if mi(ns, ty) => ArmRoute::Identities { sub, rg: Some(rg) },
                [name] if mi(ns, ty) => ArmRoute::Identity { sub, rg, name: name.to_string() },
                [name, f] if mi(ns, ty) && eq(f, "federatedIdentityCredentials") => {
                    ArmRoute::Credentials { sub, rg, identity: name.to_string() }
                }
                [name, f, fic] if mi(ns, ty) && eq(f, "federatedIdentityCredentials") => {
                    ArmRoute::Credential { sub, rg, identity: name.to_string(), name: fic.to_string() }
                }
                [] if mc(ns, ty) => ArmRoute::Clusters { sub, rg: Some(rg) },
                [name] if mc(ns, ty) => ArmRoute::Cluster { sub, rg, name: name.to_string() },
                [name, t] if mc(ns, ty) && eq(t, "serviceAccountToken") => {
                    ArmRoute::ClusterToken { sub, rg, name: name.to_string() }
                }
                _ => ArmRoute::UnknownType(format!("{ns}/{ty}")),
            }
        }
        [p, ns, ty, ..] if eq(p, "providers") => ArmRoute::UnknownType(format!("{ns}/{ty}")),
        _ => ArmRoute::UnknownType(rest.join("/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_case_insensitively() {
        let r = parse("/subscriptions/S/resourcegroups/rg/providers/microsoft.managedidentity/USERASSIGNEDIDENTITIES/id1/federatedIdentityCredentials/f1").unwrap();
        assert_eq!(
            r,
            ArmRoute::Credential { sub: "S".into(), rg: "rg".into(), identity: "id1".into(), name: "f1".into() }
        );
        assert_eq!(parse("/subscriptions/s/resourceGroups/").unwrap(), ArmRoute::Groups { sub: "s".into() });
        assert_eq!(
            parse("/subscriptions/s/resourceGroups/my%20rg").unwrap(),
            ArmRoute::Group { sub: "s".into(), rg: "my rg".into() }
        );
        assert_eq!(
            parse("/subscriptions/s/providers/Microsoft.ContainerService/managedClusters").unwrap(),
            ArmRoute::Clusters { sub: "s".into(), rg: None }
        );
        assert!(matches!(
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Foo/bars/x").unwrap(),
            ArmRoute::UnknownType(_)
        ));
    }

    #[test]
    fn refuses_traversal() {
        for bad in [
            "/subscriptions/s/resourceGroups/..",
            "/subscriptions/s/resourceGroups/%2e%2e",
            "/subscriptions/s/resourceGroups/a%2Fb",
            "/subscriptions/s/resourceGroups/a%5Cb",
            "/subscriptions/s/resourceGroups/a%00",
            "/subscriptions/s/resourceGroups/%zz",
            "/subscriptions/s/resourceGroups/%c3",
            "/subscriptions//resourceGroups/x",
        ] {
            assert!(matches!(parse(bad), Err(RouteError::BadSegment(_))), "{bad}");
        }
        assert_eq!(parse("/other"), Err(RouteError::NotArm));
    }
}
