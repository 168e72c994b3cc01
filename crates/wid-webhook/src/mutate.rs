//! The admission algorithm of azure-workload-identity's `podMutator.Handle` (v1.6.0, spec §1.3–1.9),
//! computed as additive JSON-patch operations on the raw pod rather than as a diff of a re-serialised
//! typed pod, so no field the webhook does not know about can be lost (upstream #1312).
//!
//! Where upstream is weak the decision is better, never different in what a first admission yields:
//! - a previous injection is recognised by the reserved volume prefix and by the mount path, so a
//!   reinvocation after another webhook renamed the pod yields an empty patch instead of a second
//!   volume at the same path (upstream #1744);
//! - a user volume already mounted at the token path is refused with the fix, instead of a patch the
//!   apiserver rejects with `mountPath ... must be unique`;
//! - every denial says what to change.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use crate::config::{CaBundle, Config, CustomCa, CustomTokenEndpoint, TokenLayout};
use crate::consts::*;
use crate::goparse;
use crate::patch::{PatchError, PatchOp, Patcher, pointer};
use crate::review::{Denial, Review};

/// What the decision needs of the pod's ServiceAccount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccount {
    pub name: String,
    /// Its annotations (only the `azure.workload.identity/` ones matter).
    pub annotations: BTreeMap<String, String>,
}

/// The denial for a ServiceAccount that does not exist (upstream's text plus the fix).
pub fn service_account_not_found(namespace: &str, name: &str) -> Denial {
    Denial::bad_request(format!(
        "serviceaccounts \"{name}\" not found. To fix: create the ServiceAccount before the pod (kubectl create \
         serviceaccount {name} --namespace {namespace}) or set spec.serviceAccountName to an existing one"
    ))
}

/// The denial for a ServiceAccount that could not be read: the API's error text, then the fix.
pub fn service_account_unreadable(namespace: &str, name: &str, api_status: Option<u16>, error: &str) -> Denial {
    let fix = match api_status {
        Some(401 | 403) => "To fix: grant the webhook's ServiceAccount get, list and watch on serviceaccounts \
                            (a ClusterRole bound to it)"
            .to_string(),
        _ => format!(
            "The webhook could not read ServiceAccount {namespace}/{name} from the Kubernetes API; retry, and if it \
             persists check the webhook's logs and its connection to the API server"
        ),
    };
    Denial::bad_request(format!("{error}. {fix}"))
}

/// `azure-workload-identity-reserved-` + the first 30 hex digits of SHA-256(pod name): 63 characters.
pub fn volume_name(pod_name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pod_name.as_bytes());
    let mut name = String::from(RESERVED_VOLUME_PREFIX);
    for b in digest.as_ref().iter().take(15) {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

fn patch_error(e: PatchError) -> Denial {
    Denial::internal(format!("the webhook built an inconsistent patch ({e}); this is a bug in wid, please report it"))
}

fn annotations_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn array<'a>(doc: &'a Value, path: &str) -> &'a [Value] {
    doc.pointer(path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The admission decision (§1.3 steps 2–12).
pub(crate) fn admit(review: &Review, sa: &ServiceAccount, cfg: &Config) -> Result<Vec<PatchOp>, Denial> {
    let pod = review.pod();
    let mut p = Patcher::new(pod.clone());
    let annotations = annotations_of(pod.pointer("/metadata/annotations"));

    // Step 2: metadata.namespace is the request's (pods of controllers arrive without it).
    ensure_namespace(&mut p, review.namespace()).map_err(patch_error)?;
    if p.doc.get("spec").is_none_or(Value::is_null) {
        p.add("/spec".into(), json!({})).map_err(patch_error)?;
    }

    // Step 5: the IMDS proxy, triggered by the annotation's presence whatever its value.
    if annotations.contains_key(INJECT_PROXY_SIDECAR_ANNOTATION) {
        if pod.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
            return Err(Denial::bad_request(format!(
                "hostNetwork is set to true, cannot inject proxy sidecar. To fix: remove the pod annotation \
                 {INJECT_PROXY_SIDECAR_ANNOTATION} (the Azure SDKs read the injected token file directly) or run the \
                 pod without hostNetwork"
            )));
        }
        let port = proxy_port(annotations.get(PROXY_SIDECAR_PORT_ANNOTATION).map(String::as_str))?;
        inject_proxy_init(&mut p, port, cfg).map_err(patch_error)?;
        let list = if cfg.proxy.native_sidecar { "initContainers" } else { "containers" };
        inject_proxy_sidecar(&mut p, list, port, cfg).map_err(patch_error)?;
    }

    // Steps 6–9.
    let expiration = token_expiration(&annotations, sa, review.namespace())?;
    let client_id = sa.annotations.get(CLIENT_ID_ANNOTATION).cloned().unwrap_or_default();
    let tenant_id = sa.annotations.get(TENANT_ID_ANNOTATION).cloned().unwrap_or_else(|| cfg.tenant_id.clone());
    let skip: HashSet<String> = match annotations.get(SKIP_CONTAINERS_ANNOTATION) {
        Some(s) if !s.is_empty() => s.split(';').map(|c| c.trim().to_string()).collect(),
        _ => HashSet::new(),
    };
    let custom = cfg
        .custom_endpoint
        .as_ref()
        .filter(|c| annotations.get(&c.annotation).is_some_and(|v| v.eq_ignore_ascii_case("true")));

    // Step 10: the volume; an earlier injection's is reused whatever the pod is called now.
    let volume = choose_volume(&p.doc, &review.pod_name(), cfg.layout);

    // Step 11: init containers, then containers (the injected proxies included).
    let env = desired_env(&client_id, &tenant_id, custom, cfg);
    for list in ["initContainers", "containers"] {
        let count = array(&p.doc, &format!("/spec/{list}")).len();
        for i in 0..count {
            let name = array(&p.doc, &format!("/spec/{list}"))
                .get(i)
                .map(|c| str_of(c, "name").to_string())
                .unwrap_or_default();
            if skip.contains(&name) {
                continue;
            }
            add_env(&mut p, list, i, &env).map_err(patch_error)?;
            ensure_mount(&mut p, list, i, &name, &volume.name, cfg.layout)?;
        }
    }

    // Step 12: the projected volume.
    let audience = custom.map(|c| c.audience.as_str()).unwrap_or(&cfg.audience);
    let extras = extra_sources(custom, cfg.ca_bundle.as_ref());
    ensure_volume(&mut p, &volume, expiration, audience, &extras, cfg.layout).map_err(patch_error)?;
    Ok(p.ops)
}

fn ensure_namespace(p: &mut Patcher, namespace: &str) -> Result<(), PatchError> {
    match p.doc.get("metadata") {
        None | Some(Value::Null) => p.add("/metadata".into(), json!({ "namespace": namespace })),
        Some(meta) => match meta.get("namespace") {
            Some(Value::String(ns)) if ns == namespace => Ok(()),
            None | Some(Value::Null) => p.add("/metadata/namespace".into(), json!(namespace)),
            Some(_) => p.replace("/metadata/namespace".into(), json!(namespace)),
        },
    }
}

fn proxy_port(annotation: Option<&str>) -> Result<i32, Denial> {
    let Some(raw) = annotation else { return Ok(DEFAULT_PROXY_PORT) };
    let fix = format!("To fix: set the pod annotation {PROXY_SIDECAR_PORT_ANNOTATION} to a port number such as 8000");
    let port = goparse::parse_int(raw, 32)
        .map_err(|e| Denial::bad_request(format!("failed to parse proxy sidecar port: {e}. {fix}")))?;
    // Upstream takes any int32 and leaves the apiserver to refuse the pod; refuse it here, saying why.
    if !(1..=65535).contains(&port) {
        return Err(Denial::bad_request(format!(
            "proxy sidecar port {port} not valid. Expected value to be between 1 and 65535. {fix}"
        )));
    }
    i32::try_from(port).map_err(|_| Denial::bad_request(fix))
}

/// Pod annotation wins over the ServiceAccount's; an empty value counts as unset.
fn token_expiration(pod: &BTreeMap<String, String>, sa: &ServiceAccount, namespace: &str) -> Result<i64, Denial> {
    let (raw, on) = match (pod.get(TOKEN_EXPIRATION_ANNOTATION), sa.annotations.get(TOKEN_EXPIRATION_ANNOTATION)) {
        (Some(v), _) if !v.is_empty() => (v.as_str(), "the pod".to_string()),
        (_, Some(v)) if !v.is_empty() => (v.as_str(), format!("ServiceAccount {namespace}/{}", sa.name)),
        _ => return Ok(DEFAULT_TOKEN_EXPIRATION),
    };
    let fix = format!(
        "To fix: set the annotation {TOKEN_EXPIRATION_ANNOTATION} on {on} to a whole number of seconds between \
         {MIN_TOKEN_EXPIRATION} and {MAX_TOKEN_EXPIRATION}, or remove it (default {DEFAULT_TOKEN_EXPIRATION})"
    );
    let v = goparse::parse_int(raw, 64).map_err(|e| Denial::bad_request(format!("{e}. {fix}")))?;
    if !(MIN_TOKEN_EXPIRATION..=MAX_TOKEN_EXPIRATION).contains(&v) {
        return Err(Denial::bad_request(format!(
            "token expiration {v} not valid. Expected value to be between {MIN_TOKEN_EXPIRATION} and \
             {MAX_TOKEN_EXPIRATION}. {fix}"
        )));
    }
    Ok(v)
}

fn containers_named(doc: &Value, list: &str, name: &str) -> bool {
    array(doc, &format!("/spec/{list}")).iter().any(|c| str_of(c, "name") == name)
}

fn inject_proxy_init(p: &mut Patcher, port: i32, cfg: &Config) -> Result<(), PatchError> {
    if containers_named(&p.doc, "initContainers", PROXY_INIT_CONTAINER) {
        return Ok(());
    }
    let container = json!({
        "name": PROXY_INIT_CONTAINER,
        "image": cfg.proxy.init_image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "privileged": true,
            "runAsNonRoot": false,
            "runAsUser": 0
        },
        "env": [{"name": PROXY_PORT_ENV, "value": port.to_string()}]
    });
    append(p, &["spec", "initContainers"], container)
}

fn inject_proxy_sidecar(p: &mut Patcher, list: &str, port: i32, cfg: &Config) -> Result<(), PatchError> {
    if containers_named(&p.doc, list, PROXY_SIDECAR_CONTAINER) {
        return Ok(());
    }
    let level = &cfg.proxy.log_level;
    let mut container = json!({
        "name": PROXY_SIDECAR_CONTAINER,
        "image": cfg.proxy.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [format!("--proxy-port={port}"), format!("--log-level={level}")],
        "ports": [{"containerPort": port}],
        "lifecycle": {"postStart": {"exec": {"command": [
            "/proxy", format!("--proxy-port={port}"), "--probe", format!("--log-level={level}")
        ]}}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true
        }
    });
    if cfg.proxy.native_sidecar
        && let Some(obj) = container.as_object_mut()
    {
        obj.insert("restartPolicy".into(), json!("Always"));
    }
    // Prepended, as upstream: the sidecar starts first.
    match p.doc.pointer(&format!("/spec/{list}")).and_then(Value::as_array) {
        Some(_) => p.add(pointer(["spec", list, "0"]), container),
        None => p.add(pointer(["spec", list]), json!([container])),
    }
}

/// Appends `value` to the array at `path`, creating the array when absent or null.
fn append(p: &mut Patcher, path: &[&str], value: Value) -> Result<(), PatchError> {
    let ptr = pointer(path);
    match p.doc.pointer(&ptr).and_then(Value::as_array).map(Vec::len) {
        Some(n) => p.add(format!("{ptr}/{n}"), value),
        None => p.add(ptr, json!([value])),
    }
}

fn desired_env(
    client_id: &str,
    tenant_id: &str,
    custom: Option<&CustomTokenEndpoint>,
    cfg: &Config,
) -> Vec<(&'static str, String)> {
    let mount = cfg.layout.mount_path();
    let mut env = vec![
        (AZURE_CLIENT_ID, client_id.to_string()),
        (AZURE_TENANT_ID, tenant_id.to_string()),
        (AZURE_FEDERATED_TOKEN_FILE, cfg.layout.token_file()),
        (AZURE_AUTHORITY_HOST, cfg.authority_host.clone()),
    ];
    if let Some(c) = custom {
        env.extend([
            (AZURE_KUBERNETES_TOKEN_PROXY, c.token_proxy.clone()),
            (AZURE_KUBERNETES_SNI_NAME, c.sni_name.clone()),
            (AZURE_KUBERNETES_CA_FILE, format!("{mount}/{CUSTOM_CA_FILE_PATH}")),
            (AZURE_KUBERNETES_CA_DATA, c.ca_data.clone()),
        ]);
    }
    if cfg.ca_bundle.is_some() {
        let file = format!("{mount}/{CA_BUNDLE_FILE_PATH}");
        env.extend([(SSL_CERT_FILE, file.clone()), (REQUESTS_CA_BUNDLE, file.clone()), (NODE_EXTRA_CA_CERTS, file)]);
    }
    env
}

/// Appends each desired variable the container lacks (by name) whose value is non-empty; existing
/// entries, `valueFrom` included, are never touched.
fn add_env(p: &mut Patcher, list: &str, i: usize, desired: &[(&'static str, String)]) -> Result<(), PatchError> {
    let env_ptr = pointer(["spec", list, &i.to_string(), "env"]);
    let existing: HashSet<String> = array(&p.doc, &env_ptr).iter().map(|e| str_of(e, "name").to_string()).collect();
    let missing: Vec<Value> = desired
        .iter()
        .filter(|(name, value)| !value.is_empty() && !existing.contains(*name))
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    match p.doc.pointer(&env_ptr).and_then(Value::as_array).map(Vec::len) {
        None => p.add(env_ptr, Value::Array(missing)),
        Some(mut n) => {
            for v in missing {
                p.add(format!("{env_ptr}/{n}"), v)?;
                n += 1;
            }
            Ok(())
        }
    }
}

fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Mounts the volume read-only at the layout's path, unless the container already has it there.
fn ensure_mount(
    p: &mut Patcher,
    list: &str,
    i: usize,
    container: &str,
    volume: &str,
    layout: TokenLayout,
) -> Result<(), Denial> {
    let mounts_ptr = pointer(["spec", list, &i.to_string(), "volumeMounts"]);
    let path = layout.mount_path();
    let desired = json!({"name": volume, "mountPath": path, "readOnly": true});
    // Upstream (v1.6) replaces its own mount with the one it wants, wherever it was: a subPath, a
    // trailing slash or a propagation mode from a copied spec would hide the token.
    let replace_at = {
        let mounts = array(&p.doc, &mounts_ptr);
        let at_path = mounts.iter().position(|m| same_path(str_of(m, "mountPath"), path));
        let by_name = mounts.iter().position(|m| str_of(m, "name") == volume);
        let differs = |k: usize| (layout == TokenLayout::V1_6 && mounts.get(k) != Some(&desired)).then_some(k);
        match (at_path, by_name) {
            (Some(k), _) => {
                let name = mounts.get(k).map(|m| str_of(m, "name")).unwrap_or_default();
                if name == volume {
                    differs(k)
                } else if name.starts_with(RESERVED_VOLUME_PREFIX) || name == LEGACY_VOLUME_NAME {
                    None // an earlier injection's mount (another reserved volume): already in place
                } else {
                    return Err(Denial::bad_request(format!(
                        "container \"{container}\" already mounts volume \"{name}\" at {path}, where the \
                         workload identity token volume is mounted (mountPath must be unique). To fix: mount \
                         \"{name}\" at another path, or list \"{container}\" in the pod annotation \
                         {SKIP_CONTAINERS_ANNOTATION}"
                    )));
                }
            }
            // v1.5 leaves a mount with the name where it is, as upstream did.
            (None, Some(k)) => differs(k),
            (None, None) => {
                let segs = ["spec", list, &i.to_string(), "volumeMounts"];
                return append(p, &segs, desired).map_err(patch_error);
            }
        }
    };
    match replace_at {
        Some(k) => p.replace(format!("{mounts_ptr}/{k}"), desired).map_err(patch_error),
        None => Ok(()),
    }
}

struct VolumeChoice {
    name: String,
    /// Index of the volume when the pod already has it.
    index: Option<usize>,
}

fn has_token_source(vol: &Value, path: &str) -> bool {
    vol.pointer("/projected/sources").and_then(Value::as_array).is_some_and(|s| {
        s.iter().any(|src| src.pointer("/serviceAccountToken/path").and_then(Value::as_str) == Some(path))
    })
}

fn choose_volume(doc: &Value, pod_name: &str, layout: TokenLayout) -> VolumeChoice {
    let volumes = array(doc, "/spec/volumes");
    let find = |pred: &dyn Fn(&Value) -> bool| volumes.iter().position(pred);
    match layout {
        TokenLayout::V1_6 => {
            let hashed = volume_name(pod_name);
            if let Some(i) = find(&|v| str_of(v, "name") == hashed) {
                return VolumeChoice { name: hashed, index: Some(i) };
            }
            // Injected before the pod got its final name (upstream #1744), or copied from a mutated pod.
            if let Some(i) = find(&|v| str_of(v, "name").starts_with(RESERVED_VOLUME_PREFIX)) {
                let name = volumes.get(i).map(|v| str_of(v, "name").to_string()).unwrap_or_default();
                return VolumeChoice { name, index: Some(i) };
            }
            VolumeChoice { name: hashed, index: None }
        }
        TokenLayout::V1_5 => {
            if let Some(i) = find(&|v| str_of(v, "name") == LEGACY_VOLUME_NAME) {
                return VolumeChoice { name: LEGACY_VOLUME_NAME.into(), index: Some(i) };
            }
            if let Some(i) = find(&|v| has_token_source(v, TokenLayout::V1_5.token_path())) {
                let name = volumes.get(i).map(|v| str_of(v, "name").to_string()).unwrap_or_default();
                return VolumeChoice { name, index: Some(i) };
            }
            VolumeChoice { name: LEGACY_VOLUME_NAME.into(), index: None }
        }
    }
}

/// Projection sources besides the token: the custom endpoint's CA and wid's CA bundle, each with the
/// path it writes (which identifies it in an existing volume).
fn extra_sources(custom: Option<&CustomTokenEndpoint>, bundle: Option<&CaBundle>) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if let Some(c) = custom {
        match &c.ca {
            CustomCa::None => {}
            CustomCa::ConfigMap(name) => out.push((
                CUSTOM_CA_FILE_PATH,
                json!({"configMap": {"name": name, "items": [{"key": "ca.crt", "path": CUSTOM_CA_FILE_PATH}], "optional": false}}),
            )),
            CustomCa::ClusterTrustBundle { signer_name, label_selector } => {
                let mut ctb = json!({"signerName": signer_name, "path": CUSTOM_CA_FILE_PATH, "optional": false});
                if let (Some(sel), Some(obj)) = (label_selector, ctb.as_object_mut()) {
                    obj.insert("labelSelector".into(), sel.clone());
                }
                out.push((CUSTOM_CA_FILE_PATH, json!({ "clusterTrustBundle": ctb })));
            }
        }
    }
    if let Some(b) = bundle {
        out.push((
            CA_BUNDLE_FILE_PATH,
            json!({"configMap": {"name": b.configmap, "items": [{"key": b.key, "path": CA_BUNDLE_FILE_PATH}]}}),
        ));
    }
    out
}

fn source_writes(src: &Value, path: &str) -> bool {
    let listed = |kind: &str| {
        src.pointer(&format!("/{kind}/items"))
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|i| str_of(i, "path") == path))
    };
    listed("configMap")
        || listed("secret")
        || src.pointer("/clusterTrustBundle/path").and_then(Value::as_str) == Some(path)
        || src.pointer("/serviceAccountToken/path").and_then(Value::as_str) == Some(path)
}

fn ensure_volume(
    p: &mut Patcher,
    volume: &VolumeChoice,
    expiration: i64,
    audience: &str,
    extras: &[(&'static str, Value)],
    layout: TokenLayout,
) -> Result<(), PatchError> {
    let token = json!({"serviceAccountToken": {
        "path": layout.token_path(), "expirationSeconds": expiration, "audience": audience
    }});
    let mut sources = vec![token];
    sources.extend(extras.iter().map(|(_, s)| s.clone()));
    let desired = json!({"name": volume.name, "projected": {"sources": sources}});
    let Some(k) = volume.index else {
        return append(p, &["spec", "volumes"], desired);
    };
    let vol_ptr = format!("/spec/volumes/{k}");
    if layout == TokenLayout::V1_6 {
        // Upstream replaces the volume it reserved with the one it wants: whatever else a copied spec
        // left in it (a file mode, other sources or paths) would make the token unreadable or put it
        // elsewhere than AZURE_FEDERATED_TOKEN_FILE says. The apiserver's default mode (420) is no
        // difference: it sets it again on the replacement.
        let mut current = p.doc.pointer(&vol_ptr).cloned().unwrap_or_default();
        if let Some(projected) = current.get_mut("projected").and_then(Value::as_object_mut)
            && projected.get("defaultMode") == Some(&json!(420))
        {
            projected.remove("defaultMode");
        }
        return if current == desired { Ok(()) } else { p.replace(vol_ptr, desired) };
    }
    // v1.5 never touched an existing volume; wid adds only its CA sources to a projected one.
    let sources_ptr = format!("{vol_ptr}/projected/sources");
    if p.doc.pointer(&sources_ptr).and_then(Value::as_array).is_none() {
        return Ok(());
    }
    for (path, source) in extras {
        let current = array(&p.doc, &sources_ptr);
        if !current.iter().any(|s| source_writes(s, path)) {
            let n = current.len();
            p.add(format!("{sources_ptr}/{n}"), source.clone())?;
        }
    }
    Ok(())
}
