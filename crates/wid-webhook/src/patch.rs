//! RFC 6902 JSON patches: the operations the webhook emits (`add`, and `replace` of a scalar or of a
//! volume that carries the reserved name) and an applier used to keep a working copy of the pod in step
//! with the patch, so later operations address the document as it will be.

use serde::Serialize;
use serde_json::Value;

/// One patch operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOp {
    /// `add` or `replace` — never `remove`, `move` or `copy`.
    pub op: Op,
    /// JSON Pointer (RFC 6901).
    pub path: String,
    pub value: Value,
}

/// The operations the webhook uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Replace,
}

/// A patch could not be applied (the pointer does not address the document).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSON patch {op} {path}: {reason}")]
pub struct PatchError {
    pub op: &'static str,
    pub path: String,
    pub reason: &'static str,
}

/// Escapes one reference token (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> String {
    if !token.contains(['~', '/']) {
        return token.to_string();
    }
    token.replace('~', "~0").replace('/', "~1")
}

/// Builds a pointer from tokens.
pub fn pointer<I, S>(tokens: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut p = String::new();
    for t in tokens {
        p.push('/');
        p.push_str(&escape(t.as_ref()));
    }
    p
}

fn unescape(token: &str) -> String {
    if !token.contains('~') {
        return token.to_string();
    }
    token.replace("~1", "/").replace("~0", "~")
}

/// Applies one operation in place, as RFC 6902 (and evanphx/json-patch) define `add` and `replace`.
pub fn apply_op(doc: &mut Value, op: &PatchOp) -> Result<(), PatchError> {
    let name = match op.op {
        Op::Add => "add",
        Op::Replace => "replace",
    };
    let err = |reason| PatchError { op: name, path: op.path.clone(), reason };
    if op.path.is_empty() {
        *doc = op.value.clone();
        return Ok(());
    }
    let rest = op.path.strip_prefix('/').ok_or_else(|| err("pointer does not start with '/'"))?;
    let tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let (last, parents) = tokens.split_last().ok_or_else(|| err("empty pointer"))?;
    let mut target = &mut *doc;
    for t in parents {
        target = match target {
            Value::Object(m) => m.get_mut(t.as_str()).ok_or_else(|| err("missing object member"))?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| err("bad array index"))?;
                a.get_mut(i).ok_or_else(|| err("array index out of bounds"))?
            }
            _ => return Err(err("path crosses a scalar")),
        };
    }
    match (target, op.op) {
        (Value::Object(m), Op::Add) => {
            m.insert(last.clone(), op.value.clone());
        }
        (Value::Object(m), Op::Replace) => {
            let slot = m.get_mut(last.as_str()).ok_or_else(|| err("replace of a missing member"))?;
            *slot = op.value.clone();
        }
        (Value::Array(a), Op::Add) => {
            let i = if last == "-" { a.len() } else { last.parse().map_err(|_| err("bad array index"))? };
            if i > a.len() {
                return Err(err("array index out of bounds"));
            }
            a.insert(i, op.value.clone());
        }
        (Value::Array(a), Op::Replace) => {
            let i: usize = last.parse().map_err(|_| err("bad array index"))?;
            let slot = a.get_mut(i).ok_or_else(|| err("array index out of bounds"))?;
            *slot = op.value.clone();
        }
        _ => return Err(err("parent is a scalar")),
    }
    Ok(())
}

/// Applies a whole patch to a copy of `doc`.
pub fn apply(doc: &Value, ops: &[PatchOp]) -> Result<Value, PatchError> {
    let mut out = doc.clone();
    for op in ops {
        apply_op(&mut out, op)?;
    }
    Ok(out)
}

/// A working copy of the document and the operations that produced it from the original.
#[derive(Debug)]
pub(crate) struct Patcher {
    pub doc: Value,
    pub ops: Vec<PatchOp>,
}

impl Patcher {
    pub fn new(doc: Value) -> Self {
        Patcher { doc, ops: Vec::new() }
    }

    pub fn add(&mut self, path: String, value: Value) -> Result<(), PatchError> {
        self.push(PatchOp { op: Op::Add, path, value })
    }

    pub fn replace(&mut self, path: String, value: Value) -> Result<(), PatchError> {
        self.push(PatchOp { op: Op::Replace, path, value })
    }

    fn push(&mut self, op: PatchOp) -> Result<(), PatchError> {
        apply_op(&mut self.doc, &op)?;
        self.ops.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_escape_tokens() {
        assert_eq!(pointer(["metadata", "annotations", "a/b~c"]), "/metadata/annotations/a~1b~0c");
    }

    #[test]
    fn add_and_replace_as_rfc6902() {
        let doc = json!({"a": [1, 2], "b": {"c": 1}});
        let ops = vec![
            PatchOp { op: Op::Add, path: "/a/0".into(), value: json!(0) },
            PatchOp { op: Op::Add, path: "/a/-".into(), value: json!(3) },
            PatchOp { op: Op::Add, path: "/b/d".into(), value: json!(2) },
            PatchOp { op: Op::Replace, path: "/b/c".into(), value: json!(9) },
            PatchOp { op: Op::Add, path: "/x~1y".into(), value: json!(true) },
        ];
        assert_eq!(apply(&doc, &ops).unwrap(), json!({"a": [0, 1, 2, 3], "b": {"c": 9, "d": 2}, "x/y": true}));
        for bad in ["/a/5", "/z/0", "/b/c/d", "a"] {
            let op = PatchOp { op: Op::Add, path: bad.into(), value: json!(1) };
            assert!(apply(&doc, &[op]).is_err(), "{bad}");
        }
        let missing = PatchOp { op: Op::Replace, path: "/b/zz".into(), value: json!(1) };
        assert!(apply(&doc, &[missing]).is_err());
    }

    #[test]
    fn ops_serialise_as_json_patch() {
        let op = PatchOp { op: Op::Add, path: "/spec/volumes".into(), value: json!([]) };
        assert_eq!(serde_json::to_value(&op).unwrap(), json!({"op": "add", "path": "/spec/volumes", "value": []}));
    }
}
