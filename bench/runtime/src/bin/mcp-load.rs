//! What Portcullis adds to an MCP tool call: `wrk` at 16 connections calling the calendar
//! example's `list_events` tool (streamable HTTP, protocol 2026-07-28) through its MCP server,
//! which fetches the user's calendar token from Portcullis on every call and then calls the
//! calendar API — against the same server, same layer (the caller's token verified), same API
//! call, with a static calendar token instead of the fetch. Prints both, and the difference in
//! p50 and p99.
//!
//! A release Portcullis on SQLite; the example's services and MCP servers in this process; wrk
//! on the same 2 cores. `bench/mcp-load.sh [--seconds N]` builds and runs this.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark driver"
)]

use std::collections::HashMap;

use portcullis_bench_runtime::{CodeFlow, Run, Server, browse, code_flow, field, print_table, wrk};
use portcullis_example_calendar::{Config, mcp, story};
use serde_json::{Value, json};

const PASSWORD: &str = "bench password";

/// Serves the example's MCP server on a port of its own: its resource URI.
async fn serve_mcp(base: &str, services: &str, static_credential: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = mcp::router(mcp::Settings {
        portcullis: base.to_owned(),
        resource: resource.clone(),
        services: services.to_owned(),
        calendar_app: "calendar".into(),
        crm_app: "crm".into(),
        static_credential,
    })
    .unwrap();
    tokio::spawn(portcullis_example_calendar::serve(listener, app));
    resource
}

/// Vera's code flow for `resource`.
fn vera(resource: &str) -> CodeFlow<'_> {
    CodeFlow {
        client_id: story::MCP_CLIENT,
        redirect_uri: story::MCP_REDIRECT,
        resource,
        scope: Some("calendar.read outbound.token.fetch"),
        login: "vera@example.com",
        password: PASSWORD,
    }
}

/// A wrk latency (`812.00us`, `1.20ms`, `1.01s`) in milliseconds.
fn ms(p: &str) -> f64 {
    let (n, unit) = p.split_at(p.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(p.len()));
    let n: f64 = n.parse().unwrap_or(0.0);
    match unit {
        "us" => n / 1000.0,
        "s" => n * 1000.0,
        _ => n,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let bin =
        std::env::var("PORTCULLIS_BIN").unwrap_or_else(|_| "target/release/portcullis".into());
    let server = Server::start(&bin, &[]);
    let base = server.base.clone();
    let services = portcullis_example_calendar::start(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            client_id: story::CLIENT_ID.into(),
            client_secret: story::CLIENT_SECRET.into(),
            redirect_uris: vec![format!("{base}/v1/outbound/callback/calendar")],
            crm_keys: vec![],
            idp: None,
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The fetching server, configured as the story has it; its baseline comes later.
    let fetching = serve_mcp(&base, &services.base_url, None).await;
    let admin = portcullis_client::Client::new(&base, Some(server.admin.clone())).unwrap();
    story::configure(
        &admin,
        &story::Story {
            services: &services.base_url,
            resource: &fetching,
            password: PASSWORD,
            crm_key: "crm-key",
            idp: None,
        },
    )
    .await
    .unwrap();

    // Vera signs in, then connects her calendar in the same browser.
    let mut cookies = HashMap::new();
    let t = code_flow(&http, &base, &vera(&fetching), &mut cookies).await;
    let token = t["access_token"].as_str().expect("a token").to_owned();
    // The outbound surface, as the MCP server calls it with vera's token.
    let outbound = |what: &str| {
        let req = http
            .post(format!("{base}/v1/outbound/apps/calendar/{what}"))
            .bearer_auth(&token)
            .json(&json!({"scopes": ["calendar.readonly"]}));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let link = outbound("connect").await;
    let link = link["url"].as_str().expect("a connect link").to_owned();
    let page = browse(http.get(&link), &mut cookies).await;
    let csrf = field(&page.2, "csrf");
    let go = browse(
        http.post(&link)
            .form(&[("action", "continue"), ("csrf", csrf.as_str())]),
        &mut cookies,
    )
    .await;
    let back = browse(http.get(go.1.expect("to the provider")), &mut cookies).await;
    let done = browse(http.get(back.1.expect("to the callback")), &mut cookies).await;
    assert_eq!(done.0, 200, "connected: {}", done.2);

    // The baseline holds the calendar token Portcullis would hand out, for good.
    let granted = outbound("token").await;
    let calendar_token = granted["token"]["accessToken"].as_str().unwrap().to_owned();
    let baseline = serve_mcp(&base, &services.base_url, Some(calendar_token)).await;
    admin
        .post(
            "/v1/mgmt/resources",
            &json!({"id": "baseline", "uri": baseline, "name": "Calendar (static token)",
                "scopes": [{"name": "calendar.read"}]}),
        )
        .await
        .unwrap();
    let t = code_flow(&http, &base, &vera(&baseline), &mut cookies).await;
    let baseline_token = t["access_token"].as_str().expect("a token").to_owned();

    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, token: &str| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "list_events", "arguments": {}, "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "wrk", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}}}})
        .to_string();
        let lua = format!(
            "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Accept\"] = \"application/json, text/event-stream\"\nwrk.headers[\"MCP-Protocol-Version\"] = \"2026-07-28\"\nwrk.headers[\"Mcp-Method\"] = \"tools/call\"\nwrk.headers[\"Mcp-Name\"] = \"list_events\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\nlocal reported = false\nresponse = function(status, headers, body)\n  if (status ~= 200 or string.find(body, '\"isError\":true')) and not reported then\n    reported = true\n    io.stderr:write(\"first failed call: \" .. status .. \" \" .. body .. \"\\n\")\n  end\nend\n"
        );
        let p = dir.path().join(name);
        std::fs::write(&p, lua).unwrap();
        p.display().to_string()
    };
    let with_fetch = script("fetch.lua", &token);
    let static_token = script("static.lua", &baseline_token);
    let run = |url: &str, script: String, secs: u64| {
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || wrk(&url, Some(&script), secs))
    };
    run(&fetching, with_fetch.clone(), 2).await.unwrap();
    let fetched = run(&fetching, with_fetch, seconds).await.unwrap();
    let baseline_run: Run = run(&baseline, static_token, seconds).await.unwrap();
    print_table(
        &format!(
            "MCP tool call `list_events` (16 connections, {seconds} s, wrk on the same 2 cores)"
        ),
        &[
            (
                "with the outbound fetch through Portcullis (SQLite)",
                &fetched,
            ),
            ("with a static calendar token", &baseline_run),
        ],
    );
    println!();
    println!(
        "Portcullis adds {:.2} ms at p50 and {:.2} ms at p99 to a tool call",
        ms(&fetched.p50) - ms(&baseline_run.p50),
        ms(&fetched.p99) - ms(&baseline_run.p99)
    );
}
