//! `portcullis serve`: config → stores → services → router, then serve until SIGINT/SIGTERM, and
//! shut down gracefully (in-flight requests finish, the audit queue is written).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use portcullis_core::{Core, CoreOptions};
use portcullis_domain::{Stores, SystemClock};
use portcullis_http::{AppState, MetricsRenderer};
use tokio::sync::oneshot;

use crate::config::{Config, MasterKeySource};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database cannot be opened.
    #[error("cannot open the database: {0}")]
    Store(String),
    /// The services cannot start.
    #[error("cannot start: {0}")]
    Start(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The file, in the data directory, that a generated bootstrap admin key is written to.
pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-admin-key";

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its services.
    pub core: Arc<Core>,
    /// The bootstrap admin key, when this start created a random one.
    pub bootstrap_key: Option<portcullis_crypto::SecretString>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, writes the audit queue.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops.
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Opens the configured database.
pub async fn open_stores(config: &Config) -> Result<Stores, ServeError> {
    match &config.database_url {
        Some(url) => {
            let options = portcullis_store_postgres::PgOptions {
                pool_size: config.pool_size,
                ..portcullis_store_postgres::PgOptions::default()
            };
            let store = portcullis_store_postgres::PostgresStore::connect(url, options)
                .await
                .map_err(|e| ServeError::Store(e.to_string()))?;
            let feed = Arc::new(store.change_feed());
            Ok(Stores::from_backend(Arc::new(store), feed))
        }
        None => {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                ServeError::Store(format!(
                    "cannot create the data directory {}: {e}",
                    config.data_dir.display()
                ))
            })?;
            let path = config.data_dir.join("portcullis.db");
            let store = tokio::task::spawn_blocking(move || {
                portcullis_store_sqlite::SqliteStore::open(&path)
            })
            .await
            .map_err(|e| ServeError::Store(e.to_string()))?
            .map_err(|e| ServeError::Store(e.to_string()))?;
            let feed = Arc::new(store.change_feed());
            Ok(Stores::from_backend(Arc::new(store), feed))
        }
    }
}

fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
}

/// Starts the server on the configured address.
pub async fn start(config: Config) -> Result<Running, ServeError> {
    if let MasterKeySource::Generated(path) = &config.master_key {
        tracing::warn!(
            path = %path.display(),
            "DEVELOPMENT MODE: the master key is generated and stored in the data directory, beside the data it protects. This is not for production: set PORTCULLIS_MASTER_KEY (or master_key_file) and --production."
        );
    }
    if config.settings.danger_allow_insecure_http {
        tracing::warn!(
            "DANGER: danger_allow_insecure_http is on: provider and JWKS URLs may use plain HTTP"
        );
    }
    let master_keys = config.master_keys()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let stores = open_stores(&config).await?;
    let mut settings = config.settings.clone();
    settings.node_id = portcullis_crypto::random_token(9);
    if !config.public_url_explicit {
        // Follows the bound address (a port of 0 picks a free one).
        settings.public_url = format!("http://{addr}");
    }
    let core = Core::start(
        stores,
        CoreOptions {
            settings,
            master_keys,
            config_issuers: config.issuers.clone(),
            clock: Arc::new(SystemClock),
        },
    )
    .await
    .map_err(|e| ServeError::Start(e.to_string()))?;
    let bootstrap = core
        .bootstrap_admin_key(config.bootstrap_admin_key.as_ref())
        .await
        .map_err(|e| ServeError::Start(e.to_string()))?;
    if let Some(key) = &bootstrap {
        // The generated key goes to a file only its owner reads, never to the log.
        let path = config.data_dir.join(BOOTSTRAP_KEY_FILE);
        let _ = std::fs::remove_file(&path);
        crate::config::write_private(&path, key.expose())
            .map_err(|e| ServeError::Start(format!("writing the bootstrap admin key: {e}")))?;
        tracing::warn!(path = %path.display(), "a bootstrap admin key was generated and written to this file (readable only by its owner): read it, store it safely, and delete the file");
    }
    let metrics: Option<MetricsRenderer> =
        metrics_handle().map(|h| Arc::new(move || h.render()) as MetricsRenderer);
    let app = portcullis_http::router(AppState {
        core: core.clone(),
        metrics,
    });
    let (tx, rx) = oneshot::channel::<()>();
    let purge_core = core.clone();
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut minutes = 0u64;
        loop {
            tick.tick().await;
            // Audit retention: at start, then hourly.
            if minutes.is_multiple_of(60)
                && let Err(e) = purge_core.prune_audit().await
            {
                tracing::warn!(error = %e, "audit retention failed; retrying in an hour");
            }
            // Expired codes and refresh tokens, unused registrations: hourly too.
            if minutes.is_multiple_of(60)
                && let Err(e) = purge_core.purge_authorization_server().await
            {
                tracing::warn!(error = %e, "purging expired grants failed; retrying in an hour");
            }
            minutes += 1;
            if let Err(e) = purge_core.purge_expired_connect_links().await {
                tracing::warn!(error = %e, "purging expired connect links failed");
            }
        }
    });
    let core2 = core.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the server stopped with an error");
        }
        purger.abort();
        core2.flush_audit().await;
        tracing::info!("stopped");
    });
    tracing::info!(%addr, backend = core.backend(), public_url = %core.settings().public_url, "Portcullis is listening");
    Ok(Running {
        addr,
        core,
        bootstrap_key: bootstrap,
        shutdown: Some(tx),
        task,
    })
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let running = start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests and writing the audit log");
    running.shutdown().await;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
