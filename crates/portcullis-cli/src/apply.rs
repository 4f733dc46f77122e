//! `portcullis apply -f policies.yaml`: policy as code. Brings the server to the state the file
//! declares for the apps, roles, tenants and users it lists — creating what is missing, updating what
//! differs, and removing the policies of a listed app that the file no longer has — and does
//! nothing when they already match. `--dry-run` shows the plan without changing anything.
//!
//! An app's client secret is write-only: it is set on create, or when the app has none
//! (`clientSecret`, or `clientSecretEnv` naming an environment variable).

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis_client::Client;
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

/// One step of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `create`, `update`, `delete`.
    pub action: &'static str,
    /// `app`, `policy`, `role`, `tenant`, `user`.
    pub kind: &'static str,
    /// What (`app-id`, `app-id/Policy name`).
    pub name: String,
    /// The fields that differ (updates).
    pub fields: Vec<String>,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
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
    let client = match args.remote.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let plan = match plan(&client, &desired).await {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if !args.dry_run {
        for step in &plan {
            if let Err(e) = client
                .call(step.method.clone(), &step.path, step.body.as_ref())
                .await
            {
                return fail(&format!("{} {} {}: {e}", step.action, step.kind, step.name));
            }
        }
    }
    let changes: Vec<&Step> = plan.iter().filter(|s| !s.path.is_empty()).collect();
    match output {
        Output::Json => print_json(&json!({
            "dryRun": args.dry_run,
            "changes": changes.iter().map(|s| json!({"action": s.action, "kind": s.kind, "name": s.name, "fields": s.fields})).collect::<Vec<_>>(),
        })),
        Output::Text => {
            if changes.is_empty() {
                println!(
                    "nothing to change: the server matches {}",
                    args.file.display()
                );
            }
            for s in &changes {
                let sign = match s.action {
                    "create" => "+",
                    "delete" => "-",
                    _ => "~",
                };
                let fields = if s.fields.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", s.fields.join(", "))
                };
                println!("{sign} {} {}{fields}", s.kind, s.name);
            }
            if args.dry_run && !changes.is_empty() {
                println!("\n(dry run: nothing was changed)");
            }
        }
    }
    ExitCode::SUCCESS
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str) -> Result<&'a str, String> {
    m.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("an entry lacks {k}: {}", Value::Object(m.clone())))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn step(
    action: &'static str,
    kind: &'static str,
    name: String,
    fields: Vec<String>,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
) -> Step {
    Step {
        action,
        kind,
        name,
        fields,
        method,
        path,
        body,
    }
}

/// Fields of `want` whose value differs from `have` (fields `have` has and `want` omits are
/// compared with their defaults by the server, so only those `want` names count).
fn differing(want: &Map<String, Value>, have: &Value, skip: &[&str]) -> Vec<String> {
    want.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .filter(|(k, v)| {
            have.get(k.as_str()) != Some(v) && !(v.is_null() && have.get(k.as_str()).is_none())
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Computes the steps that bring the server to the desired state.
pub async fn plan(client: &Client, d: &Desired) -> Result<Vec<Step>, String> {
    use reqwest::Method;
    let mut steps = Vec::new();
    let err = |e: portcullis_client::ClientError| e.to_string();
    let get_opt = |path: String| async move {
        match client.get(&path).await {
            Ok(v) => Ok(Some(v)),
            Err(portcullis_client::ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    };
    for r in &d.roles {
        let name = str_field(r, "name")?;
        match get_opt(format!("v1/mgmt/roles/{}", enc(name))).await? {
            None => steps.push(step(
                "create",
                "role",
                name.into(),
                vec![],
                Method::POST,
                "v1/mgmt/roles".into(),
                Some(Value::Object(r.clone())),
            )),
            Some(have) => {
                let f = differing(r, &have, &["name"]);
                if !f.is_empty() {
                    steps.push(step(
                        "update",
                        "role",
                        name.into(),
                        f,
                        Method::PUT,
                        format!("v1/mgmt/roles/{}", enc(name)),
                        Some(Value::Object(r.clone())),
                    ));
                }
            }
        }
    }
    for t in &d.tenants {
        let id = str_field(t, "id")?;
        match get_opt(format!("v1/mgmt/tenants/{}", enc(id))).await? {
            None => steps.push(step(
                "create",
                "tenant",
                id.into(),
                vec![],
                Method::POST,
                "v1/mgmt/tenants".into(),
                Some(Value::Object(t.clone())),
            )),
            Some(have) => {
                let f = differing(t, &have, &["id"]);
                if !f.is_empty() {
                    steps.push(step(
                        "update",
                        "tenant",
                        id.into(),
                        f,
                        Method::PUT,
                        format!("v1/mgmt/tenants/{}", enc(id)),
                        Some(Value::Object(t.clone())),
                    ));
                }
            }
        }
    }
    for u in &d.users {
        let id = str_field(u, "id")?;
        match get_opt(format!("v1/mgmt/users/{}", enc(id))).await? {
            None => steps.push(step(
                "create",
                "user",
                id.into(),
                vec![],
                Method::POST,
                "v1/mgmt/users".into(),
                Some(Value::Object(u.clone())),
            )),
            Some(have) => {
                let f = differing(u, &have, &["id"]);
                if !f.is_empty() {
                    // A user is replaced whole: what the file omits keeps its current value.
                    let mut body = match have {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    body.remove("createdAt");
                    body.remove("updatedAt");
                    body.extend(u.clone());
                    steps.push(step(
                        "update",
                        "user",
                        id.into(),
                        f,
                        Method::PUT,
                        format!("v1/mgmt/users/{}", enc(id)),
                        Some(Value::Object(body)),
                    ));
                }
            }
        }
    }
    for a in &d.apps {
        let id = str_field(a, "id")?.to_owned();
        let mut app = a.clone();
        let policies: Vec<Map<String, Value>> = match app.remove("policies") {
            None => Vec::new(),
            Some(Value::Array(ps)) => ps
                .into_iter()
                .map(|p| match p {
                    Value::Object(m) => Ok(m),
                    other => Err(format!("app {id}: a policy is not a mapping: {other}")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("app {id}: policies must be a list")),
        };
        if let Some(Value::String(var)) = app.remove("clientSecretEnv") {
            let secret = std::env::var(&var)
                .map_err(|_| format!("app {id}: environment variable {var} is not set"))?;
            app.insert("clientSecret".into(), Value::String(secret));
        }
        let app_path = format!("v1/mgmt/outbound-apps/{}", enc(&id));
        let have = get_opt(app_path.clone()).await?;
        let mut final_put = None;
        match &have {
            None => steps.push(step(
                "create",
                "app",
                id.clone(),
                vec![],
                Method::POST,
                "v1/mgmt/outbound-apps".into(),
                Some(Value::Object(app.clone())),
            )),
            Some(have) => {
                let mut body = app.clone();
                if have["hasClientSecret"].as_bool() == Some(true) {
                    body.remove("clientSecret");
                }
                let f = differing(&body, have, &["id", "clientSecret"]);
                let secret_missing = body.contains_key("clientSecret");
                if !f.is_empty() || secret_missing {
                    // Keep the scopes the current policies still name until those change.
                    let mut widened = body.clone();
                    if let (Some(Value::Array(want)), Some(Value::Array(cur))) =
                        (body.get("scopes"), have.get("scopes"))
                    {
                        let mut union = want.clone();
                        for s in cur {
                            if !union.iter().any(|w| w.get("name") == s.get("name")) {
                                union.push(s.clone());
                            }
                        }
                        widened.insert("scopes".into(), Value::Array(union));
                    }
                    let mut fields = f.clone();
                    if secret_missing {
                        fields.push("clientSecret".into());
                    }
                    steps.push(step(
                        "update",
                        "app",
                        id.clone(),
                        fields,
                        Method::PUT,
                        app_path.clone(),
                        Some(Value::Object(widened.clone())),
                    ));
                    if widened != body {
                        final_put = Some(step(
                            "update",
                            "app",
                            id.clone(),
                            vec![],
                            Method::PUT,
                            app_path.clone(),
                            Some(Value::Object(body)),
                        ));
                    }
                }
            }
        }
        let current: Vec<Value> = if have.is_some() {
            client
                .list_all(&format!("{app_path}/policies"))
                .await
                .map_err(err)?
        } else {
            Vec::new()
        };
        let key = |n: &str| n.trim().to_lowercase();
        for c in &current {
            let name = c["name"].as_str().unwrap_or_default();
            if !policies
                .iter()
                .any(|p| p.get("name").and_then(Value::as_str).map(key) == Some(key(name)))
            {
                let pid = c["id"].as_str().unwrap_or_default();
                steps.push(step(
                    "delete",
                    "policy",
                    format!("{id}/{name}"),
                    vec![],
                    Method::DELETE,
                    format!("{app_path}/policies/{}", enc(pid)),
                    None,
                ));
            }
        }
        for p in &policies {
            let name = str_field(p, "name")?;
            let existing = current
                .iter()
                .find(|c| c["name"].as_str().map(key) == Some(key(name)));
            match existing {
                None => steps.push(step(
                    "create",
                    "policy",
                    format!("{id}/{name}"),
                    vec![],
                    Method::POST,
                    format!("{app_path}/policies"),
                    Some(Value::Object(p.clone())),
                )),
                Some(c) => {
                    let mut normalized = p.clone();
                    normalized.entry("mode").or_insert_with(|| json!("enforce"));
                    normalized.entry("conditions").or_insert_with(|| json!([]));
                    let f = differing(&normalized, c, &[]);
                    if !f.is_empty() {
                        let pid = c["id"].as_str().unwrap_or_default();
                        steps.push(step(
                            "update",
                            "policy",
                            format!("{id}/{name}"),
                            f,
                            Method::PUT,
                            format!("{app_path}/policies/{}", enc(pid)),
                            Some(Value::Object(p.clone())),
                        ));
                    }
                }
            }
        }
        if let Some(s) = final_put {
            steps.push(s);
        }
    }
    Ok(steps)
}
