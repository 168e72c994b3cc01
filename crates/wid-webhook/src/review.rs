//! AdmissionReview in (admission.k8s.io/v1 or v1beta1) and out: parsing, the pod's shape as far as the
//! webhook reads it, and the response with the uid echoed and the patch base64-encoded.

use base64::Engine;
use serde_json::{Map, Value, json};

use wid_core::kube::{is_dns1123_label, is_dns1123_subdomain};

use crate::config::Config;
use crate::mutate::{self, ServiceAccount};
use crate::patch::PatchOp;

/// Largest AdmissionReview accepted (controller-runtime's limit).
pub const MAX_REVIEW_BYTES: usize = 7 * 1024 * 1024;

/// The AdmissionReview API version, echoed in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReviewVersion {
    #[default]
    V1,
    V1beta1,
}

impl ReviewVersion {
    /// `admission.k8s.io/v1` or `admission.k8s.io/v1beta1`.
    pub fn api_version(self) -> &'static str {
        match self {
            ReviewVersion::V1 => "admission.k8s.io/v1",
            ReviewVersion::V1beta1 => "admission.k8s.io/v1beta1",
        }
    }
}

/// Why a request is refused: `status.code` and `status.message` of the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 400 for anything about the request or its ServiceAccount, 500 for the webhook's own faults.
    pub code: u16,
    /// Upstream's text where upstream has one, then what to do about it.
    pub message: String,
}

impl Denial {
    /// A 400 denial.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Denial { code: 400, message: message.into() }
    }

    /// A 500 denial (the webhook's own fault).
    pub fn internal(message: impl Into<String>) -> Self {
        Denial { code: 500, message: message.into() }
    }
}

/// A parsed AdmissionReview whose `request.object` has the shape of a Pod.
#[derive(Debug, Clone)]
pub struct Review {
    version: ReviewVersion,
    uid: String,
    namespace: String,
    operation: String,
    pod: Value,
}

/// The answer to one AdmissionReview.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub version: ReviewVersion,
    pub uid: String,
    /// The patch (possibly empty) when allowed; the denial otherwise.
    pub outcome: Result<Vec<PatchOp>, Denial>,
}

impl Response {
    /// Whether the pod is admitted.
    pub fn allowed(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The patch; empty when denied or when there is nothing to change.
    pub fn patch(&self) -> &[PatchOp] {
        match &self.outcome {
            Ok(ops) => ops,
            Err(_) => &[],
        }
    }

    /// The denial, if any.
    pub fn denial(&self) -> Option<&Denial> {
        self.outcome.as_ref().err()
    }

    /// The AdmissionReview response document.
    pub fn to_value(&self) -> Value {
        let mut resp = Map::new();
        resp.insert("uid".into(), Value::String(self.uid.clone()));
        resp.insert("allowed".into(), Value::Bool(self.allowed()));
        match &self.outcome {
            Ok(ops) if ops.is_empty() => {}
            Ok(ops) => {
                let bytes = serde_json::to_vec(ops).unwrap_or_else(|_| b"[]".to_vec());
                resp.insert("patchType".into(), Value::String("JSONPatch".into()));
                resp.insert("patch".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)));
            }
            Err(d) => {
                resp.insert("status".into(), json!({"code": d.code, "message": d.message}));
            }
        }
        json!({"apiVersion": self.version.api_version(), "kind": "AdmissionReview", "response": resp})
    }

    /// [`Response::to_value`] serialised.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    fn refused(version: ReviewVersion, uid: String, denial: Denial) -> Self {
        Response { version, uid, outcome: Err(denial) }
    }
}

const FIX_SENDER: &str = "To fix: send a core/v1 Pod in an admission.k8s.io/v1 or v1beta1 AdmissionReview (the \
                          kube-apiserver always does; check what is calling the webhook)";

fn decode_error(detail: impl std::fmt::Display) -> Denial {
    Denial::bad_request(format!("couldn't get version/kind; json parse error: {detail}. {FIX_SENDER}"))
}

impl Review {
    /// Parses an HTTP request body with its `Content-Type`, as controller-runtime's webhook server:
    /// anything unusable becomes a 400 denial (with the uid when it could be read), never a panic.
    pub fn parse_http(content_type: Option<&str>, body: &[u8]) -> Result<Review, Response> {
        let media = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(Response::refused(
                ReviewVersion::V1,
                String::new(),
                Denial::bad_request(format!(
                    "contentType={}, expected application/json. To fix: send the AdmissionReview with Content-Type: \
                     application/json",
                    content_type.unwrap_or_default()
                )),
            ));
        }
        Review::parse(body)
    }

    /// Parses an AdmissionReview.
    pub fn parse(body: &[u8]) -> Result<Review, Response> {
        let refuse = |v, uid: &str, d| Err(Response::refused(v, uid.to_string(), d));
        if body.is_empty() {
            return refuse(ReviewVersion::V1, "", Denial::bad_request(format!("request body is empty. {FIX_SENDER}")));
        }
        if body.len() > MAX_REVIEW_BYTES {
            return refuse(
                ReviewVersion::V1,
                "",
                Denial::bad_request(format!("request entity is too large (limit {MAX_REVIEW_BYTES} bytes)")),
            );
        }
        let doc: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return refuse(ReviewVersion::V1, "", Denial::bad_request(format!("{e}. {FIX_SENDER}")));
            }
        };
        let Some(doc) = doc.as_object() else {
            return refuse(
                ReviewVersion::V1,
                "",
                Denial::bad_request(format!("the body is not an AdmissionReview object. {FIX_SENDER}")),
            );
        };
        let version = match doc.get("apiVersion").and_then(Value::as_str) {
            Some("admission.k8s.io/v1") => ReviewVersion::V1,
            Some("admission.k8s.io/v1beta1") => ReviewVersion::V1beta1,
            other => {
                return refuse(
                    ReviewVersion::V1,
                    "",
                    Denial::bad_request(format!(
                        "unsupported AdmissionReview apiVersion {}; expected admission.k8s.io/v1 or \
                         admission.k8s.io/v1beta1",
                        other.map(crate::goparse::quote).unwrap_or_else(|| "(none)".into())
                    )),
                );
            }
        };
        if let Some(kind) = doc.get("kind").and_then(Value::as_str)
            && kind != "AdmissionReview"
        {
            return refuse(
                version,
                "",
                Denial::bad_request(format!(
                    "kind {} is not AdmissionReview. {FIX_SENDER}",
                    crate::goparse::quote(kind)
                )),
            );
        }
        let Some(request) = doc.get("request").and_then(Value::as_object) else {
            return refuse(version, "", Denial::bad_request(format!("got an empty AdmissionRequest. {FIX_SENDER}")));
        };
        let uid = request.get("uid").and_then(Value::as_str).unwrap_or_default().to_string();
        let namespace = request.get("namespace").and_then(Value::as_str).unwrap_or_default().to_string();
        let operation = request.get("operation").and_then(Value::as_str).unwrap_or_default().to_string();
        let pod = match request.get("object") {
            None | Some(Value::Null) => return refuse(version, &uid, decode_error("there is no content to decode")),
            Some(Value::Object(_)) => request.get("object").cloned().unwrap_or_default(),
            Some(other) => {
                return refuse(
                    version,
                    &uid,
                    decode_error(format!("request.object is {}, not a Pod object", json_type(other))),
                );
            }
        };
        if let Err(detail) = check_pod_shape(&pod) {
            return refuse(
                version,
                &uid,
                Denial::bad_request(format!("couldn't decode the Pod in request.object: {detail}. {FIX_SENDER}")),
            );
        }
        if namespace.is_empty() || !is_dns1123_label(&namespace) {
            return refuse(
                version,
                &uid,
                Denial::bad_request(format!(
                    "request.namespace {} is not a namespace name; pods are namespaced. {FIX_SENDER}",
                    crate::goparse::quote(&namespace)
                )),
            );
        }
        let review = Review { version, uid, namespace, operation, pod };
        let sa = review.service_account_name();
        if !is_dns1123_subdomain(sa) {
            let d = Denial::bad_request(format!(
                "spec.serviceAccountName {} is not a ServiceAccount name. To fix: name an existing ServiceAccount \
                 (lowercase letters, digits, '-' and '.')",
                crate::goparse::quote(sa)
            ));
            return Err(review.deny(d));
        }
        Ok(review)
    }

    /// `admission.k8s.io/v1` or `v1beta1`.
    pub fn version(&self) -> ReviewVersion {
        self.version
    }

    /// `request.uid`.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// `request.namespace`: where the pod and its ServiceAccount live.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `request.operation` (the MutatingWebhookConfiguration sends only `CREATE`).
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// `request.object`.
    pub fn pod(&self) -> &Value {
        &self.pod
    }

    /// `spec.serviceAccountName`, or `default` when empty.
    pub fn service_account_name(&self) -> &str {
        match self.pod.pointer("/spec/serviceAccountName").and_then(Value::as_str) {
            Some(s) if !s.is_empty() => s,
            _ => "default",
        }
    }

    /// `metadata.name`, or `metadata.generateName + " (prefix)"` (pods of controllers).
    pub fn pod_name(&self) -> String {
        match self.pod.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!(
                "{} (prefix)",
                self.pod.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or_default()
            ),
        }
    }

    /// The decision for this pod with its ServiceAccount.
    pub fn admit(&self, sa: &ServiceAccount, cfg: &Config) -> Response {
        Response { version: self.version, uid: self.uid.clone(), outcome: mutate::admit(self, sa, cfg) }
    }

    /// A denial of this request (e.g. the ServiceAccount could not be read).
    pub fn deny(&self, denial: Denial) -> Response {
        Response::refused(self.version, self.uid.clone(), denial)
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` is absent, null or of the type `check` accepts.
fn optional(
    parent: &Map<String, Value>,
    key: &str,
    path: &str,
    what: &str,
    check: fn(&Value) -> bool,
) -> Result<(), String> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if check(v) => Ok(()),
        Some(v) => Err(format!("{path}{key} must be {what}, not {}", json_type(v))),
    }
}

fn items<'a>(parent: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    parent.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The fields the webhook reads or writes have the types of a core/v1 Pod (what Go's decoder into
/// `corev1.Pod` would refuse, the webhook refuses with a path to the field).
fn check_pod_shape(pod: &Value) -> Result<(), String> {
    let pod = pod.as_object().ok_or("the object is not a JSON object")?;
    optional(pod, "metadata", "", "an object", Value::is_object)?;
    optional(pod, "spec", "", "an object", Value::is_object)?;
    if let Some(meta) = pod.get("metadata").and_then(Value::as_object) {
        for k in ["name", "generateName", "namespace"] {
            optional(meta, k, "metadata.", "a string", Value::is_string)?;
        }
        for k in ["annotations", "labels"] {
            optional(meta, k, "metadata.", "an object", Value::is_object)?;
            if let Some(m) = meta.get(k).and_then(Value::as_object) {
                for (ak, av) in m {
                    if !av.is_string() {
                        return Err(format!("metadata.{k}[{}] must be a string", crate::goparse::quote(ak)));
                    }
                }
            }
        }
    }
    let Some(spec) = pod.get("spec").and_then(Value::as_object) else { return Ok(()) };
    optional(spec, "serviceAccountName", "spec.", "a string", Value::is_string)?;
    optional(spec, "hostNetwork", "spec.", "a boolean", Value::is_boolean)?;
    optional(spec, "volumes", "spec.", "an array", Value::is_array)?;
    for (i, vol) in items(spec, "volumes").iter().enumerate() {
        let at = format!("spec.volumes[{i}].");
        let vol = vol.as_object().ok_or_else(|| format!("spec.volumes[{i}] must be an object"))?;
        optional(vol, "name", &at, "a string", Value::is_string)?;
        optional(vol, "projected", &at, "an object", Value::is_object)?;
        if let Some(projected) = vol.get("projected").and_then(Value::as_object) {
            let at = format!("{at}projected.");
            optional(projected, "sources", &at, "an array", Value::is_array)?;
            for (s, src) in items(projected, "sources").iter().enumerate() {
                let at = format!("{at}sources[{s}].");
                let src = src.as_object().ok_or_else(|| format!("{at} must be an object"))?;
                for k in ["serviceAccountToken", "configMap", "clusterTrustBundle", "secret", "downwardAPI"] {
                    optional(src, k, &at, "an object", Value::is_object)?;
                }
                if let Some(cm) = src.get("configMap").and_then(Value::as_object) {
                    optional(cm, "items", &format!("{at}configMap."), "an array", Value::is_array)?;
                }
            }
        }
    }
    for list in ["initContainers", "containers"] {
        optional(spec, list, "spec.", "an array", Value::is_array)?;
        for (i, c) in items(spec, list).iter().enumerate() {
            let at = format!("spec.{list}[{i}].");
            let c = c.as_object().ok_or_else(|| format!("spec.{list}[{i}] must be an object"))?;
            optional(c, "name", &at, "a string", Value::is_string)?;
            optional(c, "env", &at, "an array", Value::is_array)?;
            for (e, env) in items(c, "env").iter().enumerate() {
                let env = env.as_object().ok_or_else(|| format!("{at}env[{e}] must be an object"))?;
                optional(env, "name", &format!("{at}env[{e}]."), "a string", Value::is_string)?;
            }
            optional(c, "volumeMounts", &at, "an array", Value::is_array)?;
            for (m, mount) in items(c, "volumeMounts").iter().enumerate() {
                let mat = format!("{at}volumeMounts[{m}].");
                let mount = mount.as_object().ok_or_else(|| format!("{at}volumeMounts[{m}] must be an object"))?;
                optional(mount, "name", &mat, "a string", Value::is_string)?;
                optional(mount, "mountPath", &mat, "a string", Value::is_string)?;
                optional(mount, "readOnly", &mat, "a boolean", Value::is_boolean)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review_json(version: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": version,
            "kind": "AdmissionReview",
            "request": {"uid": "u-1", "namespace": "ns1", "operation": "CREATE", "object": object}
        }))
        .unwrap()
    }

    #[test]
    fn v1_and_v1beta1_are_read_and_echoed() {
        for v in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
            let r = Review::parse(&review_json(v, json!({"metadata": {"name": "p"}}))).unwrap();
            assert_eq!(r.version().api_version(), v);
            assert_eq!(r.uid(), "u-1");
            assert_eq!(r.namespace(), "ns1");
            assert_eq!(r.operation(), "CREATE");
            let out = r.deny(Denial::bad_request("no")).to_value();
            assert_eq!(out["apiVersion"], v);
            assert_eq!(out["kind"], "AdmissionReview");
            assert_eq!(out["response"]["uid"], "u-1");
        }
    }

    #[test]
    fn content_type_must_be_json() {
        let body = review_json("admission.k8s.io/v1", json!({}));
        let err = Review::parse_http(Some("text/plain"), &body).unwrap_err();
        assert!(
            err.denial().unwrap().message.starts_with("contentType=text/plain, expected application/json. To fix: ")
        );
        assert!(Review::parse_http(Some("application/json; charset=utf-8"), &body).is_ok());
    }

    #[test]
    fn malformed_reviews_are_400_denials() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "request body is empty"),
            (b"invalid".to_vec(), "expected value"),
            (b"[]".to_vec(), "not an AdmissionReview object"),
            (br#"{"apiVersion":"admission.k8s.io/v2"}"#.to_vec(), "unsupported AdmissionReview apiVersion"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(), "is not AdmissionReview"),
            (br#"{"apiVersion":"admission.k8s.io/v1"}"#.to_vec(), "got an empty AdmissionRequest"),
            (review_json("admission.k8s.io/v1", Value::Null), "couldn't get version/kind"),
            (review_json("admission.k8s.io/v1", json!("invalid")), "couldn't get version/kind"),
            (review_json("admission.k8s.io/v1", json!({"spec": {"containers": "x"}})), "spec.containers must be"),
            (
                review_json("admission.k8s.io/v1", json!({"spec": {"containers": [{"env": [{"name": 1}]}]}})),
                "spec.containers[0].env[0].name must be a string",
            ),
            (
                review_json("admission.k8s.io/v1", json!({"metadata": {"annotations": {"a": 1}}})),
                "metadata.annotations[\"a\"] must be a string",
            ),
            (
                review_json("admission.k8s.io/v1", json!({"spec": {"serviceAccountName": "../../secrets"}})),
                "is not a ServiceAccount name",
            ),
        ];
        for (body, want) in cases {
            let resp = Review::parse(&body).unwrap_err();
            let d = resp.denial().unwrap();
            assert_eq!(d.code, 400);
            assert!(d.message.contains(want), "{want:?} not in {:?}", d.message);
            assert!(
                d.message.contains("To fix:") || d.message.contains("expected admission.k8s.io/v1"),
                "{}",
                d.message
            );
            let v = resp.to_value();
            assert_eq!(v["response"]["allowed"], false);
            assert_eq!(v["response"]["status"]["code"], 400);
        }
    }

    #[test]
    fn request_namespace_is_required_and_checked() {
        for ns in [json!(""), json!("../x"), Value::Null] {
            let body = serde_json::to_vec(&json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": "u", "namespace": ns, "object": {}}
            }))
            .unwrap();
            let resp = Review::parse(&body).unwrap_err();
            assert_eq!(resp.uid, "u");
            assert!(resp.denial().unwrap().message.contains("is not a namespace name"));
        }
    }

    #[test]
    fn allowed_response_carries_a_base64_json_patch_or_nothing() {
        let r = Review::parse(&review_json("admission.k8s.io/v1", json!({}))).unwrap();
        let empty = Response { version: r.version(), uid: "u".into(), outcome: Ok(vec![]) }.to_value();
        assert_eq!(
            empty,
            json!({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":true}})
        );
        let op = PatchOp { op: crate::patch::Op::Add, path: "/a".into(), value: json!(1) };
        let v = Response { version: r.version(), uid: "u".into(), outcome: Ok(vec![op]) }.to_value();
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let raw = base64::engine::general_purpose::STANDARD.decode(v["response"]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), json!([{"op":"add","path":"/a","value":1}]));
    }
}
