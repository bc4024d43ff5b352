//! `Harness`: the real gateway serving the test policy from a temporary directory, with its
//! fake order service and a client that trusts the test CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ordergate::server::Running;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::http::client;
use super::install;
use super::pki::{Keys, token_with, write_files};
use super::policy::base_policy;
use super::upstream::FakeUpstream;

/// A gateway under test with its fake order service.
pub struct Harness {
    pub dir: TempDir,
    pub keys: Arc<Keys>,
    pub upstream: Arc<FakeUpstream>,
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub client: reqwest::Client,
}

impl Harness {
    /// The base policy as is.
    pub async fn start() -> Self {
        Self::with(|p| p.to_owned()).await
    }

    /// The base policy changed by `change`.
    pub async fn with(change: impl FnOnce(&str) -> String) -> Self {
        install();
        let keys = Arc::new(Keys::new());
        let upstream = FakeUpstream::start().await;
        Self::with_parts(keys, upstream, change).await
    }

    pub async fn with_parts(
        keys: Arc<Keys>,
        upstream: Arc<FakeUpstream>,
        change: impl FnOnce(&str) -> String,
    ) -> Self {
        Self::with_files(keys, upstream, change, &[]).await
    }

    /// Like `with_parts`, writing `files` (name, contents) next to the policy first.
    pub async fn with_files(
        keys: Arc<Keys>,
        upstream: Arc<FakeUpstream>,
        change: impl FnOnce(&str) -> String,
        files: &[(&str, String)],
    ) -> Self {
        install();
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), &keys);
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let policy = change(&base_policy(&keys, upstream.addr));
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, &policy).unwrap();
        let loaded = ordergate::policy::load(&path)
            .unwrap_or_else(|p| panic!("test policy invalid: {p:#?}"));
        let running = ordergate::server::start(loaded, &path).await.unwrap();
        let addr = running.addr;
        let admin = running.admin_addr.unwrap();
        let client = client(&keys, None, true);
        Self {
            dir,
            keys,
            upstream,
            running: Some(running),
            addr,
            admin,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit/audit.jsonl")
    }

    /// A token signed with the test ES256 key.
    pub fn token(&self, sub: &str, roles: &[&str], claims: &[(&str, Value)]) -> String {
        token_with(&self.keys.es256, sub, roles, claims)
    }

    /// Alice, customer C0000001.
    pub fn alice(&self) -> String {
        format!(
            "Bearer {}",
            self.token(
                "alice",
                &["customer"],
                &[("customer_id", json!("C0000001"))]
            )
        )
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }

    /// Stops the gateway (drains, flushes the audit log).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// Audit records written so far (after `stop`, all of them).
    pub fn audit_records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.audit_path()).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until the record of `request_id` is written (bounded) and returns it.
    pub async fn record_of(&self, request_id: &str) -> Value {
        for _ in 0..500 {
            if let Some(r) = self
                .audit_records()
                .into_iter()
                .find(|r| r["request_id"] == request_id)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no audit record for {request_id}");
    }

    /// Waits until the writer has written `n` records (bounded).
    pub async fn wait_for_records(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            let records = self.audit_records();
            if records.len() >= n {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} audit records, found {}",
            self.audit_records().len()
        );
    }
}
