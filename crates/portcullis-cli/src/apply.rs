//! `portcullis apply -f policies.yaml`: policy as code. Sends the state the file declares for the
//! apps, roles, tenants and users it lists to `POST /v1/mgmt/apply`, which checks it as a whole,
//! plans it against what is stored and applies it in one transaction — creating what is missing,
//! updating what differs, and removing the policies of a listed app that the file no longer has —
//! or changes nothing at all. `--dry-run` runs the same checks and plan on the server and writes
//! nothing. Every problem is reported with its place in the file (`apps[1].policies[0]...`).
//!
//! An app's client secret is write-only: it is set on create, or when the app has none
//! (`clientSecret`, or `clientSecretEnv` naming an environment variable, read here).

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis_client::ClientError;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{Output, Remote, fail, print_json};

/// Arguments of `apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The file (YAML).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The server.
    #[command(flatten)]
    pub remote: Remote,
}

/// The file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desired {
    /// Roles.
    #[serde(default)]
    pub roles: Vec<Map<String, Value>>,
    /// Tenants.
    #[serde(default)]
    pub tenants: Vec<Map<String, Value>>,
    /// Users: the fields listed are set (`identities` links them to their issuers' subjects);
    /// the fields a user entry omits keep their current values.
    #[serde(default)]
    pub users: Vec<Map<String, Value>>,
    /// Apps, each with its `policies`.
    #[serde(default)]
    pub apps: Vec<Map<String, Value>>,
}

/// Runs `apply`.
pub async fn run(args: ApplyArgs, output: Output) -> ExitCode {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => return fail(&format!("cannot read {}: {e}", args.file.display())),
    };
    let desired: Desired = match serde_yaml_ng::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            return fail(&format!(
                "{} is not a valid apply file: {e}",
                args.file.display()
            ));
        }
    };
    let body = match request_body(desired, args.dry_run) {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let client = match args.remote.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let outcome = match client.post("v1/mgmt/apply", &body).await {
        Ok(v) => v,
        Err(ClientError::Api {
            code,
            message,
            body,
            ..
        }) if code == "invalid_apply" => {
            eprintln!("{}: {message}", args.file.display());
            for p in body["details"].as_array().into_iter().flatten() {
                eprintln!(
                    "  {}: {}",
                    p["path"].as_str().unwrap_or_default(),
                    p["message"].as_str().unwrap_or_default()
                );
            }
            return ExitCode::FAILURE;
        }
        Err(e) => return fail(&format!("apply failed, nothing was changed: {e}")),
    };
    let changes: Vec<Value> = outcome["changes"].as_array().cloned().unwrap_or_default();
    match output {
        Output::Json => print_json(&json!({"dryRun": args.dry_run, "changes": changes})),
        Output::Text => {
            if changes.is_empty() {
                println!(
                    "nothing to change: the server matches {}",
                    args.file.display()
                );
            }
            for c in &changes {
                let sign = match c["action"].as_str() {
                    Some("create") => "+",
                    Some("delete") => "-",
                    _ => "~",
                };
                let fields: Vec<&str> = c["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let fields = if fields.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", fields.join(", "))
                };
                println!(
                    "{sign} {} {}{fields}",
                    c["kind"].as_str().unwrap_or_default(),
                    c["name"].as_str().unwrap_or_default()
                );
            }
            if args.dry_run && !changes.is_empty() {
                println!("\n(dry run: nothing was changed)");
            }
        }
    }
    ExitCode::SUCCESS
}

/// The body of `POST /v1/mgmt/apply`: the file's state, each app's `clientSecretEnv` read from
/// the environment.
pub fn request_body(desired: Desired, dry_run: bool) -> Result<Value, String> {
    let mut apps = Vec::with_capacity(desired.apps.len());
    for (i, mut app) in desired.apps.into_iter().enumerate() {
        if let Some(var) = app.remove("clientSecretEnv") {
            let Value::String(var) = var else {
                return Err(format!("apps[{i}].clientSecretEnv must be a string"));
            };
            let secret = std::env::var(&var)
                .map_err(|_| format!("apps[{i}]: environment variable {var} is not set"))?;
            app.insert("clientSecret".into(), Value::String(secret));
        }
        apps.push(Value::Object(app));
    }
    let objects = |v: Vec<Map<String, Value>>| v.into_iter().map(Value::Object).collect::<Vec<_>>();
    Ok(json!({
        "dryRun": dry_run,
        "roles": objects(desired.roles),
        "tenants": objects(desired.tenants),
        "users": objects(desired.users),
        "apps": apps,
    }))
}
