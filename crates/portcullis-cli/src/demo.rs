//! `portcullis demo`: the whole product in one command, offline. Portcullis on SQLite in a
//! temporary directory; the calendar example's services (an OAuth provider, its calendar API, a
//! CRM) and its OpenID provider standing in for the company's (Entra ID), whose groups map to the
//! roles Viewer and Editor; the example MCP server behind Portcullis. It walks the story as an MCP
//! client would, printing each step, then leaves everything running until Ctrl-C and prints where
//! to look.

use std::process::ExitCode;

use portcullis_example_calendar::{self as example, demo, story};
use serde_json::json;

use crate::{EXIT_FAILURE, Output, config, fail, serve};

/// The users' password in the demo.
const PASSWORD: &str = "correct horse battery staple";

/// Flags of `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where Portcullis listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Where the example MCP server listens (its endpoint is `/mcp` there).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub mcp_listen: std::net::SocketAddr,
    /// Set everything up, but do not walk the story.
    #[arg(long)]
    pub no_story: bool,
    /// Stop after the story instead of running until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// The environment the demo's Portcullis reads: the log settings and the switches the tests of
/// MCP clients need; never a database, data directory or key of the caller's.
fn demo_env(key: &str) -> Option<String> {
    const PASSED: [&str; 4] = [
        "PORTCULLIS_LOG_LEVEL",
        "PORTCULLIS_LOG_FORMAT",
        "PORTCULLIS_DANGER_ALLOW_PRIVATE_CLIENT_METADATA",
        "PORTCULLIS_REGISTRATION_TOKEN",
    ];
    PASSED
        .contains(&key)
        .then(|| std::env::var(key).ok())
        .flatten()
}

/// Runs the demo.
pub async fn run(args: DemoArgs, output: Output) -> ExitCode {
    let dir = match tempfile::Builder::new()
        .prefix("portcullis-demo-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => return fail(&format!("cannot create a temporary directory: {e}")),
    };
    let flags = config::ServeFlags {
        storage: config::StorageFlags {
            data_dir: Some(dir.path().to_owned()),
            ..config::StorageFlags::default()
        },
        listen: Some(args.listen.to_string()),
        ..config::ServeFlags::default()
    };
    let mut config = match config::Config::load(&flags, &demo_env) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if demo_env("PORTCULLIS_LOG_LEVEL").is_none() {
        config.log_level = "error".into();
    }
    crate::init_tracing(config.log_json, &config.log_level);
    let staged = stage(config, &args, output).await;
    drop(dir);
    match staged {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn stage(config: config::Config, args: &DemoArgs, output: Output) -> Result<(), String> {
    let data_dir = config.data_dir.clone();
    let running = serve::start(config).await.map_err(|e| e.to_string())?;
    let portcullis = running.core.settings().public_url.clone();
    let admin_key = running
        .bootstrap_key
        .as_ref()
        .ok_or("the demo's Portcullis made no admin key")?
        .expose()
        .to_owned();
    let crm_key = portcullis_crypto::random_token(24);
    let services = example::start(
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        example::Config {
            client_id: story::CLIENT_ID.into(),
            client_secret: story::CLIENT_SECRET.into(),
            redirect_uris: vec![format!("{portcullis}/v1/outbound/callback/calendar")],
            crm_keys: vec![crm_key.clone()],
            idp: Some(example::idp::Config {
                client_id: story::SSO_CLIENT_ID.into(),
                client_secret: story::SSO_CLIENT_SECRET.into(),
                redirect_uris: vec![format!("{portcullis}/oauth2/sso/callback")],
                people: story::people(),
            }),
        },
    )
    .await
    .map_err(|e| format!("cannot start the example's services: {e}"))?;
    let issuer = services.issuer().unwrap_or_default();
    let listener = tokio::net::TcpListener::bind(args.mcp_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.mcp_listen))?;
    let mcp_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mcp = format!("http://{mcp_addr}/mcp");
    let app = example::mcp::router(example::mcp::Settings {
        portcullis: portcullis.clone(),
        resource: mcp.clone(),
        services: services.base_url.clone(),
        calendar_app: "calendar".into(),
        crm_app: "crm".into(),
        static_credential: None,
    })
    .map_err(|e| e.to_string())?;
    tokio::spawn(example::serve(listener, app));

    let admin = portcullis_client::Client::new(&portcullis, Some(admin_key.clone()))
        .map_err(|e| e.to_string())?;
    let configured = story::configure(
        &admin,
        &story::Story {
            services: &services.base_url,
            resource: &mcp,
            password: PASSWORD,
            crm_key: &crm_key,
            idp: Some(&issuer),
        },
    )
    .await
    .map_err(|e| format!("configuring the story: {e}"))?;

    if !args.no_story {
        let scene = demo::Scene {
            portcullis: &portcullis,
            mcp: &mcp,
            admin: &admin,
            configured: &configured,
        };
        // For people, the story is the output; for programs, it goes to stderr.
        let mut say = |line: String| match output {
            Output::Text => println!("{line}"),
            Output::Json => eprintln!("{line}"),
        };
        demo::walk(scene, &mut say)
            .await
            .map_err(|e| format!("the demo's story did not go as expected: {e}"))?;
    }

    let ready = json!({
        "portcullis": portcullis, "mcp": mcp, "adminKey": admin_key,
        "identityProvider": issuer, "services": services.base_url,
        "mcpClient": story::MCP_CLIENT, "users": ["vera@example.com", "eddie@example.com"],
        "password": PASSWORD, "ssoConnection": story::SSO_CONNECTION,
        "dataDir": data_dir.display().to_string(),
    });
    match output {
        Output::Json => println!("{ready}"),
        Output::Text => println!(
            "\nEverything is running (data in a temporary directory, gone when the demo stops):\n  \
             Portcullis        {portcullis}  (API: {portcullis}/openapi.json)\n  \
             admin key         {admin_key}\n  \
             MCP server        {mcp}  (point an MCP client at it: it discovers Portcullis and signs you in)\n  \
             identity provider {issuer}  (sign in as Vera or Eddie; or with vera@example.com / eddie@example.com and the password \"{PASSWORD}\")\n  \
             audit log         curl -H \"Authorization: Bearer {admin_key}\" {portcullis}/v1/mgmt/audit\n\n\
             Ctrl-C stops it."
        ),
    }
    if !args.exit {
        crate::serve::shutdown_signal().await;
    }
    running.shutdown().await;
    Ok(())
}
