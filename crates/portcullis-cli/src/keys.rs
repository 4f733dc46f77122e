//! `portcullis keys`: rotate the data-encryption key (existing rows are re-encrypted in the
//! background, without downtime), show the key ring; rotate and list the token-signing keys.

use std::process::ExitCode;

use crate::{Output, Remote, fail, print_json};

/// Key commands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Add a data key, make it active, and re-encrypt every stored secret under it.
    Rotate {
        /// The server.
        #[command(flatten)]
        remote: Remote,
        /// Wait until the re-encryption is done.
        #[arg(long)]
        wait: bool,
    },
    /// Show the data keys and the last re-encryption.
    Status {
        /// The server.
        #[command(flatten)]
        remote: Remote,
    },
    /// Make a new token-signing key the one that signs; the previous one stays published until
    /// the tokens it signed have expired.
    RotateSigning {
        /// The server.
        #[command(flatten)]
        remote: Remote,
    },
    /// Show the token-signing keys.
    Signing {
        /// The server.
        #[command(flatten)]
        remote: Remote,
    },
}

/// Runs a key command.
pub async fn run(cmd: KeysCommand, output: Output) -> ExitCode {
    let (remote, rotate, wait) = match cmd {
        KeysCommand::Rotate { remote, wait } => (remote, true, wait),
        KeysCommand::Status { remote } => (remote, false, false),
        KeysCommand::RotateSigning { remote } => return signing(remote, true, output).await,
        KeysCommand::Signing { remote } => return signing(remote, false, output).await,
    };
    let client = match remote.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut status = match if rotate {
        client
            .post("v1/mgmt/keys/rotate", &serde_json::json!({}))
            .await
    } else {
        client.get("v1/mgmt/keys").await
    } {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    if wait {
        for _ in 0..600 {
            if status
                .pointer("/reencryption/state")
                .and_then(|s| s.as_str())
                != Some("running")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            status = match client.get("v1/mgmt/keys").await {
                Ok(v) => v,
                Err(e) => return fail(&e.to_string()),
            };
        }
    }
    match output {
        Output::Json => print_json(&status),
        Output::Text => {
            println!("active data key: {}", status["activeKeyId"]);
            if let Some(keys) = status["keys"].as_array() {
                for k in keys {
                    println!(
                        "  key {}{} (master key {}, created {})",
                        k["id"],
                        if k["active"].as_bool() == Some(true) {
                            " [active]"
                        } else {
                            ""
                        },
                        k["masterKeyId"].as_str().unwrap_or(""),
                        k["createdAt"].as_str().unwrap_or("")
                    );
                }
            }
            if let Some(r) = status.get("reencryption").filter(|r| !r.is_null()) {
                println!(
                    "re-encryption to key {}: {}{}",
                    r["targetKeyId"],
                    r["state"].as_str().unwrap_or(""),
                    r.get("report")
                        .filter(|x| !x.is_null())
                        .map(|x| format!(
                            " ({} connections, {} app secrets, {} pending consents)",
                            x["connections"], x["appSecrets"], x["consentStates"]
                        ))
                        .unwrap_or_default()
                );
            }
        }
    }
    if status
        .pointer("/reencryption/state")
        .and_then(|s| s.as_str())
        == Some("failed")
    {
        return ExitCode::from(crate::EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}

/// Rotates (or lists) the token-signing keys and prints them.
async fn signing(remote: Remote, rotate: bool, output: Output) -> ExitCode {
    let client = match remote.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let keys = match if rotate {
        client
            .post("v1/mgmt/signing-keys/rotate", &serde_json::json!({}))
            .await
    } else {
        client.get("v1/mgmt/signing-keys").await
    } {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    match output {
        Output::Json => print_json(&keys),
        Output::Text => {
            for k in keys.as_array().into_iter().flatten() {
                let until = k["publishedUntil"]
                    .as_str()
                    .map(|u| format!(", published until {u}"))
                    .unwrap_or_default();
                println!(
                    "{} {} [{}] created {}{until}",
                    k["kid"].as_str().unwrap_or(""),
                    k["alg"].as_str().unwrap_or(""),
                    k["state"].as_str().unwrap_or(""),
                    k["createdAt"].as_str().unwrap_or("")
                );
            }
        }
    }
    ExitCode::SUCCESS
}
