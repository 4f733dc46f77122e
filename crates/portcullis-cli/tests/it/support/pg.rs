//! A fresh PostgreSQL database per test, dropped afterwards.

/// The server the tests use: `PORTCULLIS_TEST_DATABASE_URL`, by default the local one.
pub fn server_url() -> String {
    std::env::var("PORTCULLIS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that is dropped with this guard.
#[derive(Debug)]
pub struct FreshDatabase {
    /// Its URL.
    pub url: String,
    name: String,
}

impl FreshDatabase {
    /// Creates `portcullis_e2e_<random>` on the test server. Fails loudly when PostgreSQL is down.
    pub async fn create() -> Self {
        let admin = server_url();
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin} ({e}); start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start`"
                )
            });
        tokio::spawn(conn);
        let name = format!(
            "portcullis_e2e_{}",
            portcullis_crypto::random_token(9)
                .to_lowercase()
                .replace(['-', '_'], "x")
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = match admin.rfind('/') {
            Some(i) if admin[..i].contains("://") && i > admin.find("://").unwrap() + 2 => {
                format!("{}/{name}", &admin[..i])
            }
            _ => format!("{admin}/{name}"),
        };
        Self { url, name }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = server_url();
        // Drop is synchronous: drop the database from a thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
