//! One test per upstream behaviour of spec §1.3–1.9 (named after it), then what wid does better:
//! idempotence under reinvocation and renames, no field lost, denials that state the fix, CA trust,
//! and a property test over random pods.

use serde_json::{Value, json};

use crate::consts::*;
use crate::*;

const NS: &str = "ns1";

fn cfg() -> Config {
    Config::new("tenantID")
}

fn sa(annotations: &[(&str, &str)]) -> ServiceAccount {
    ServiceAccount {
        name: "sa".into(),
        annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn body(pod: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NS,
            "operation": "CREATE",
            "object": pod
        }
    }))
    .unwrap()
}

/// Admits `pod`; returns the patched pod and the patch.
fn admit_with(pod: &Value, sa: &ServiceAccount, cfg: &Config) -> (Value, Vec<PatchOp>) {
    let resp = mutate(&body(pod), Some(sa), cfg);
    assert!(resp.allowed(), "denied: {:?}", resp.denial());
    let ops = resp.patch().to_vec();
    (apply(pod, &ops).unwrap(), ops)
}

fn admit(pod: &Value) -> (Value, Vec<PatchOp>) {
    admit_with(pod, &sa(&[(CLIENT_ID_ANNOTATION, "clientID")]), &cfg())
}

fn denial_with(pod: &Value, sa: &ServiceAccount, cfg: &Config) -> Denial {
    let resp = mutate(&body(pod), Some(sa), cfg);
    resp.denial().cloned().unwrap_or_else(|| panic!("allowed: {:?}", resp.patch()))
}

/// Upstream's `newPod`: one init container and one container.
fn upstream_pod(annotations: Value, host_network: bool) -> Value {
    json!({
        "metadata": {"name": "pod", "namespace": NS, "labels": {USE_LABEL: "true"}, "annotations": annotations},
        "spec": {
            "serviceAccountName": "sa",
            "initContainers": [{"name": "init-container", "image": "init-container-image"}],
            "containers": [{"name": "container", "image": "image"}],
            "hostNetwork": host_network
        }
    })
}

fn env_of(pod: &Value, list: &str, i: usize) -> Vec<(String, String)> {
    pod["spec"][list][i]["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap_or("<from>").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn env_names(pod: &Value, list: &str, i: usize) -> Vec<String> {
    env_of(pod, list, i).into_iter().map(|(n, _)| n).collect()
}

fn token_source(pod: &Value) -> Value {
    let vols = pod["spec"]["volumes"].as_array().unwrap();
    let v = vols.iter().find(|v| v["name"].as_str().unwrap().starts_with(RESERVED_VOLUME_PREFIX)).unwrap();
    v["projected"]["sources"][0]["serviceAccountToken"].clone()
}

fn v16_env(client: &str, tenant: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    if !client.is_empty() {
        out.push((AZURE_CLIENT_ID.to_string(), client.to_string()));
    }
    if !tenant.is_empty() {
        out.push((AZURE_TENANT_ID.to_string(), tenant.to_string()));
    }
    out.push((AZURE_FEDERATED_TOKEN_FILE.into(), "/var/run/secrets/azure/wi/token/azure-identity-token".into()));
    out.push((AZURE_AUTHORITY_HOST.into(), "https://login.microsoftonline.com/".into()));
    out
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 1: decoding
// ---------------------------------------------------------------------------------------------

#[test]
fn undecodable_pod_is_denied_400_couldnt_get_version_kind() {
    let raw = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","namespace":"ns1","object":"invalid"}}"#;
    let resp = mutate(raw, Some(&sa(&[])), &cfg());
    let d = resp.denial().unwrap();
    assert_eq!(d.code, 400);
    assert!(d.message.starts_with("couldn't get version/kind"), "{}", d.message);
    assert!(d.message.contains("To fix:"));
    assert_eq!(resp.uid, "u");
}

#[test]
fn garbage_input_is_a_400_denial_not_a_panic() {
    for raw in [&b"invalid"[..], b"{}", b"null", b"{\"request\":[]}", b"\xff\xfe", b"{\"apiVersion\":1}"] {
        let resp = mutate(raw, Some(&sa(&[])), &cfg());
        assert_eq!(resp.denial().unwrap().code, 400, "{raw:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 2: pod name, generateName, namespace
// ---------------------------------------------------------------------------------------------

#[test]
fn volume_name_is_reserved_prefix_plus_30_hex_of_sha256_of_the_pod_name() {
    assert_eq!(volume_name("demo"), "azure-workload-identity-reserved-2a97516c354b68848cdbd8f54a226a");
    assert_eq!(volume_name("pod"), "azure-workload-identity-reserved-425c89ed5bb78a7623fae60fd8a6f6");
    assert_eq!(
        volume_name("web-7d4b9c8f6- (prefix)"),
        "azure-workload-identity-reserved-dc5468656be0fe7acf404670f3faef"
    );
    assert_eq!(volume_name("anything").len(), 63);
}

#[test]
fn generate_name_pods_use_the_prefix_plus_suffix_for_the_volume_name() {
    let pod = json!({"metadata": {"generateName": "web-7d4b9c8f6-"}, "spec": {"containers": [{"name": "app"}]}});
    let r = Review::parse(&body(&pod)).unwrap();
    assert_eq!(r.pod_name(), "web-7d4b9c8f6- (prefix)");
    let (patched, _) = admit(&pod);
    assert_eq!(
        patched["spec"]["volumes"][0]["name"],
        "azure-workload-identity-reserved-dc5468656be0fe7acf404670f3faef"
    );
}

#[test]
fn metadata_namespace_is_forced_to_the_request_namespace() {
    let containers = json!([{"name": "app"}]);
    let (p, ops) = admit(&json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}));
    assert_eq!(p["metadata"]["namespace"], NS);
    assert!(ops.iter().any(|o| o.op == Op::Add && o.path == "/metadata/namespace"));
    let (p, ops) = admit(&json!({"metadata": {"name": "p", "namespace": "other"}, "spec": {"containers": containers}}));
    assert_eq!(p["metadata"]["namespace"], NS);
    assert!(ops.iter().any(|o| o.op == Op::Replace && o.path == "/metadata/namespace"));
    let (_, ops) = admit(&json!({"metadata": {"name": "p", "namespace": NS}, "spec": {"containers": containers}}));
    assert!(!ops.iter().any(|o| o.path == "/metadata/namespace"));
    let (p, _) = admit(&json!({"spec": {"containers": containers}}));
    assert_eq!(p["metadata"], json!({"namespace": NS}));
}

// ---------------------------------------------------------------------------------------------
// §1.3 steps 3–4: ServiceAccount
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_service_account_name_means_default() {
    let r = Review::parse(&body(&json!({"spec": {"serviceAccountName": ""}}))).unwrap();
    assert_eq!(r.service_account_name(), "default");
    let r = Review::parse(&body(&json!({"spec": {}}))).unwrap();
    assert_eq!(r.service_account_name(), "default");
    let r = Review::parse(&body(&upstream_pod(json!({}), false))).unwrap();
    assert_eq!(r.service_account_name(), "sa");
}

#[test]
fn missing_service_account_is_denied_with_upstream_text_and_the_fix() {
    let resp = mutate(&body(&upstream_pod(json!({}), false)), None, &cfg());
    let d = resp.denial().unwrap();
    assert_eq!(d.code, 400);
    assert!(d.message.starts_with(r#"serviceaccounts "sa" not found. To fix: "#), "{}", d.message);
    assert!(d.message.contains("kubectl create serviceaccount sa --namespace ns1"));
}

#[test]
fn unreadable_service_account_is_denied_with_the_api_error_and_the_fix() {
    let d =
        service_account_unreadable(NS, "sa", Some(403), "serviceaccounts \"sa\" is forbidden: User \"x\" cannot get");
    assert_eq!(d.code, 400);
    assert!(d.message.starts_with("serviceaccounts \"sa\" is forbidden"));
    assert!(d.message.contains("grant the webhook's ServiceAccount get, list and watch on serviceaccounts"));
    let d = service_account_unreadable(NS, "sa", None, "connection refused");
    assert!(d.message.contains("could not read ServiceAccount ns1/sa"));
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 5, §1.7: proxy sidecar
// ---------------------------------------------------------------------------------------------

#[test]
fn proxy_is_injected_on_annotation_presence_even_when_false() {
    for value in ["true", "false", ""] {
        let (p, _) = admit(&upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: value}), false));
        let inits: Vec<&str> =
            p["spec"]["initContainers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        let conts: Vec<&str> =
            p["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(inits, ["init-container", PROXY_INIT_CONTAINER], "{value}");
        assert_eq!(conts, [PROXY_SIDECAR_CONTAINER, "container"], "{value}");
    }
    let (p, _) = admit(&upstream_pod(json!({}), false));
    assert_eq!(p["spec"]["containers"].as_array().unwrap().len(), 1);
}

#[test]
fn proxy_with_host_network_is_denied() {
    let d = denial_with(&upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: "true"}), true), &sa(&[]), &cfg());
    assert_eq!(d.code, 400);
    assert!(
        d.message.starts_with("hostNetwork is set to true, cannot inject proxy sidecar. To fix: "),
        "{}",
        d.message
    );
}

#[test]
fn proxy_port_defaults_to_8000_and_follows_the_annotation() {
    let (p, _) = admit(&upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: "true"}), false));
    assert_eq!(p["spec"]["containers"][0]["ports"], json!([{"containerPort": 8000}]));
    assert_eq!(p["spec"]["initContainers"][1]["env"][0], json!({"name": "PROXY_PORT", "value": "8000"}));
    let (p, _) = admit(&upstream_pod(
        json!({INJECT_PROXY_SIDECAR_ANNOTATION: "true", PROXY_SIDECAR_PORT_ANNOTATION: "8080"}),
        false,
    ));
    assert_eq!(p["spec"]["containers"][0]["args"], json!(["--proxy-port=8080", "--log-level=info"]));
    // The init container's own env comes first, then the identity variables.
    assert_eq!(p["spec"]["initContainers"][1]["env"][0], json!({"name": "PROXY_PORT", "value": "8080"}));
}

#[test]
fn unparsable_proxy_port_is_denied_with_the_strconv_text() {
    let pod =
        upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: "true", PROXY_SIDECAR_PORT_ANNOTATION: "invalid"}), false);
    let d = denial_with(&pod, &sa(&[]), &cfg());
    assert!(
        d.message.starts_with(
            r#"failed to parse proxy sidecar port: strconv.ParseInt: parsing "invalid": invalid syntax. To fix: "#
        ),
        "{}",
        d.message
    );
    let pod =
        upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: "true", PROXY_SIDECAR_PORT_ANNOTATION: "70000"}), false);
    assert!(denial_with(&pod, &sa(&[]), &cfg()).message.starts_with("proxy sidecar port 70000 not valid"));
}

#[test]
fn proxy_containers_have_upstreams_exact_shape() {
    let mut c = cfg();
    c.proxy.image = "reg/proxy:v1".into();
    c.proxy.init_image = "reg/proxy-init:v1".into();
    let pod = json!({"metadata": {"name": "p", "annotations": {INJECT_PROXY_SIDECAR_ANNOTATION: "true"}}, "spec": {"containers": [{"name": "app"}]}});
    let (p, _) = admit_with(&pod, &sa(&[]), &c);
    let init = &p["spec"]["initContainers"][0];
    assert_eq!(init["image"], "reg/proxy-init:v1");
    assert_eq!(init["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        init["securityContext"],
        json!({"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "privileged": true, "runAsNonRoot": false, "runAsUser": 0})
    );
    let proxy = &p["spec"]["containers"][0];
    assert_eq!(proxy["image"], "reg/proxy:v1");
    assert_eq!(
        proxy["lifecycle"]["postStart"]["exec"]["command"],
        json!(["/proxy", "--proxy-port=8000", "--probe", "--log-level=info"])
    );
    assert_eq!(
        proxy["securityContext"],
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "privileged": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true})
    );
    assert!(proxy.get("restartPolicy").is_none());
    // Both proxies receive the identity env and the token mount.
    assert_eq!(env_names(&p, "containers", 0), [AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST]);
    assert_eq!(p["spec"]["initContainers"][0]["volumeMounts"][0]["mountPath"], "/var/run/secrets/azure/wi");
}

#[test]
fn native_sidecar_goes_first_into_init_containers_with_restart_policy_always() {
    let mut c = cfg();
    c.proxy.native_sidecar = true;
    let (p, ops) = admit_with(&upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: "true"}), false), &sa(&[]), &c);
    let inits: Vec<&str> =
        p["spec"]["initContainers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(inits, [PROXY_SIDECAR_CONTAINER, "init-container", PROXY_INIT_CONTAINER]);
    assert_eq!(p["spec"]["initContainers"][0]["restartPolicy"], "Always");
    assert_eq!(p["spec"]["containers"].as_array().unwrap().len(), 1);
    assert!(ops.iter().any(|o| o.path == "/spec/initContainers/0"));
}

#[test]
fn proxy_containers_already_present_are_not_injected_again() {
    let pod = json!({
        "metadata": {"name": "p", "annotations": {INJECT_PROXY_SIDECAR_ANNOTATION: "true"}},
        "spec": {
            "initContainers": [{"name": PROXY_INIT_CONTAINER, "image": "mine"}],
            "containers": [{"name": "app"}, {"name": PROXY_SIDECAR_CONTAINER, "image": "mine"}]
        }
    });
    let (p, _) = admit(&pod);
    assert_eq!(p["spec"]["initContainers"].as_array().unwrap().len(), 1);
    assert_eq!(p["spec"]["containers"].as_array().unwrap().len(), 2);
    assert_eq!(p["spec"]["containers"][1]["image"], "mine");
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 6: token expiration
// ---------------------------------------------------------------------------------------------

#[test]
fn token_expiration_pod_annotation_wins_over_service_account() {
    let pod = upstream_pod(json!({TOKEN_EXPIRATION_ANNOTATION: "5000"}), false);
    let (p, _) = admit_with(&pod, &sa(&[(TOKEN_EXPIRATION_ANNOTATION, "4800")]), &cfg());
    assert_eq!(token_source(&p)["expirationSeconds"], 5000);
}

#[test]
fn token_expiration_from_service_account_when_pod_has_none() {
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[(TOKEN_EXPIRATION_ANNOTATION, "4800")]), &cfg());
    assert_eq!(token_source(&p)["expirationSeconds"], 4800);
}

#[test]
fn token_expiration_defaults_to_3600_and_empty_counts_as_unset() {
    let (p, _) = admit(&upstream_pod(json!({}), false));
    assert_eq!(token_source(&p)["expirationSeconds"], 3600);
    let pod = upstream_pod(json!({TOKEN_EXPIRATION_ANNOTATION: ""}), false);
    let (p, _) = admit_with(&pod, &sa(&[(TOKEN_EXPIRATION_ANNOTATION, "7200")]), &cfg());
    assert_eq!(token_source(&p)["expirationSeconds"], 7200);
}

#[test]
fn token_expiration_bounds_3600_and_86400_are_accepted() {
    for v in ["3600", "86400"] {
        let (p, _) = admit(&upstream_pod(json!({TOKEN_EXPIRATION_ANNOTATION: v}), false));
        assert_eq!(token_source(&p)["expirationSeconds"].to_string(), v);
    }
}

#[test]
fn invalid_token_expiration_is_denied_with_the_strconv_text() {
    for on_pod in [true, false] {
        let (pod, sa) = match on_pod {
            true => (upstream_pod(json!({TOKEN_EXPIRATION_ANNOTATION: "invalid"}), false), sa(&[])),
            false => (upstream_pod(json!({}), false), sa(&[(TOKEN_EXPIRATION_ANNOTATION, "invalid")])),
        };
        let d = denial_with(&pod, &sa, &cfg());
        assert_eq!(d.code, 400);
        assert!(d.message.starts_with(r#"strconv.ParseInt: parsing "invalid": invalid syntax. To fix: set the annotation azure.workload.identity/service-account-token-expiration on "#), "{}", d.message);
        let on = if on_pod { "on the pod" } else { "on ServiceAccount ns1/sa" };
        assert!(d.message.contains(on), "{}", d.message);
    }
}

#[test]
fn token_expiration_out_of_range_is_denied_with_upstream_text() {
    for (v, shown) in [("100", "100"), ("3599", "3599"), ("86401", "86401"), ("-1", "-1"), ("+90000", "90000")] {
        let d = denial_with(&upstream_pod(json!({TOKEN_EXPIRATION_ANNOTATION: v}), false), &sa(&[]), &cfg());
        assert!(
            d.message.starts_with(&format!(
                "token expiration {shown} not valid. Expected value to be between 3600 and 86400. To fix: "
            )),
            "{}",
            d.message
        );
    }
    let d = denial_with(&upstream_pod(json!({}), false), &sa(&[(TOKEN_EXPIRATION_ANNOTATION, "100")]), &cfg());
    assert!(d.message.starts_with("token expiration 100 not valid"));
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 7: client and tenant
// ---------------------------------------------------------------------------------------------

#[test]
fn client_id_comes_from_the_service_account_annotation() {
    let (p, _) = admit(&upstream_pod(json!({}), false));
    assert_eq!(env_of(&p, "containers", 0), v16_env("clientID", "tenantID"));
}

#[test]
fn empty_client_id_is_not_injected() {
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[]), &cfg());
    assert_eq!(env_of(&p, "containers", 0), v16_env("", "tenantID"));
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[(CLIENT_ID_ANNOTATION, "")]), &cfg());
    assert_eq!(env_of(&p, "containers", 0), v16_env("", "tenantID"));
}

#[test]
fn tenant_id_annotation_is_used_verbatim_when_present() {
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[(TENANT_ID_ANNOTATION, "saTenant")]), &cfg());
    assert_eq!(env_of(&p, "containers", 0), v16_env("", "saTenant"));
    // Present but empty: used verbatim, so (being empty) not injected at all.
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[(TENANT_ID_ANNOTATION, "")]), &cfg());
    assert_eq!(env_of(&p, "containers", 0), v16_env("", ""));
}

#[test]
fn tenant_id_defaults_to_the_webhook_tenant() {
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[]), &Config::new("T"));
    assert_eq!(env_of(&p, "containers", 0), v16_env("", "T"));
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 8: skip-containers
// ---------------------------------------------------------------------------------------------

#[test]
fn skip_containers_is_a_semicolon_list_with_spaces_trimmed() {
    let pod = json!({
        "metadata": {"name": "p", "annotations": {SKIP_CONTAINERS_ANNOTATION: " c1 ;c3; "}},
        "spec": {"initContainers": [{"name": "c3"}], "containers": [{"name": "c1"}, {"name": "c2"}]}
    });
    let (p, _) = admit(&pod);
    assert!(p["spec"]["containers"][0].get("env").is_none());
    assert!(p["spec"]["containers"][0].get("volumeMounts").is_none());
    assert!(p["spec"]["initContainers"][0].get("env").is_none());
    assert_eq!(env_of(&p, "containers", 1), v16_env("clientID", "tenantID"));
    assert_eq!(p["spec"]["containers"][1]["volumeMounts"][0]["mountPath"], "/var/run/secrets/azure/wi");
    // The volume is added even if every container is skipped.
    assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
}

#[test]
fn skip_containers_matches_exact_names_only() {
    let pod = json!({"metadata": {"name": "p", "annotations": {SKIP_CONTAINERS_ANNOTATION: "App"}}, "spec": {"containers": [{"name": "app"}]}});
    let (p, _) = admit(&pod);
    assert!(p["spec"]["containers"][0].get("env").is_some());
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 9, §1.5, §1.6, §1.10: custom token endpoint
// ---------------------------------------------------------------------------------------------

fn custom_cfg(ca: &str) -> Config {
    let mut c = cfg();
    let settings = CustomTokenEndpointSettings {
        annotation_suffix: "identity-binding".into(),
        audience: "api://AKSIdentityBinding".into(),
        token_proxy: "https://kubernetes.default.svc".into(),
        sni_name: "sni.example".into(),
        ca_configmap_name: if ca == "configmap" { "kube-root-ca.crt".into() } else { String::new() },
        ctb_signer_name: if ca == "ctb" { "example.com/signer".into() } else { String::new() },
        ..Default::default()
    };
    c.custom_endpoint = settings.build().unwrap();
    c
}

#[test]
fn custom_endpoint_applies_only_to_pods_annotated_true_in_any_case() {
    let c = custom_cfg("configmap");
    for (value, on) in [("true", true), ("TRUE", true), ("yes", false)] {
        let pod = upstream_pod(json!({"azure.workload.identity/use-identity-binding": value}), false);
        let (p, _) = admit_with(&pod, &sa(&[]), &c);
        assert_eq!(token_source(&p)["audience"] == "api://AKSIdentityBinding", on, "{value}");
    }
}

#[test]
fn custom_endpoint_adds_env_5_to_8_the_custom_audience_and_the_ca_projection() {
    let pod = upstream_pod(json!({"azure.workload.identity/use-identity-binding": "true"}), false);
    let (p, _) = admit_with(&pod, &sa(&[]), &custom_cfg("configmap"));
    let mut want = v16_env("", "tenantID");
    want.extend([
        (AZURE_KUBERNETES_TOKEN_PROXY.into(), "https://kubernetes.default.svc".into()),
        (AZURE_KUBERNETES_SNI_NAME.into(), "sni.example".into()),
        (AZURE_KUBERNETES_CA_FILE.into(), "/var/run/secrets/azure/wi/ca-cert/ca.crt".into()),
    ]);
    assert_eq!(env_of(&p, "containers", 0), want);
    let sources = &p["spec"]["volumes"][0]["projected"]["sources"];
    assert_eq!(
        sources[1],
        json!({"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca-cert/ca.crt"}], "optional": false}})
    );
    let (p, _) = admit_with(&pod, &sa(&[]), &custom_cfg("ctb"));
    assert_eq!(
        p["spec"]["volumes"][0]["projected"]["sources"][1],
        json!({"clusterTrustBundle": {"signerName": "example.com/signer", "path": "ca-cert/ca.crt", "optional": false}})
    );
    // CA_FILE is set even without a CA source.
    let (p, _) = admit_with(&pod, &sa(&[]), &custom_cfg("none"));
    assert!(env_names(&p, "containers", 0).contains(&AZURE_KUBERNETES_CA_FILE.to_string()));
    assert_eq!(p["spec"]["volumes"][0]["projected"]["sources"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 11, §1.5: environment variables
// ---------------------------------------------------------------------------------------------

#[test]
fn init_containers_and_containers_are_both_mutated() {
    let (p, _) = admit(&upstream_pod(json!({}), false));
    for list in ["initContainers", "containers"] {
        assert_eq!(env_of(&p, list, 0), v16_env("clientID", "tenantID"), "{list}");
        assert_eq!(p["spec"][list][0]["volumeMounts"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn env_vars_are_appended_to_an_existing_list() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": "1"}]}]}});
    let (p, ops) = admit(&pod);
    assert_eq!(env_of(&p, "containers", 0)[0], ("A".to_string(), "1".to_string()));
    assert_eq!(env_of(&p, "containers", 0)[1..].to_vec(), v16_env("clientID", "tenantID"));
    assert!(ops.iter().any(|o| o.path == "/spec/containers/0/env/1"));
}

#[test]
fn existing_env_vars_are_never_replaced_even_value_from() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "env": [
        {"name": AZURE_CLIENT_ID, "valueFrom": {"configMapKeyRef": {"name": "ids", "key": "client"}}},
        {"name": AZURE_AUTHORITY_HOST, "value": "https://wid.local/"}
    ]}]}});
    let (p, _) = admit(&pod);
    let env = env_of(&p, "containers", 0);
    assert_eq!(env[0], (AZURE_CLIENT_ID.to_string(), "<from>".to_string()));
    assert_eq!(env[1], (AZURE_AUTHORITY_HOST.to_string(), "https://wid.local/".to_string()));
    assert_eq!(env.len(), 4);
    assert_eq!(p["spec"]["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"], "ids");
}

#[test]
fn env_from_is_ignored() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "envFrom": [{"configMapRef": {"name": "c"}}]}]}});
    let (p, _) = admit(&pod);
    assert_eq!(env_of(&p, "containers", 0), v16_env("clientID", "tenantID"));
    assert_eq!(p["spec"]["containers"][0]["envFrom"], json!([{"configMapRef": {"name": "c"}}]));
}

#[test]
fn empty_values_are_not_injected() {
    let mut c = cfg();
    c.authority_host = String::new();
    c.tenant_id = String::new();
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[]), &c);
    assert_eq!(env_names(&p, "containers", 0), [AZURE_FEDERATED_TOKEN_FILE]);
}

#[test]
fn authority_host_flag_value_is_injected_verbatim() {
    let mut c = cfg();
    c.authority_host = "https://localhost:8443".into();
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[]), &c);
    assert!(env_of(&p, "containers", 0).contains(&(AZURE_AUTHORITY_HOST.into(), "https://localhost:8443".into())));
}

// ---------------------------------------------------------------------------------------------
// §1.3 step 12, §1.6: volume and mounts
// ---------------------------------------------------------------------------------------------

#[test]
fn projected_volume_is_added_with_default_audience() {
    let (p, ops) = admit(&upstream_pod(json!({}), false));
    assert_eq!(
        p["spec"]["volumes"],
        json!([{"name": volume_name("pod"), "projected": {"sources": [{"serviceAccountToken": {
            "path": "token/azure-identity-token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"
        }}]}}])
    );
    assert!(ops.iter().any(|o| o.path == "/spec/volumes" && o.op == Op::Add));
    assert!(p["spec"]["volumes"][0]["projected"].get("defaultMode").is_none());
}

#[test]
fn projected_volume_is_appended_to_existing_volumes() {
    let mut pod = upstream_pod(json!({}), false);
    pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    let (p, ops) = admit(&pod);
    assert_eq!(p["spec"]["volumes"][0], json!({"name": "data", "emptyDir": {}}));
    assert_eq!(p["spec"]["volumes"][1]["name"], volume_name("pod"));
    assert!(ops.iter().any(|o| o.path == "/spec/volumes/1"));
}

#[test]
fn audience_flag_sets_the_token_audience() {
    let mut c = cfg();
    c.audience = "api://wid".into();
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[]), &c);
    assert_eq!(token_source(&p)["audience"], "api://wid");
}

#[test]
fn existing_volume_with_the_name_is_kept_when_it_matches() {
    let mut pod = upstream_pod(json!({}), false);
    pod["spec"]["volumes"] = json!([{"name": volume_name("pod"), "projected": {"sources": [{"serviceAccountToken": {
        "path": "token/azure-identity-token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"
    }}]}}]);
    let (_, ops) = admit(&pod);
    assert!(!ops.iter().any(|o| o.path.starts_with("/spec/volumes")), "{ops:?}");
}

#[test]
fn existing_volume_with_the_name_is_overwritten_with_the_desired_audience() {
    let mut pod = upstream_pod(json!({}), false);
    pod["spec"]["volumes"] = json!([{"name": volume_name("pod"), "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {
        "path": "my-projected-volume", "expirationSeconds": 3600, "audience": "aud"
    }}]}}]);
    let (p, ops) = admit(&pod);
    assert_eq!(
        token_source(&p),
        json!({"path": "token/azure-identity-token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"})
    );
    // Replaced whole, as upstream: the apiserver sets its defaultMode (420) on the new one again.
    assert_eq!(
        p["spec"]["volumes"][0],
        json!({"name": volume_name("pod"), "projected": {"sources": [{"serviceAccountToken": token_source(&p)}]}})
    );
    assert!(ops.iter().any(|o| o.op == Op::Replace && o.path == "/spec/volumes/0"), "{ops:?}");
}

#[test]
fn reserved_volume_that_is_not_projected_is_replaced_as_upstream() {
    let mut pod = upstream_pod(json!({}), false);
    pod["spec"]["volumes"] = json!([{"name": volume_name("pod"), "emptyDir": {}}]);
    let (p, ops) = admit(&pod);
    assert_eq!(ops.iter().filter(|o| o.op == Op::Replace).count(), 1);
    assert_eq!(token_source(&p)["audience"], "api://AzureADTokenExchange");
    assert!(p["spec"]["volumes"][0].get("emptyDir").is_none());
}

#[test]
fn volume_mount_is_added_read_only_at_the_v1_6_path() {
    let (p, _) = admit(&upstream_pod(json!({}), false));
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": volume_name("pod"), "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}])
    );
}

#[test]
fn volume_mount_is_appended_to_existing_mounts() {
    let pod = json!({"metadata": {"name": "pod"}, "spec": {"containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}});
    let (p, ops) = admit(&pod);
    assert_eq!(p["spec"]["containers"][0]["volumeMounts"][0], json!({"name": "data", "mountPath": "/data"}));
    assert_eq!(p["spec"]["containers"][0]["volumeMounts"][1]["name"], volume_name("pod"));
    assert!(ops.iter().any(|o| o.path == "/spec/containers/0/volumeMounts/1"));
}

#[test]
fn existing_mount_with_the_name_is_made_read_only_at_the_path() {
    let v = volume_name("pod");
    let pod = json!({"metadata": {"name": "pod"}, "spec": {"containers": [
        {"name": "a", "volumeMounts": [{"name": v, "mountPath": "/var/run/secrets/azure/wi"}]},
        {"name": "b", "volumeMounts": [{"name": v, "mountPath": "/elsewhere", "readOnly": false}]}
    ]}});
    let (p, _) = admit(&pod);
    for i in 0..2 {
        let m = &p["spec"]["containers"][i]["volumeMounts"];
        assert_eq!(m.as_array().unwrap().len(), 1);
        assert_eq!(m[0], json!({"name": v, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}));
    }
}

/// Found by fuzzing: a mount of the reserved volume without a `mountPath` made the webhook emit a
/// `replace` of a missing member (a 500).
#[test]
fn existing_mount_with_the_name_but_no_path_gets_the_path() {
    let v = volume_name("pod");
    let pod =
        json!({"metadata": {"name": "pod"}, "spec": {"containers": [{"name": "a", "volumeMounts": [{"name": v}]}]}});
    let (p, ops) = admit(&pod);
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": v, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}])
    );
    assert!(ops.iter().all(|o| o.op == Op::Add || o.path == "/spec/containers/0/volumeMounts/0"), "{ops:?}");
    let (_, again) = admit(&p);
    assert!(again.is_empty());
}

/// Found by the upstream oracle: a copied spec's mount of the reserved volume with a subPath, a
/// trailing slash or a propagation mode hid the token; upstream replaces the mount, so does wid.
#[test]
fn existing_mount_of_the_volume_is_replaced_whole() {
    let v = volume_name("pod");
    let want = json!({"name": v, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true});
    for mount in [
        json!({"name": v, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true, "subPath": "token"}),
        json!({"name": v, "mountPath": "/var/run/secrets/azure/wi/", "readOnly": true}),
        json!({"name": v, "mountPath": "/elsewhere", "mountPropagation": "HostToContainer"}),
    ] {
        let pod =
            json!({"metadata": {"name": "pod"}, "spec": {"containers": [{"name": "a", "volumeMounts": [mount]}]}});
        let (p, _) = admit(&pod);
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([want]), "{mount}");
    }
}

/// Found by the upstream oracle: a copied spec's volume with the reserved name and a file mode of
/// 0400 (or other sources) kept that mode for the token; upstream replaces the volume, so does wid.
#[test]
fn existing_volume_with_the_name_is_replaced_whole() {
    let mut pod = upstream_pod(json!({}), false);
    pod["spec"]["volumes"] = json!([{"name": volume_name("pod"), "projected": {"defaultMode": 256, "sources": [
        {"serviceAccountToken": {"path": "token/azure-identity-token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"}},
        {"configMap": {"name": "extra"}}
    ]}}]);
    let (p, _) = admit(&pod);
    assert_eq!(p["spec"]["volumes"][0]["projected"], json!({"sources": [{"serviceAccountToken": token_source(&p)}]}));
}

#[test]
fn v1_5_layout_uses_the_tokens_path_and_fixed_names() {
    let mut c = cfg();
    c.layout = TokenLayout::V1_5;
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[]), &c);
    assert_eq!(
        p["spec"]["volumes"],
        json!([{"name": "azure-identity-token", "projected": {"sources": [{"serviceAccountToken": {
            "path": "azure-identity-token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"
        }}]}}])
    );
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "azure-identity-token", "mountPath": "/var/run/secrets/azure/tokens", "readOnly": true}])
    );
    assert!(
        env_of(&p, "containers", 0).contains(&(
            AZURE_FEDERATED_TOKEN_FILE.into(),
            "/var/run/secrets/azure/tokens/azure-identity-token".into()
        ))
    );
}

#[test]
fn v1_5_layout_keeps_any_existing_token_volume_untouched() {
    let mut c = cfg();
    c.layout = TokenLayout::V1_5;
    let mut pod = upstream_pod(json!({}), false);
    pod["spec"]["volumes"] = json!([{"name": "mine", "projected": {"sources": [{"serviceAccountToken": {"path": "azure-identity-token", "audience": "x"}}]}}]);
    let (p, ops) = admit_with(&pod, &sa(&[]), &c);
    assert!(!ops.iter().any(|o| o.path.starts_with("/spec/volumes")));
    // The mounts name the volume that is there (upstream would name a missing "azure-identity-token").
    assert_eq!(p["spec"]["containers"][0]["volumeMounts"][0]["name"], "mine");
}

// ---------------------------------------------------------------------------------------------
// §1.8: the documented example, exactly; §1.9: the response
// ---------------------------------------------------------------------------------------------

#[test]
fn documented_example_result_v1_6() {
    let pod = json!({"metadata": {"name": "demo", "namespace": "default", "labels": {USE_LABEL: "true"}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}});
    let body = serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "namespace": "default", "object": pod}}))
    .unwrap();
    let client = "11111111-1111-1111-1111-111111111111";
    let resp = mutate(&body, Some(&sa(&[(CLIENT_ID_ANNOTATION, client)])), &Config::new("T"));
    let patched = apply(&pod, resp.patch()).unwrap();
    let vol = "azure-workload-identity-reserved-2a97516c354b68848cdbd8f54a226a";
    assert_eq!(
        patched,
        json!({"metadata": {"name": "demo", "namespace": "default", "labels": {USE_LABEL: "true"}},
        "spec": {
            "containers": [{"name": "app", "image": "busybox",
                "env": [
                    {"name": "AZURE_CLIENT_ID", "value": client},
                    {"name": "AZURE_TENANT_ID", "value": "T"},
                    {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/azure/wi/token/azure-identity-token"},
                    {"name": "AZURE_AUTHORITY_HOST", "value": "https://login.microsoftonline.com/"}
                ],
                "volumeMounts": [{"name": vol, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}]
            }],
            "volumes": [{"name": vol, "projected": {"sources": [{"serviceAccountToken": {
                "path": "token/azure-identity-token", "expirationSeconds": 3600, "audience": "api://AzureADTokenExchange"
            }}]}}]
        }})
    );
    let out = resp.to_value();
    assert_eq!(out["response"]["uid"], "u");
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(out["response"]["patchType"], "JSONPatch");
}

#[test]
fn init_container_restart_policy_is_kept_no_remove_ops() {
    let raw = json!({"metadata":{"name":"pod","namespace":"ns1","creationTimestamp":null,"labels":{"azure.workload.identity/use":"true"}},
        "spec":{"initContainers":[{"name":"init-container","image":"init-container-image","restartPolicy":"Always"}],
                "containers":[{"name":"container","image":"image","resources":{}}]}});
    let (p, ops) = admit(&raw);
    assert_eq!(p["spec"]["initContainers"][0]["restartPolicy"], "Always");
    assert_eq!(p["metadata"]["creationTimestamp"], Value::Null);
    assert!(ops.iter().all(|o| o.op == Op::Add), "{ops:?}");
}

#[test]
fn every_denial_is_code_400_with_a_fix() {
    let cases = [
        (upstream_pod(json!({TOKEN_EXPIRATION_ANNOTATION: "invalid"}), false), false),
        (upstream_pod(json!({TOKEN_EXPIRATION_ANNOTATION: "100"}), false), false),
        (upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: ""}), true), false),
        (upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: "", PROXY_SIDECAR_PORT_ANNOTATION: "x"}), false), false),
        (upstream_pod(json!({}), false), true),
    ];
    for (pod, sa_missing) in cases {
        let s = sa(&[]);
        let resp = mutate(&body(&pod), if sa_missing { None } else { Some(&s) }, &cfg());
        let d = resp.denial().unwrap();
        assert_eq!(d.code, 400);
        assert!(d.message.contains("To fix:"), "{}", d.message);
        assert_eq!(resp.to_value()["response"]["status"]["code"], 400);
    }
}

#[test]
fn v1beta1_reviews_get_v1beta1_responses() {
    let raw = serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
        "request": {"uid": "b", "namespace": NS, "object": upstream_pod(json!({}), false)}}))
    .unwrap();
    let v = mutate(&raw, Some(&sa(&[])), &cfg()).to_value();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(v["response"]["uid"], "b");
    assert_eq!(v["response"]["patchType"], "JSONPatch");
}

// ---------------------------------------------------------------------------------------------
// Better than upstream
// ---------------------------------------------------------------------------------------------

#[test]
fn reinvocation_yields_an_empty_patch() {
    let pod = upstream_pod(json!({INJECT_PROXY_SIDECAR_ANNOTATION: "true"}), false);
    let (once, ops) = admit(&pod);
    assert!(!ops.is_empty());
    let (twice, again) = admit(&once);
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(once, twice);
}

#[test]
fn reinvocation_after_apiserver_defaulting_yields_an_empty_patch() {
    let (mut once, _) = admit(&upstream_pod(json!({}), false));
    // What the apiserver defaults between webhook invocations (checked against kube-apiserver 1.20:
    // a volume mount gets no default).
    once["spec"]["volumes"][0]["projected"]["defaultMode"] = json!(420);
    once["spec"]["containers"][0]["terminationMessagePath"] = json!("/dev/termination-log");
    let (_, again) = admit(&once);
    assert!(again.is_empty(), "{again:?}");
}

/// Upstream #1744: another webhook names the pod between invocations; upstream then appends a second
/// volume and mount at the same path and the apiserver rejects the pod.
#[test]
fn reinvocation_after_a_rename_reuses_the_volume_issue_1744() {
    let pod = json!({"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "app"}]}});
    let (mut once, _) = admit(&pod);
    once["metadata"]["name"] = json!("web-x7k2p");
    let (twice, again) = admit(&once);
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(twice["spec"]["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(twice["spec"]["volumes"][0]["name"], volume_name("web- (prefix)"));
}

#[test]
fn pod_copied_from_a_mutated_pod_keeps_one_volume_and_one_mount() {
    let (mut once, _) = admit(&upstream_pod(json!({}), false));
    once["metadata"]["name"] = json!("copy");
    once["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "extra"}));
    let (twice, ops) = admit(&once);
    assert_eq!(twice["spec"]["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(twice["spec"]["containers"][1]["volumeMounts"][0]["name"], volume_name("pod"));
    assert!(ops.iter().all(|o| o.path.starts_with("/spec/containers/1/")), "{ops:?}");
}

#[test]
fn user_volume_at_the_token_path_is_denied_with_the_fix() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"volumes": [{"name": "certs", "emptyDir": {}}],
        "containers": [{"name": "app", "volumeMounts": [{"name": "certs", "mountPath": "/var/run/secrets/azure/wi/"}]}]}});
    let d = denial_with(&pod, &sa(&[]), &cfg());
    assert_eq!(
        d.message,
        "container \"app\" already mounts volume \"certs\" at /var/run/secrets/azure/wi, where the workload identity \
         token volume is mounted (mountPath must be unique). To fix: mount \"certs\" at another path, or list \"app\" \
         in the pod annotation azure.workload.identity/skip-containers"
    );
    let mut skipped = pod.clone();
    skipped["metadata"]["annotations"] = json!({SKIP_CONTAINERS_ANNOTATION: "app"});
    let (_, ops) = admit(&skipped);
    assert!(!ops.is_empty());
}

/// Upstream #1312: a typed round trip dropped fields the Go types did not know.
#[test]
fn fields_unknown_to_the_webhook_survive_issue_1312() {
    let pod = json!({"metadata": {"name": "p", "x-future": {"a": [1, 2]}}, "spec": {
        "x-spec-future": true,
        "initContainers": [{"name": "i", "restartPolicy": "Always", "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}],
        "containers": [{"name": "app", "x-container-future": {"deep": null}, "env": [{"name": "A", "value": "1", "x-env-future": 1}]}]
    }});
    let (p, ops) = admit(&pod);
    assert!(ops.iter().all(|o| o.op == Op::Add));
    assert!(survives(&pod, &p));
}

#[test]
fn ca_bundle_configmap_is_mounted_and_trusted_by_the_common_runtimes() {
    let mut c = cfg();
    c.ca_bundle = Some(CaBundle::new("wid-ca", "ca.crt").unwrap());
    let (p, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[]), &c);
    let ca = "/var/run/secrets/azure/wi/ca-bundle/ca.crt".to_string();
    let env = env_of(&p, "containers", 0);
    for name in [SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS] {
        assert!(env.contains(&(name.to_string(), ca.clone())), "{name}");
    }
    assert_eq!(
        p["spec"]["volumes"][0]["projected"]["sources"][1],
        json!({"configMap": {"name": "wid-ca", "items": [{"key": "ca.crt", "path": "ca-bundle/ca.crt"}]}})
    );
    let (_, again) = admit_with(&p, &sa(&[]), &c);
    assert!(again.is_empty());
    // Added to a volume injected earlier without it.
    let (plain, _) = admit_with(&upstream_pod(json!({}), false), &sa(&[]), &cfg());
    let (with_ca, ops) = admit_with(&plain, &sa(&[]), &c);
    assert!(ops.iter().any(|o| o.path == "/spec/volumes/0"), "{ops:?}");
    assert_eq!(with_ca["spec"]["volumes"][0]["projected"]["sources"].as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Property test: random pods
// ---------------------------------------------------------------------------------------------

/// Every field of `orig` is in `new` with the same value; arrays may gain elements (insertions keep
/// the original elements' order). A null is Kubernetes' "absent", so anything may take its place.
fn survives(orig: &Value, new: &Value) -> bool {
    match (orig, new) {
        (Value::Null, _) => true,
        (Value::Object(a), Value::Object(b)) => a.iter().all(|(k, v)| b.get(k).is_some_and(|w| survives(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            let mut rest = b.iter();
            a.iter().all(|x| rest.any(|y| survives(x, y)))
        }
        (x, y) => x == y,
    }
}

/// splitmix64: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn random_container(rng: &mut Rng, name: &str, volumes: &[String]) -> Value {
    let mut c = json!({"name": name, "image": "img"});
    if rng.chance(60) {
        let mut env = vec![];
        for k in 0..rng.below(4) {
            let n = rng
                .pick(&["A", "B", AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_AUTHORITY_HOST, SSL_CERT_FILE])
                .to_string();
            if rng.chance(30) {
                env.push(json!({"name": n, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}));
            } else {
                env.push(json!({"name": n, "value": format!("v{k}")}));
            }
        }
        c["env"] = if rng.chance(10) { Value::Null } else { Value::Array(env) };
    }
    if rng.chance(50) && !volumes.is_empty() {
        let mut mounts = vec![];
        for k in 0..rng.below(3) {
            mounts.push(
                json!({"name": rng.pick(volumes), "mountPath": format!("/data/{k}"), "readOnly": rng.chance(50)}),
            );
        }
        c["volumeMounts"] = Value::Array(mounts);
    }
    if rng.chance(30) {
        c["resizePolicy"] = json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"}]);
    }
    if rng.chance(20) {
        c["x-unknown"] = json!({"nested": [1, {"k": "v"}]});
    }
    c
}

fn random_case(rng: &mut Rng) -> (Value, ServiceAccount, Config) {
    let names = ["app", "web", "sidecar", "db", "init-a", "init-b", "job"];
    let mut pool: Vec<&str> = names.to_vec();
    let mut take = |rng: &mut Rng| {
        let i = rng.below(pool.len() as u64) as usize;
        pool.remove(i)
    };
    let volumes: Vec<String> = (0..rng.below(3)).map(|i| format!("vol-{i}")).collect();
    let inits: Vec<Value> = (0..rng.below(3))
        .map(|_| {
            let n = take(rng);
            let mut c = random_container(rng, n, &volumes);
            if rng.chance(30) {
                c["restartPolicy"] = json!("Always");
            }
            c
        })
        .collect();
    let containers: Vec<Value> = (0..1 + rng.below(3))
        .map(|_| {
            let n = take(rng);
            random_container(rng, n, &volumes)
        })
        .collect();
    let mut annotations = serde_json::Map::new();
    if rng.chance(30) {
        let skip: Vec<&str> = (0..rng.below(3)).map(|_| *rng.pick(&names)).collect();
        annotations.insert(SKIP_CONTAINERS_ANNOTATION.into(), json!(skip.join(" ; ")));
    }
    if rng.chance(30) {
        annotations.insert(TOKEN_EXPIRATION_ANNOTATION.into(), json!((3600 + rng.below(82801)).to_string()));
    }
    if rng.chance(25) {
        annotations.insert(INJECT_PROXY_SIDECAR_ANNOTATION.into(), json!("true"));
        if rng.chance(50) {
            annotations.insert(PROXY_SIDECAR_PORT_ANNOTATION.into(), json!((1 + rng.below(65535)).to_string()));
        }
    }
    if rng.chance(20) {
        annotations.insert("azure.workload.identity/use-identity-binding".into(), json!("true"));
    }
    annotations.insert("unrelated/annotation".into(), json!("x"));
    let mut meta = json!({"labels": {USE_LABEL: "true"}, "annotations": annotations});
    match rng.below(3) {
        0 => meta["name"] = json!(format!("pod-{}", rng.below(1000))),
        1 => meta["generateName"] = json!("web-"),
        _ => {}
    }
    if rng.chance(50) {
        meta["namespace"] = json!(NS);
    }
    let mut spec =
        json!({"containers": containers, "nodeSelector": {"kubernetes.io/os": "linux"}, "x-unknown-spec": [true]});
    if !inits.is_empty() {
        spec["initContainers"] = Value::Array(inits);
    } else if rng.chance(20) {
        spec["initContainers"] = Value::Null;
    }
    if !volumes.is_empty() {
        spec["volumes"] = Value::Array(volumes.iter().map(|v| json!({"name": v, "emptyDir": {}})).collect());
    }
    if rng.chance(50) {
        spec["serviceAccountName"] = json!("sa");
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec});

    let mut sa_ann = vec![];
    if rng.chance(70) {
        sa_ann.push((CLIENT_ID_ANNOTATION, if rng.chance(10) { "" } else { "client" }));
    }
    if rng.chance(30) {
        sa_ann.push((TENANT_ID_ANNOTATION, if rng.chance(20) { "" } else { "other-tenant" }));
    }
    if rng.chance(30) {
        sa_ann.push((TOKEN_EXPIRATION_ANNOTATION, "7200"));
    }
    let kind: &str = rng.pick::<&str>(&["configmap", "ctb", "none"]);
    let mut c = if rng.chance(20) { custom_cfg(kind) } else { cfg() };
    if rng.chance(30) {
        c.layout = TokenLayout::V1_5;
    }
    c.proxy.native_sidecar = rng.chance(50);
    if rng.chance(30) {
        c.ca_bundle = Some(CaBundle::new("wid-ca", "ca.crt").unwrap());
    }
    (pod, sa(&sa_ann), c)
}

fn check_consistent(pod: &Value, cfg: &Config, case: usize) {
    let skip: Vec<String> = pod["metadata"]["annotations"][SKIP_CONTAINERS_ANNOTATION]
        .as_str()
        .map(|s| s.split(';').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let volumes: Vec<&str> =
        pod["spec"]["volumes"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    let mut seen = std::collections::HashSet::new();
    assert!(volumes.iter().all(|v| seen.insert(*v)), "case {case}: duplicate volume names {volumes:?}");
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array().map(Vec::as_slice).unwrap_or_default() {
            let mounts = c["volumeMounts"].as_array().map(Vec::as_slice).unwrap_or_default();
            let mut paths = std::collections::HashSet::new();
            assert!(
                mounts.iter().all(|m| paths.insert(m["mountPath"].as_str().unwrap())),
                "case {case}: duplicate mountPath"
            );
            if skip.iter().any(|s| s == c["name"].as_str().unwrap()) {
                continue;
            }
            let ours = mounts.iter().find(|m| m["mountPath"] == cfg.layout.mount_path());
            let ours = ours.unwrap_or_else(|| panic!("case {case}: no token mount in {c}"));
            assert!(volumes.contains(&ours["name"].as_str().unwrap()), "case {case}: mount of a missing volume");
            let env = c["env"].as_array().unwrap();
            assert!(env.iter().any(|e| e["name"] == AZURE_FEDERATED_TOKEN_FILE), "case {case}");
        }
    }
}

#[test]
fn property_random_pods_patch_twice_equals_once_and_no_field_is_lost() {
    let mut rng = Rng(0x5eed_1234);
    for case in 0..2000 {
        let (pod, sa, cfg) = random_case(&mut rng);
        let (once, ops) = admit_with(&pod, &sa, &cfg);
        assert!(!ops.is_empty(), "case {case}");
        // Only additive operations; `replace` only of the namespace or fields of the webhook's own volume/mounts.
        for o in &ops {
            if o.op == Op::Replace {
                assert!(
                    o.path == "/metadata/namespace"
                        || o.path.contains("/serviceAccountToken/")
                        || o.path.ends_with("/mountPath"),
                    "case {case}: {o:?}"
                );
            }
        }
        assert!(survives(&pod, &once), "case {case}: a field was lost\n{pod}\n{once}");
        check_consistent(&once, &cfg, case);
        let (twice, again) = admit_with(&once, &sa, &cfg);
        assert!(again.is_empty(), "case {case}: second pass not empty: {again:?}");
        assert_eq!(once, twice);
        // Another webhook renames the pod, the apiserver defaults the volume: still nothing to do.
        let mut renamed = once.clone();
        renamed["metadata"]["name"] = json!(format!("renamed-{case}"));
        if let Some(vols) = renamed["spec"]["volumes"].as_array_mut() {
            for v in vols {
                if let Some(p) = v.get_mut("projected").and_then(Value::as_object_mut) {
                    p.insert("defaultMode".into(), json!(420));
                }
            }
        }
        let (_, after_rename) = admit_with(&renamed, &sa, &cfg);
        assert!(after_rename.is_empty(), "case {case}: after rename: {after_rename:?}");
    }
}
