//! `portcullis policy replay -f policies.yaml --app calendar`: what a change to an app's policies
//! would do, before it is applied. The file's policies for the app (an apply file, or a file with
//! a top-level `policies` list) re-decide the app's recorded decisions on the server
//! (`POST /v1/mgmt/outbound-apps/{app}/policies/replay`), and the answer names the users who would
//! lose or gain which scopes. `--fail-on-loss` exits 3 when anyone would lose access: a review
//! step for a pipeline that applies policies.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::{EXIT_DENIED, Output, Remote, fail, print_json};

/// Arguments of `policy replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The draft: an apply file (its app's `policies`) or a file with a `policies` list (YAML).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// The outbound app.
    #[arg(long)]
    pub app: String,
    /// The start of the window (RFC 3339; default: seven days before `--until`).
    #[arg(long)]
    pub since: Option<String>,
    /// The end of the window (RFC 3339; default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// How many users each list shows.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Exit 3 when any user would lose access.
    #[arg(long)]
    pub fail_on_loss: bool,
    /// The server.
    #[command(flatten)]
    pub remote: Remote,
}

/// The draft policies for `app` in a file's contents.
fn draft(file: &Value, app: &str) -> Result<Value, String> {
    if let Some(apps) = file.get("apps").and_then(Value::as_array) {
        let entry = apps
            .iter()
            .find(|a| a.get("id").and_then(Value::as_str) == Some(app))
            .ok_or_else(|| format!("the file lists no app {app:?}"))?;
        return Ok(entry.get("policies").cloned().unwrap_or_else(|| json!([])));
    }
    file.get("policies")
        .filter(|p| p.is_array())
        .cloned()
        .ok_or_else(|| "the file has neither `apps` nor a `policies` list".to_owned())
}

/// Runs `policy replay`.
pub async fn run(args: ReplayArgs, output: Output) -> ExitCode {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => return fail(&format!("cannot read {}: {e}", args.file.display())),
    };
    let file: Value = match serde_yaml_ng::from_str(&text) {
        Ok(v) => v,
        Err(e) => return fail(&format!("{} is not valid YAML: {e}", args.file.display())),
    };
    let policies = match draft(&file, &args.app) {
        Ok(p) => p,
        Err(e) => return fail(&format!("{}: {e}", args.file.display())),
    };
    let mut body = json!({ "policies": policies, "limit": args.limit });
    if let Some(s) = &args.since {
        body["since"] = json!(s);
    }
    if let Some(u) = &args.until {
        body["until"] = json!(u);
    }
    let client = match args.remote.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let path = format!("v1/mgmt/outbound-apps/{}/policies/replay", args.app);
    let answer = match client.post(&path, &body).await {
        Ok(v) => v,
        Err(e) => return fail(&e.to_string()),
    };
    match output {
        Output::Json => print_json(&answer),
        Output::Text => print!("{}", report(&answer)),
    }
    let losing = answer["losing"]["users"].as_u64().unwrap_or(0);
    if args.fail_on_loss && losing > 0 {
        ExitCode::from(EXIT_DENIED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The answer, for people.
fn report(a: &Value) -> String {
    let n = |k: &str| a[k].as_u64().unwrap_or(0);
    let mut out = format!(
        "Replaying the draft of {}'s policies over {} – {}:\n  {} decisions replayed; {} would change ({} newly denied, {} newly allowed)\n",
        a["appId"].as_str().unwrap_or_default(),
        a["since"].as_str().unwrap_or_default(),
        a["until"].as_str().unwrap_or_default(),
        n("replayed"),
        n("changed"),
        n("newlyDenied"),
        n("newlyAllowed"),
    );
    if n("inexact") > 0 {
        out.push_str(&format!(
            "  {} of them recorded only part of their claims: their replay may be inexact\n",
            n("inexact")
        ));
    }
    if a["complete"] == false {
        out.push_str("  the window holds more decisions than one replay reads: narrow it\n");
    }
    for (key, title) in [
        ("losing", "Would lose access"),
        ("gaining", "Would gain access"),
    ] {
        let users = a[key]["users"].as_u64().unwrap_or(0);
        if users == 0 {
            continue;
        }
        out.push_str(&format!(
            "  {title} ({users} user{}):\n",
            if users == 1 { "" } else { "s" }
        ));
        for u in a[key]["first"].as_array().into_iter().flatten() {
            let scopes: Vec<&str> = u["scopes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(&format!(
                "    {} — {} ({} decision{})\n",
                u["userId"].as_str().unwrap_or_default(),
                if scopes.is_empty() {
                    "every request".to_owned()
                } else {
                    scopes.join(", ")
                },
                u["decisions"],
                if u["decisions"] == 1 { "" } else { "s" },
            ));
        }
        let listed = a[key]["first"].as_array().map_or(0, Vec::len) as u64;
        if users > listed {
            out.push_str(&format!("    … and {} more\n", users - listed));
        }
    }
    if n("changed") == 0 {
        out.push_str("  Nobody's access would change.\n");
    }
    out
}
