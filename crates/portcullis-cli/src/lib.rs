//! The `portcullis` command line. `serve` and `migrate` open the database; every other command
//! talks to a running server's API (`--url`, `--admin-key`), never to its database.
//!
//! Exit codes: 0 success; 1 failure (unreachable server, invalid input); 2 usage; 3 a denial or a
//! failed expectation (a simulated request denied, a policy test case that does not hold).

pub mod admin_keys;
pub mod apply;
pub mod config;
pub mod demo;
pub mod keys;
pub mod policy_replay;
pub mod policy_test;
pub mod serve;
pub mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code of a failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a denial or a failed expectation.
pub const EXIT_DENIED: u8 = 3;

/// Portcullis: the access control plane for MCP servers and AI agents.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// Where the server is, for the commands that call its API.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// The server's URL.
    #[arg(long, env = "PORTCULLIS_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An admin key.
    #[arg(long, env = "PORTCULLIS_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
}

impl Remote {
    /// A client for the server.
    pub fn client(&self) -> Result<portcullis_client::Client, String> {
        let key = self
            .admin_key
            .clone()
            .ok_or("an admin key is needed: --admin-key or PORTCULLIS_ADMIN_KEY")?;
        portcullis_client::Client::new(&self.url, Some(key)).map_err(|e| e.to_string())
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (SQLite in ./portcullis-data unless configured otherwise).
    Serve(config::ServeFlags),
    /// Apply database migrations and exit.
    Migrate(config::StorageFlags),
    /// Data-encryption keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Admin API keys and their scopes.
    #[command(subcommand)]
    AdminKeys(admin_keys::AdminKeysCommand),
    /// Policy tests.
    #[command(subcommand)]
    Policy(policy_test::PolicyCommand),
    /// Apply apps and policies from a YAML file, idempotently (policy as code).
    Apply(apply::ApplyArgs),
    /// Ask what a request would get (the decision simulator).
    Simulate(simulate::SimulateArgs),
    /// The whole product, offline: Portcullis, an MCP server, a calendar provider and an identity
    /// provider; walks the story of two users' tool calls, then runs until Ctrl-C.
    Demo(demo::DemoArgs),
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    match cli.command {
        Command::Serve(flags) => {
            let config = match config::Config::load(&flags, &env) {
                Ok(c) => c,
                Err(e) => return fail(&e.to_string()),
            };
            init_tracing(config.log_json, &config.log_level);
            match serve::run(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Migrate(storage) => {
            let flags = config::ServeFlags {
                storage,
                ..config::ServeFlags::default()
            };
            let config = match config::Config::load(&flags, &env) {
                Ok(c) => c,
                Err(e) => return fail(&e.to_string()),
            };
            init_tracing(config.log_json, &config.log_level);
            match serve::open_stores(&config).await {
                Ok(_) => {
                    println!("migrations applied");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Keys(cmd) => keys::run(cmd, cli.output).await,
        Command::AdminKeys(cmd) => admin_keys::run(cmd, cli.output).await,
        Command::Policy(cmd) => policy_test::run(cmd, cli.output).await,
        Command::Apply(args) => apply::run(args, cli.output).await,
        Command::Simulate(args) => simulate::run(args, cli.output).await,
        Command::Demo(args) => demo::run(args, cli.output).await,
    }
}

/// Prints an error and returns the failure code.
pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_FAILURE)
}

/// Prints a JSON value.
pub(crate) fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(crate) fn init_tracing(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
