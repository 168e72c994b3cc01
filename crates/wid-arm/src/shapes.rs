//! JSON shapes of ARM resources, as Azure returns them on the wire.

use serde_json::{Value, json};
use wid_core::fic::FederatedCredential;
use wid_core::model::{Cluster, ClusterIssuer, Identity, ResourceGroup, Tags};
use wid_core::scope::ids;

use crate::{ArmConfig, CLUSTER_TYPE, FIC_TYPE, IDENTITY_TYPE, RG_TYPE};

fn tags(t: &Tags) -> Value {
    json!(t)
}

pub fn subscription(cfg: &ArmConfig) -> Value {
    json!({
        "id": ids::subscription(&cfg.subscription_id.to_string()),
        "subscriptionId": cfg.subscription_id,
        "tenantId": cfg.tenant_id,
        "displayName": cfg.subscription_name,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "wid", "spendingLimit": "Off"},
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
    })
}

pub fn group(g: &ResourceGroup) -> Value {
    let mut v = json!({
        "id": ids::resource_group(&g.subscription.to_string(), &g.name),
        "name": g.name,
        "type": RG_TYPE,
        "location": g.location,
        "properties": {"provisioningState": "Succeeded"},
    });
    if !g.tags.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.insert("tags".into(), tags(&g.tags));
    }
    v
}

pub fn identity(i: &Identity) -> Value {
    json!({
        "id": i.arm_id(),
        "name": i.name,
        "type": IDENTITY_TYPE,
        "location": i.location,
        "tags": tags(&i.tags),
        "properties": {
            "tenantId": i.tenant_id,
            "principalId": i.principal_id,
            "clientId": i.client_id,
            "isolationScope": "None",
        },
    })
}

pub fn credential(parent: &Identity, c: &FederatedCredential) -> Value {
    let mut props = json!({"issuer": c.issuer, "audiences": c.audiences});
    if let Some(o) = props.as_object_mut() {
        if let Some(s) = &c.subject {
            o.insert("subject".into(), json!(s));
        }
        if let Some(e) = &c.claims_matching_expression {
            o.insert("claimsMatchingExpression".into(), json!(e));
        }
        if let Some(d) = &c.description {
            o.insert("description".into(), json!(d));
        }
    }
    json!({
        "id": ids::federated_credential(&parent.subscription.to_string(), &parent.resource_group, &parent.name, &c.name),
        "name": c.name,
        "type": FIC_TYPE,
        "properties": props,
    })
}

pub fn cluster(c: &Cluster) -> Value {
    let (hosted, jwks_uploaded) = match &c.issuer {
        ClusterIssuer::Hosted { .. } => (true, false),
        ClusterIssuer::External { jwks, .. } => (false, jwks.is_some()),
    };
    json!({
        "id": c.arm_id(),
        "name": c.name,
        "type": CLUSTER_TYPE,
        "location": c.location,
        "tags": tags(&c.tags),
        "properties": {
            "provisioningState": "Succeeded",
            "powerState": {"code": "Running"},
            "clusterId": c.cluster_id,
            "oidcIssuerProfile": {"enabled": true, "issuerURL": c.issuer.issuer_url()},
            "securityProfile": {"workloadIdentity": {"enabled": c.workload_identity}},
            "issuerHosting": {"hostedByWid": hosted, "jwksUploaded": jwks_uploaded},
        },
    })
}
