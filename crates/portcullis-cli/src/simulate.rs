//! `portcullis simulate`: what would this user (or this token) get? Exits 3 when denied.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::{EXIT_DENIED, Output, Remote, fail, print_json};

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The server.
    #[command(flatten)]
    pub remote: Remote,
    /// The outbound app.
    #[arg(long)]
    pub app: String,
    /// A scope asked for (repeat for several).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// The tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// An inbound token to evaluate.
    #[arg(long, conflicts_with_all = ["user", "roles", "claims"])]
    pub token: Option<String>,
    /// A user of the directory (their roles apply unless --roles is given).
    #[arg(long)]
    pub user: Option<String>,
    /// Roles to evaluate with (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub roles: Option<Vec<String>>,
    /// The token's claims, as a JSON object.
    #[arg(long)]
    pub claims: Option<String>,
}

/// Runs `simulate`.
pub async fn run(args: SimulateArgs, output: Output) -> ExitCode {
    let client = match args.remote.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut body = json!({ "appId": args.app, "scopes": args.scopes });
    if let Some(t) = &args.tenant {
        body["tenantId"] = json!(t);
    }
    if let Some(t) = &args.token {
        body["token"] = json!(t);
    } else {
        let claims: Value = match args.claims.as_deref().map(serde_json::from_str).transpose() {
            Ok(c) => c.unwrap_or_else(|| json!({})),
            Err(e) => return fail(&format!("--claims is not a JSON object: {e}")),
        };
        let mut subject = json!({ "claims": claims });
        if let Some(u) = &args.user {
            subject["userId"] = json!(u);
        }
        if let Some(r) = &args.roles {
            subject["roles"] = json!(r);
        }
        body["subject"] = subject;
    }
    let result = match client.post("v1/mgmt/decisions/simulate", &body).await {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    let allowed = result.pointer("/decision/outcome").and_then(Value::as_str) == Some("allow");
    match output {
        Output::Json => print_json(&result),
        Output::Text => print!("{}", crate::policy_test::describe_decision(&result)),
    }
    if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DENIED)
    }
}
