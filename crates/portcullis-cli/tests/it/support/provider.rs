//! The stand-in third-party OAuth provider: `tests/node/provider.mjs` (oauth2-mock-server), run
//! as a child process. Its control endpoint injects failures and counts calls.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// A running provider.
pub struct Provider {
    /// Its base URL (authorize, token, revoke, userinfo live under it).
    pub url: String,
    control: String,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Provider {
    /// Starts the provider. Needs `npm ci` in `tests/node` (the test command does it).
    pub async fn start() -> Self {
        let dir = repo_root().join("tests/node");
        assert!(
            dir.join("node_modules/oauth2-mock-server").exists(),
            "run `npm ci` in tests/node first (the test command in README.md does)"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await
        .unwrap()
        .unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("provider said {line:?}: {e}"));
        Self {
            url: v["url"].as_str().unwrap().to_owned(),
            control: v["control"].as_str().unwrap().to_owned(),
            child,
            http: reqwest::Client::new(),
        }
    }

    /// Sets the provider's behaviour (see `defaults` in provider.mjs).
    pub async fn set(&self, mode: Value) {
        self.http
            .post(format!("{}/mode", self.control))
            .json(&mode)
            .send()
            .await
            .unwrap();
    }

    /// Back to normal, counters at zero.
    pub async fn reset(&self) {
        self.http
            .post(format!("{}/reset", self.control))
            .send()
            .await
            .unwrap();
    }

    /// The counters.
    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/stats", self.control))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Calls of the token endpoint with `grant_type=refresh_token`.
    pub async fn refresh_calls(&self) -> u64 {
        self.stats().await["refresh_token"].as_u64().unwrap()
    }

    /// Registers refresh tokens as valid (for tokens imported into Portcullis).
    pub async fn accept_refresh_tokens(&self, tokens: &[&str], scope: &str) {
        self.http
            .post(format!("{}/refresh-tokens", self.control))
            .json(&json!({ "tokens": tokens, "scope": scope }))
            .send()
            .await
            .unwrap();
    }

    /// The outbound app registration body for this provider.
    pub fn app(&self, id: &str, scopes: &[&str]) -> Value {
        json!({
            "id": id,
            "name": format!("App {id}"),
            "type": "oauth",
            "clientId": format!("{id}-client"),
            "clientSecret": format!("{id}-secret"),
            "authorizationUrl": format!("{}/authorize", self.url),
            "tokenUrl": format!("{}/token", self.url),
            "revocationUrl": format!("{}/revoke", self.url),
            "userinfoUrl": format!("{}/userinfo", self.url),
            "scopes": scopes.iter().map(|s| json!({"name": s})).collect::<Vec<_>>(),
            "defaultScopes": [scopes[0]],
            "pkce": true,
        })
    }
}
