//! The real `wid serve` process: first start writes the profile, token requests are audited to the
//! JSON-lines audit log (never with a secret), and SIGTERM stops it cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[tokio::test]
async fn serve_audits_decisions_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let profile_path = dir.path().join("profile.json");
    let audit_path = dir.path().join("audit.jsonl");
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wid"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--audit-log")
        .arg(&audit_path)
        .env_clear()
        .env("WID_CONFIG", &profile_path)
        .env("WID_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let profile: Value = loop {
        if let Ok(bytes) = std::fs::read(&profile_path)
            && let Ok(v) = serde_json::from_slice(&bytes)
        {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no profile written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let server = profile["server"].as_str().unwrap().to_string();
    let ca = std::fs::read(profile["caCertFile"].as_str().unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .build()
        .unwrap();
    let ready = loop {
        if let Ok(r) = http.get(format!("{server}/readyz")).send().await {
            break r.status().as_u16();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "wid serve never answered /readyz");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready, 200);

    let tenant = profile["tenantId"].as_str().unwrap();
    let secret = profile["clientSecret"].as_str().unwrap();
    let token = |secret: String| {
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("client_id", profile["clientId"].as_str().unwrap().to_string()),
            ("client_secret", secret),
            ("scope", format!("{server}/.default")),
        ];
        http.post(format!("{server}/{tenant}/oauth2/v2.0/token")).form(&form).send()
    };
    let issued: Value = token(secret.to_string()).await.unwrap().json().await.unwrap();
    let admin = issued["access_token"].as_str().expect("an access token");
    assert_eq!(token("wrong-secret-value".into()).await.unwrap().status().as_u16(), 401);
    // An allowed management call is audited with the grant that allowed it.
    let sub = profile["subscriptionId"].as_str().unwrap();
    let group = http
        .put(format!("{server}/subscriptions/{sub}/resourcegroups/audited?api-version=2024-11-01"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"location": "eastus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(group.status().as_u16(), 201);

    // SIGTERM: drains and exits 0.
    wid_testkit::send_signal(child.id(), rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "wid serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");

    let audit = std::fs::read_to_string(&audit_path).unwrap();
    let events: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let issued = events.iter().find(|e| e["action"] == "token.issue" && e["decision"] == "allowed").expect("issued");
    assert_eq!(issued["reason"], "client secret");
    assert_eq!(issued["principal"], profile["principalId"]);
    let written = events
        .iter()
        .find(|e| e["action"] == "Microsoft.Resources/subscriptions/resourceGroups/write")
        .expect("the group write is audited");
    assert_eq!(written["decision"], "allowed");
    assert!(written["reason"].as_str().unwrap().starts_with("role 'Owner' (assignment "), "{written}");
    let refused = events.iter().find(|e| e["decision"] == "denied").expect("refused");
    assert_eq!(refused["reason"], "AADSTS7000215");
    assert!(refused["request_id"].as_str().is_some_and(|r| r.len() == 36));
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    for text in [&audit, &stderr] {
        assert!(!text.contains(secret), "the client secret leaked");
        assert!(!text.contains("wrong-secret-value"), "a presented secret leaked");
    }
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&audit_path).unwrap().permissions()) & 0o777,
        0o600
    );
}
