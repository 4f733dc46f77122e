#![allow(
    dead_code,
    unused_imports,
    reason = "each test module uses a part of the support"
)]

//! What the end-to-end tests stand on.

pub mod idp;
pub mod pg;
pub mod provider;
pub mod server;

pub use idp::Idp;
pub use provider::Provider;
pub use server::{Backend, TestServer};

/// Expands one async test body `fn name(backend: Backend)` into a test per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}
