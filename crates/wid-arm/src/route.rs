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
    /// `…/managedClusters/{cluster}/identityBindings`.
    IdentityBindings {
        sub: String,
        rg: String,
        cluster: String,
    },
    /// `…/managedClusters/{cluster}/identityBindings/{name}`.
    IdentityBinding {
        sub: String,
        rg: String,
        cluster: String,
        name: String,
    },
    /// `…/listClusterUserCredential` and its admin and monitoring-user siblings.
    ClusterCredential {
        sub: String,
        rg: String,
        name: String,
        action: String,
    },
    /// `…/resources`: the resources of a subscription or group (ARM's generic listing).
    Resources {
        sub: String,
        rg: Option<String>,
    },
    Vaults {
        sub: String,
        rg: Option<String>,
    },
    Vault {
        sub: String,
        rg: String,
        name: String,
    },
    /// `/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults`
    DeletedVaults {
        sub: String,
    },
    /// `/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{location}/deletedVaults/{name}`
    DeletedVault {
        sub: String,
        location: String,
        name: String,
    },
    /// `…/deletedVaults/{name}/purge`
    PurgeDeletedVault {
        sub: String,
        location: String,
        name: String,
    },
    /// `…/providers/Microsoft.KeyVault/managedHSMs` or `deletedManagedHSMs`: wid has no managed
    /// HSMs, but `az keyvault list`/`list-deleted` ask for them alongside vaults.
    ManagedHsms {
        sub: String,
        rg: Option<String>,
    },
    /// `{scope}/providers/Microsoft.Authorization/roleDefinitions` at any scope.
    RoleDefinitions {
        scope: String,
    },
    RoleDefinition {
        scope: String,
        name: String,
    },
    /// `{scope}/providers/Microsoft.Authorization/roleAssignments` at any scope.
    RoleAssignments {
        scope: String,
    },
    RoleAssignment {
        scope: String,
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
    // Leading slashes are collapsed: SDKs format `/{scope}/providers/…` with a scope that starts
    // with `/` (and is `/` for the root), which yields `//subscriptions/…` or `///providers/…`.
    let trimmed = path.trim_end_matches('/');
    let trimmed = trimmed.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(RouteError::NotArm);
    }
    let raw: Vec<&str> = trimmed.split('/').collect();
    let segs: Vec<String> = raw.iter().map(|s| decode(s)).collect::<Result<_, _>>()?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if let Some(route) = authorization(&s) {
        return Ok(route);
    }
    let route = match s.as_slice() {
        [t] if eq(t, "subscriptions") => ArmRoute::Subscriptions,
        [t] if eq(t, "tenants") => ArmRoute::Tenants,
        [m, e] if eq(m, "metadata") && eq(e, "endpoints") => ArmRoute::MetadataEndpoints,
        [t, sub, rest @ ..] if eq(t, "subscriptions") => under_subscription(sub, rest),
        _ => return Err(RouteError::NotArm),
    };
    Ok(route)
}

/// `{scope}/providers/Microsoft.Authorization/{roleAssignments|roleDefinitions}[/{name}]`: an
/// extension resource that can sit under any scope, so the tail is found first and everything
/// before it is the scope (`/` when nothing is).
fn authorization(s: &[&str]) -> Option<ArmRoute> {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let n = s.len();
    // The Authorization tail is the last 3 or 4 segments.
    for tail_len in [3usize, 4] {
        let Some(at) = n.checked_sub(tail_len) else { continue };
        let tail = s.get(at..)?;
        let (p, ns, ty) = match tail {
            [p, ns, ty] | [p, ns, ty, _] => (*p, *ns, *ty),
            _ => continue,
        };
        if !(eq(p, "providers") && eq(ns, "Microsoft.Authorization")) {
            continue;
        }
        let scope = format!("/{}", s.get(..at)?.join("/"));
        let name = tail.get(3).map(|n| n.to_string());
        let route = match (ty, name) {
            (t, None) if eq(t, "roleAssignments") => ArmRoute::RoleAssignments { scope },
            (t, Some(name)) if eq(t, "roleAssignments") => ArmRoute::RoleAssignment { scope, name },
            (t, None) if eq(t, "roleDefinitions") => ArmRoute::RoleDefinitions { scope },
            (t, Some(name)) if eq(t, "roleDefinitions") => ArmRoute::RoleDefinition { scope, name },
            _ => continue,
        };
        return Some(route);
    }
    None
}

fn under_subscription(sub: &str, rest: &[&str]) -> ArmRoute {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let sub = sub.to_string();
    let mi = |ns: &str, ty: &str| eq(ns, "Microsoft.ManagedIdentity") && eq(ty, "userAssignedIdentities");
    let mc = |ns: &str, ty: &str| eq(ns, "Microsoft.ContainerService") && eq(ty, "managedClusters");
    let kv = |ns: &str, ty: &str| eq(ns, "Microsoft.KeyVault") && eq(ty, "vaults");
    let kv_ns = |ns: &str| eq(ns, "Microsoft.KeyVault");
    match rest {
        [] => ArmRoute::Subscription { sub },
        [r] if eq(r, "resources") => ArmRoute::Resources { sub, rg: None },
        [g] if eq(g, "resourceGroups") => ArmRoute::Groups { sub },
        [g, rg] if eq(g, "resourceGroups") => ArmRoute::Group { sub, rg: rg.to_string() },
        [g, rg, r] if eq(g, "resourceGroups") && eq(r, "resources") => {
            ArmRoute::Resources { sub, rg: Some(rg.to_string()) }
        }
        [p, ns, ty] if eq(p, "providers") && mi(ns, ty) => ArmRoute::Identities { sub, rg: None },
        [p, ns, ty] if eq(p, "providers") && mc(ns, ty) => ArmRoute::Clusters { sub, rg: None },
        [p, ns, ty] if eq(p, "providers") && kv(ns, ty) => ArmRoute::Vaults { sub, rg: None },
        [p, ns, d] if eq(p, "providers") && kv_ns(ns) && eq(d, "deletedVaults") => ArmRoute::DeletedVaults { sub },
        [p, ns, h] if eq(p, "providers") && kv_ns(ns) && (eq(h, "managedHSMs") || eq(h, "deletedManagedHSMs")) => {
            ArmRoute::ManagedHsms { sub, rg: None }
        }
        [p, ns, l, loc, d, name] if eq(p, "providers") && kv_ns(ns) && eq(l, "locations") && eq(d, "deletedVaults") => {
            ArmRoute::DeletedVault { sub, location: loc.to_string(), name: name.to_string() }
        }
        [p, ns, l, loc, d, name, purge]
            if eq(p, "providers")
                && kv_ns(ns)
                && eq(l, "locations")
                && eq(d, "deletedVaults")
                && eq(purge, "purge") =>
        {
            ArmRoute::PurgeDeletedVault { sub, location: loc.to_string(), name: name.to_string() }
        }
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
                [name, b] if mc(ns, ty) && eq(b, "identityBindings") => {
                    ArmRoute::IdentityBindings { sub, rg, cluster: name.to_string() }
                }
                [name, b, binding] if mc(ns, ty) && eq(b, "identityBindings") => {
                    ArmRoute::IdentityBinding { sub, rg, cluster: name.to_string(), name: binding.to_string() }
                }
                [name, action] if mc(ns, ty) && is_credential_action(action) => {
                    ArmRoute::ClusterCredential { sub, rg, name: name.to_string(), action: action.to_string() }
                }
                [] if kv(ns, ty) => ArmRoute::Vaults { sub, rg: Some(rg) },
                [] if kv_ns(ns) && eq(ty, "managedHSMs") => ArmRoute::ManagedHsms { sub, rg: Some(rg) },
                [name] if kv(ns, ty) => ArmRoute::Vault { sub, rg, name: name.to_string() },
                // A child type or action of a resource (`…/managedClusters/c/listClusterUserCredential`)
                // is named in full, so the refusal does not seem to deny the parent type.
                [_, child, ..] => ArmRoute::UnknownType(format!("{ns}/{ty}/{child}")),
                _ => ArmRoute::UnknownType(format!("{ns}/{ty}")),
            }
        }
        [p, ns, ty, ..] if eq(p, "providers") => ArmRoute::UnknownType(format!("{ns}/{ty}")),
        _ => ArmRoute::UnknownType(rest.join("/")),
    }
}

/// `listClusterUserCredential`, `listClusterAdminCredential`, `listClusterMonitoringUserCredential`.
fn is_credential_action(s: &str) -> bool {
    ["listClusterUserCredential", "listClusterAdminCredential", "listClusterMonitoringUserCredential"]
        .iter()
        .any(|a| s.eq_ignore_ascii_case(a))
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
        assert_eq!(
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/listClusterUserCredential").unwrap(),
            ArmRoute::ClusterCredential {
                sub: "s".into(),
                rg: "rg".into(),
                name: "c".into(),
                action: "listClusterUserCredential".into()
            }
        );
    }

    #[test]
    fn key_vault_routes() {
        assert_eq!(
            parse("/subscriptions/s/resourceGroups/rg/providers/microsoft.keyvault/VAULTS/kv1").unwrap(),
            ArmRoute::Vault { sub: "s".into(), rg: "rg".into(), name: "kv1".into() }
        );
        assert_eq!(
            parse("/subscriptions/s/providers/Microsoft.KeyVault/vaults").unwrap(),
            ArmRoute::Vaults { sub: "s".into(), rg: None }
        );
        assert_eq!(
            parse("/subscriptions/s/providers/Microsoft.KeyVault/deletedVaults").unwrap(),
            ArmRoute::DeletedVaults { sub: "s".into() }
        );
        assert_eq!(
            parse("/subscriptions/s/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/kv1/purge").unwrap(),
            ArmRoute::PurgeDeletedVault { sub: "s".into(), location: "eastus".into(), name: "kv1".into() }
        );
        assert_eq!(parse("/subscriptions/s/resources").unwrap(), ArmRoute::Resources { sub: "s".into(), rg: None });
        assert_eq!(
            parse("/subscriptions/s/providers/Microsoft.KeyVault/deletedManagedHSMs").unwrap(),
            ArmRoute::ManagedHsms { sub: "s".into(), rg: None }
        );
    }

    #[test]
    fn authorization_resources_under_any_scope() {
        let vault = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v";
        assert_eq!(
            parse(&format!("{vault}/providers/Microsoft.Authorization/roleAssignments/g1")).unwrap(),
            ArmRoute::RoleAssignment { scope: vault.into(), name: "g1".into() }
        );
        assert_eq!(
            parse(&format!("{vault}/secrets/db/providers/microsoft.authorization/ROLEASSIGNMENTS")).unwrap(),
            ArmRoute::RoleAssignments { scope: format!("{vault}/secrets/db") }
        );
        assert_eq!(
            parse("/providers/Microsoft.Authorization/roleDefinitions/g").unwrap(),
            ArmRoute::RoleDefinition { scope: "/".into(), name: "g".into() }
        );
        // How SDKs format `/{scope}/providers/…` for scopes `/subscriptions/s` and `/`.
        assert_eq!(
            parse("//subscriptions/s/providers/Microsoft.Authorization/roleDefinitions").unwrap(),
            ArmRoute::RoleDefinitions { scope: "/subscriptions/s".into() }
        );
        assert_eq!(
            parse("///providers/Microsoft.Authorization/roleAssignments").unwrap(),
            ArmRoute::RoleAssignments { scope: "/".into() }
        );
        assert!(matches!(
            parse("/subscriptions/s/providers/Microsoft.Authorization/policyAssignments").unwrap(),
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
            "/subscriptions/s/resourceGroups/rg/..%2F/providers/Microsoft.Authorization/roleAssignments",
        ] {
            assert!(matches!(parse(bad), Err(RouteError::BadSegment(_))), "{bad}");
        }
        assert_eq!(parse("/other"), Err(RouteError::NotArm));
        // Authorization tails with nothing or garbage before them stay safe.
        for odd in [
            "/",
            "//",
            "/providers/Microsoft.Authorization",
            "/providers/Microsoft.Authorization/roleAssignments/a/b",
            "/x/%2e/providers/Microsoft.Authorization/roleAssignments",
        ] {
            if let Ok(ArmRoute::RoleAssignments { scope } | ArmRoute::RoleAssignment { scope, .. }) = parse(odd) {
                assert!(!scope.split('/').any(|s| s == "." || s == ".."), "{odd}");
            }
        }
    }
}
