//! The JMESPath compliance suite against the CLI's `--query` evaluator. The fixtures are the ones
//! the `jmespath` crate ships in its package (`tests/compliance/*.json`), found through `cargo
//! metadata`, so they are never copied here. Our evaluator interprets the crate's AST with
//! python-jmespath's semantics (what az runs), and python-jmespath is the reference implementation,
//! so every case must pass: a result equal to the expected one (numbers by value, objects without
//! regard to key order), or an error where one is expected.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test code

use std::path::PathBuf;

use serde_json::Value;
use wid_cli::output::format_json;
use wid_cli::output::query::Query;
use wid_cli::output::value::Val;

/// The directory of the `jmespath` crate's compliance fixtures, as this build resolved it.
fn fixtures() -> PathBuf {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let manifest = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "jmespath")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("the jmespath crate is a dependency");
    PathBuf::from(manifest).parent().expect("a crate directory").join("tests/compliance")
}

/// JSON equality with numbers compared by value (python's `1 == 1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn the_evaluator_passes_the_jmespath_compliance_suite() {
    let dir = fixtures();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut run, mut failures) = (0, Vec::new());
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let suites: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for suite in suites.as_array().unwrap() {
            let given = Val::parse(&suite["given"].to_string()).unwrap();
            for case in suite["cases"].as_array().unwrap() {
                if case.get("bench").is_some() {
                    continue;
                }
                run += 1;
                let expr = case["expression"].as_str().unwrap();
                let got = Query::parse(expr).map_err(|e| e.to_string()).and_then(|q| q.search(&given).map_err(|e| e.0));
                let verdict = match (case.get("error"), got) {
                    (Some(_), Err(_)) => None,
                    (Some(kind), Ok(v)) => Some(format!("expected a {kind} error, got {}", format_json(&v).trim())),
                    (None, Err(e)) => Some(format!("error: {e}")),
                    (None, Ok(v)) => {
                        let got: Value = serde_json::from_str(&format_json(&v)).unwrap_or(Value::Null);
                        (!same(&got, &case["result"])).then(|| format!("got {got}, expected {}", case["result"]))
                    }
                };
                if let Some(why) = verdict {
                    failures.push(format!("{name}: {expr}: {why}"));
                }
            }
        }
    }
    assert!(run > 700, "only {run} cases were found in {}", dir.display());
    assert!(failures.is_empty(), "{} of {run} cases failed:\n{}", failures.len(), failures.join("\n"));
}
