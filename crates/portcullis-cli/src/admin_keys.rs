//! `portcullis admin-keys`: create an admin key with the scopes it needs (shown once), list the
//! keys, revoke one. Managing admin keys needs a key with the `admin` scope.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::{Output, Remote, fail, print_json};

/// Admin-key commands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminKeysCommand {
    /// Create a key; it is printed once and never shown again.
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// A scope the key holds (repeat for more): read, apps, policies, vault, directory,
        /// issuers, clients, audit, keys, admin.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// When the key stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
        /// The server.
        #[command(flatten)]
        remote: Remote,
    },
    /// List the keys (never their secrets).
    List {
        /// The server.
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a key by id: it stops working on every node at once.
    Revoke {
        /// The key's id (`ak_…`).
        id: String,
        /// The server.
        #[command(flatten)]
        remote: Remote,
    },
}

/// Runs an admin-key command.
pub async fn run(cmd: AdminKeysCommand, output: Output) -> ExitCode {
    let remote = match &cmd {
        AdminKeysCommand::Create { remote, .. }
        | AdminKeysCommand::List { remote }
        | AdminKeysCommand::Revoke { remote, .. } => remote.clone(),
    };
    let client = match remote.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let answer = match cmd {
        AdminKeysCommand::Create {
            name,
            scopes,
            expires_at,
            ..
        } => {
            let mut body = json!({ "name": name, "scopes": scopes });
            if let Some(e) = expires_at {
                body["expiresAt"] = json!(e);
            }
            client.post("v1/mgmt/admin-keys", &body).await
        }
        AdminKeysCommand::List { .. } => client
            .list_all("v1/mgmt/admin-keys")
            .await
            .map(|items| json!({ "items": items })),
        AdminKeysCommand::Revoke { id, .. } => {
            let path = format!(
                "v1/mgmt/admin-keys/{}",
                url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            );
            client.delete(&path).await.map(|_| json!({ "revoked": id }))
        }
    };
    let answer = match answer {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    match output {
        Output::Json => print_json(&answer),
        Output::Text => print_text(&answer),
    }
    ExitCode::SUCCESS
}

fn print_text(answer: &Value) {
    let line = |k: &Value| {
        let scopes: Vec<&str> = k["scopes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        format!(
            "{}  {}  [{}]{}",
            k["id"].as_str().unwrap_or(""),
            k["name"].as_str().unwrap_or(""),
            scopes.join(" "),
            k["expiresAt"]
                .as_str()
                .map(|e| format!("  expires {e}"))
                .unwrap_or_default()
        )
    };
    if let Some(items) = answer["items"].as_array() {
        for k in items {
            println!("{}", line(k));
        }
    } else if let Some(key) = answer["key"].as_str() {
        println!("{}", line(answer));
        println!("key (shown once, store it now): {key}");
    } else if let Some(id) = answer["revoked"].as_str() {
        println!("revoked {id}");
    }
}
