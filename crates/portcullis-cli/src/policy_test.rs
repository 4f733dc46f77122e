//! `portcullis policy test cases.yaml`: runs cases (who, app, scopes, expected outcome) against a
//! server's simulator. A failing case prints a readable diff; any failing case exits 3.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{EXIT_DENIED, Output, Remote, fail, print_json};

/// Policy commands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Run a file of policy test cases against the server.
    Test {
        /// The cases (YAML).
        file: PathBuf,
        /// The server.
        #[command(flatten)]
        remote: Remote,
    },
    /// What a change to an app's policies would do: replays the app's recorded decisions with
    /// the file's policies, and names who would lose or gain which scopes.
    Replay(crate::policy_replay::ReplayArgs),
}

/// A file of cases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The cases.
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// What the case checks.
    pub name: String,
    /// The outbound app.
    pub app: String,
    /// A directory user (their live roles apply unless `roles` is given).
    #[serde(default)]
    pub user: Option<String>,
    /// Roles to evaluate with.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The inbound token's claims.
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// The tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `allow` or `deny`.
    pub expect: Expect,
    /// The allowed scopes expected (`all` or a list), if checked.
    #[serde(default)]
    pub expect_allowed_scopes: Option<Value>,
    /// The deciding policies expected (by name), if checked.
    #[serde(default)]
    pub expect_deciding_policies: Option<Vec<String>>,
}

/// An expected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// Runs a policy command.
pub async fn run(cmd: PolicyCommand, output: Output) -> ExitCode {
    let (file, remote) = match cmd {
        PolicyCommand::Test { file, remote } => (file, remote),
        PolicyCommand::Replay(args) => return crate::policy_replay::run(args, output).await,
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => return fail(&format!("cannot read {}: {e}", file.display())),
    };
    let cases: CaseFile = match serde_yaml_ng::from_str(&text) {
        Ok(c) => c,
        Err(e) => return fail(&format!("{} is not a valid case file: {e}", file.display())),
    };
    let client = match remote.client() {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let mut results = Vec::new();
    let mut failed = 0;
    for case in &cases.cases {
        let mut subject = json!({ "claims": case.claims });
        if let Some(u) = &case.user {
            subject["userId"] = json!(u);
        }
        if let Some(r) = &case.roles {
            subject["roles"] = json!(r);
        }
        let mut body = json!({ "appId": case.app, "scopes": case.scopes, "subject": subject });
        if let Some(t) = &case.tenant {
            body["tenantId"] = json!(t);
        }
        let result = match client.post("v1/mgmt/decisions/simulate", &body).await {
            Ok(v) => v,
            Err(e) => return fail(&format!("case {:?}: {e}", case.name)),
        };
        let problems = check(case, &result);
        if !problems.is_empty() {
            failed += 1;
        }
        if output == Output::Text {
            if problems.is_empty() {
                println!("ok    {}", case.name);
            } else {
                println!("FAIL  {}", case.name);
                for p in &problems {
                    println!("        {p}");
                }
                for line in describe_decision(&result).lines() {
                    println!("        | {line}");
                }
            }
        }
        results.push(json!({ "name": case.name, "passed": problems.is_empty(), "problems": problems, "result": result }));
    }
    match output {
        Output::Json => print_json(
            &json!({ "passed": results.len() - failed, "failed": failed, "cases": results }),
        ),
        Output::Text => println!("\n{} passed, {} failed", results.len() - failed, failed),
    }
    if failed > 0 {
        ExitCode::from(EXIT_DENIED)
    } else {
        ExitCode::SUCCESS
    }
}

/// What a result gets wrong about a case's expectations, as `expected ..., got ...` lines.
pub fn check(case: &Case, result: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let outcome = result
        .pointer("/decision/outcome")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let expected = match case.expect {
        Expect::Allow => "allow",
        Expect::Deny => "deny",
    };
    if outcome != expected {
        problems.push(format!("expected {expected}, got {outcome}"));
    }
    if let Some(want) = &case.expect_allowed_scopes {
        let got = result
            .pointer("/decision/allowedScopes")
            .cloned()
            .unwrap_or(Value::Null);
        if !same_scopes(want, &got) {
            problems.push(format!("expected allowed scopes {want}, got {got}"));
        }
    }
    if let Some(want) = &case.expect_deciding_policies {
        let names = deciding_names(result);
        let mut w = want.clone();
        w.sort();
        if names != w {
            problems.push(format!("expected deciding policies {w:?}, got {names:?}"));
        }
    }
    problems
}

fn same_scopes(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            let mut x: Vec<&str> = x.iter().filter_map(Value::as_str).collect();
            let mut y: Vec<&str> = y.iter().filter_map(Value::as_str).collect();
            x.sort_unstable();
            y.sort_unstable();
            x == y
        }
        _ => a == b,
    }
}

fn deciding_names(result: &Value) -> Vec<String> {
    let ids: Vec<&str> = result
        .pointer("/decision/decidingPolicies")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut names: Vec<String> = result
        .pointer("/decision/policies")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter(|p| p["id"].as_str().is_some_and(|id| ids.contains(&id)))
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A decision in words: outcome, reason, scopes, and each policy with its first failing condition.
pub fn describe_decision(result: &Value) -> String {
    let d = &result["decision"];
    let mut out = format!(
        "{} ({}); requested {}, allowed {}",
        d["outcome"].as_str().unwrap_or("?"),
        d["reason"].as_str().unwrap_or("?"),
        d["requestedScopes"],
        d["allowedScopes"]
    );
    if let Some(roles) = result.get("roles") {
        out.push_str(&format!(
            "; roles {roles} (from {})",
            result["rolesSource"].as_str().unwrap_or("?")
        ));
    }
    out.push('\n');
    for p in d["policies"].as_array().into_iter().flatten() {
        let mark = if p["matched"].as_bool() == Some(true) {
            "matched"
        } else {
            "no match"
        };
        out.push_str(&format!(
            "  {} [{}] {}",
            p["name"].as_str().unwrap_or("?"),
            p["mode"].as_str().unwrap_or(""),
            mark
        ));
        if let Some(f) = p.get("failedCondition").filter(|f| !f.is_null()) {
            out.push_str(&format!(
                ": condition {} {}{} {} {} failed ({}), saw {}",
                f["index"],
                f["source"].as_str().unwrap_or(""),
                f.get("claim")
                    .and_then(Value::as_str)
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default(),
                f["operator"].as_str().unwrap_or(""),
                f["value"],
                f["reason"].as_str().unwrap_or(""),
                f["seen"]
            ));
        }
        out.push('\n');
    }
    out
}
