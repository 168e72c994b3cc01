//! The in-process workloads (the crypto bound, the admission decision) and the request makers of
//! the HTTP ones.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use wid_crypto::{Alg, EcCurve, SigningKey, VerifyingKey};

use crate::client::Req;
use crate::load::{MakeOp, Stats, run_inline};

/// One core's RS256 and ES256 rates, measured with wid's own crypto (aws-lc-rs).
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct Crypto {
    pub rs256_sign_per_s: f64,
    pub rs256_verify_per_s: f64,
    pub es256_sign_per_s: f64,
    pub es256_verify_per_s: f64,
    /// One RS256 verify (the assertion) + one RS256 sign (the access token): the exchange's bound.
    pub exchange_bound_per_s: f64,
}

/// Measures the crypto rates on the current thread (pinned by the caller).
pub fn crypto(duration: Duration) -> anyhow::Result<Crypto> {
    // The signing input of a typical access token (~1 KB of base64url header.claims).
    let msg = vec![b'e'; 1000];
    let rate = |key: &SigningKey, alg: Alg| -> anyhow::Result<(f64, f64)> {
        let sig = key.sign(alg, &msg).context("sign")?;
        let vk: VerifyingKey = key.verifying_key().context("verifying key")?;
        let s = run_inline(Duration::from_millis(100), duration, || key.sign(alg, &msg).is_ok())?;
        let v = run_inline(Duration::from_millis(100), duration, || vk.verify(alg, &msg, &sig).is_ok())?;
        if s.errors > 0 || v.errors > 0 {
            bail!("{alg:?}: {} sign and {} verify failures", s.errors, v.errors);
        }
        Ok((s.throughput, v.throughput))
    };
    let (rs_s, rs_v) = rate(&SigningKey::generate_rsa(2048)?, Alg::Rs256)?;
    let (es_s, es_v) = rate(&SigningKey::generate_ec(EcCurve::P256)?, Alg::Es256)?;
    Ok(Crypto {
        rs256_sign_per_s: rs_s,
        rs256_verify_per_s: rs_v,
        es256_sign_per_s: es_s,
        es256_verify_per_s: es_v,
        exchange_bound_per_s: 1.0 / (1.0 / rs_s + 1.0 / rs_v),
    })
}

/// The namespace and ServiceAccount of the pods in the admission reviews.
pub const POD_NAMESPACE: &str = "apps";
pub const POD_SERVICE_ACCOUNT: &str = "api";

/// An AdmissionReview for a labelled two-container pod, as kube-apiserver sends it.
pub fn admission_review(n: u64) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("7f0b2891-916f-4ed6-b7cd-{n:012}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": POD_NAMESPACE,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "api-7d9c6b5f4-",
                    "namespace": POD_NAMESPACE,
                    "labels": {"app": "api", "azure.workload.identity/use": "true", "pod-template-hash": "7d9c6b5f4"},
                    "annotations": {"kubectl.kubernetes.io/default-container": "api"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9c6b5f4", "uid": "5d8f0c1e-0b8e-4a55-9d3a-2f6a1c3e9b10", "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {
                    "serviceAccountName": POD_SERVICE_ACCOUNT,
                    "containers": [
                        {"name": "api", "image": "registry.example/api:1.4.2", "ports": [{"containerPort": 8080}],
                         "env": [{"name": "LOG_LEVEL", "value": "info"}],
                         "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                         "volumeMounts": [{"name": "config", "mountPath": "/etc/api"}]},
                        {"name": "metrics", "image": "registry.example/exporter:0.9", "ports": [{"containerPort": 9100}]},
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": "api-config"}}],
                    "automountServiceAccountToken": false,
                },
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    })
    .to_string()
    .into_bytes()
}

/// The webhook's mutate path in process: parse the review, decide with the ServiceAccount (as the
/// watch-backed cache holds it), build the JSON patch and serialise the response.
pub fn admission(warmup: Duration, duration: Duration) -> anyhow::Result<Stats> {
    let bodies: Vec<Vec<u8>> = (0..64).map(admission_review).collect();
    let mut annotations = BTreeMap::new();
    annotations.insert("azure.workload.identity/client-id".to_string(), uuid::Uuid::new_v4().to_string());
    let sa = wid_webhook::ServiceAccount { name: POD_SERVICE_ACCOUNT.into(), annotations };
    let cfg = wid_webhook::Config::new("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let first = wid_webhook::mutate(bodies.first().context("reviews")?, Some(&sa), &cfg);
    if !first.allowed() || first.patch().is_empty() {
        bail!("the admission review was not mutated: {}", String::from_utf8_lossy(&first.to_json()));
    }
    let mut n = 0usize;
    run_inline(warmup, duration, || {
        n = n.wrapping_add(1);
        let body = bodies.get(n % bodies.len()).map_or(&[][..], Vec::as_slice);
        let resp = wid_webhook::mutate(body, Some(&sa), &cfg);
        let out = resp.to_json();
        resp.allowed() && !out.is_empty()
    })
}

/// Each operation is the next request of `reqs`; `None` once they are used up (one-use inputs).
pub fn once_each(reqs: Vec<Req>) -> MakeOp {
    let reqs = Arc::new(reqs);
    Arc::new(move |seq| usize::try_from(seq).ok().and_then(|i| reqs.get(i)).map(|r| vec![r.clone()]))
}

/// Each operation is one of `reqs`, round robin, forever.
pub fn round_robin(reqs: Vec<Req>) -> MakeOp {
    let reqs = Arc::new(reqs);
    Arc::new(move |seq| {
        let n = reqs.len().max(1) as u64;
        usize::try_from(seq % n).ok().and_then(|i| reqs.get(i)).map(|r| vec![r.clone()])
    })
}
