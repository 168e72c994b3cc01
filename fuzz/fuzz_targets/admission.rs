//! AdmissionReview parsing and the pod mutation: any input yields an AdmissionReview response and
//! never a panic; an admitted pod's patch applies to it with `add`/`replace` only, the webhook's own
//! consistency check never fails (no 500), and a second pass over the patched pod is empty
//! (idempotence under reinvocation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use wid_webhook::{CaBundle, Config, CustomTokenEndpointSettings, Review, ServiceAccount, TokenLayout, apply, mutate};

/// FNV-1a: the configuration is a function of the input, so seeds stay plain JSON.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

fn config(bits: u64) -> Config {
    let mut cfg = Config::new("tenant");
    if bits & 1 != 0 {
        cfg.layout = TokenLayout::V1_5;
    }
    cfg.proxy.native_sidecar = bits & 2 != 0;
    if bits & 4 != 0 {
        cfg.ca_bundle = CaBundle::new("wid-ca", "ca.crt").ok();
    }
    if bits & 8 != 0 {
        cfg.custom_endpoint = CustomTokenEndpointSettings {
            annotation_suffix: "identity-binding".into(),
            audience: "api://AKSIdentityBinding".into(),
            token_proxy: "https://kubernetes.default.svc".into(),
            ca_configmap_name: if bits & 16 != 0 { "kube-root-ca.crt".into() } else { String::new() },
            ..Default::default()
        }
        .build()
        .ok()
        .flatten();
    }
    if bits & 32 != 0 {
        cfg.authority_host = String::new();
    }
    cfg
}

fn service_account(bits: u64) -> ServiceAccount {
    let mut sa = ServiceAccount { name: "sa".into(), ..Default::default() };
    if bits & 64 != 0 {
        sa.annotations.insert("azure.workload.identity/client-id".into(), "client".into());
    }
    if bits & 128 != 0 {
        sa.annotations.insert("azure.workload.identity/tenant-id".into(), String::new());
    }
    if bits & 256 != 0 {
        sa.annotations.insert("azure.workload.identity/service-account-token-expiration".into(), "7200".into());
    }
    sa
}

fuzz_target!(|data: &[u8]| {
    let bits = fnv(data);
    let cfg = config(bits);
    let sa = service_account(bits);
    let resp = mutate(data, Some(&sa), &cfg);
    let out: Value = serde_json::from_slice(&resp.to_json()).expect("the response is JSON");
    assert_eq!(out["kind"], "AdmissionReview");
    if let Some(d) = resp.denial() {
        assert_ne!(d.code, 500, "inconsistent patch: {}", d.message);
        return;
    }
    let review = Review::parse(data).expect("admitted, so it parses");
    let patched = apply(review.pod(), resp.patch()).expect("the patch applies to the pod it was made for");
    let again = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "again", "namespace": review.namespace(), "object": patched}
    });
    let second = mutate(&serde_json::to_vec(&again).expect("serialisable"), Some(&sa), &cfg);
    assert!(second.allowed(), "second pass denied: {:?}", second.denial());
    assert!(second.patch().is_empty(), "second pass not empty: {:?}", second.patch());
});
