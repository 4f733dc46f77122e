//! A listener whose peer goes silent (no reset, no close: a network partition) is noticed by its
//! heartbeat. Simulated with a loopback proxy that can stop forwarding.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portcullis_domain::{Change, ChangeEvent, ChangeFeed};
use portcullis_store_postgres::{PgOptions, PostgresStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{TestDb, app, encode, server_address, server_url, stores_of};

/// A TCP proxy on the loopback that forwards to the test server until frozen.
struct Proxy {
    port: u16,
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (flag, target) = (flag.clone(), target.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect((target.0.as_str(), target.1)).await
                    else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pipe(ri, wo, flag.clone()), pipe(ro, wi, flag));
                });
            }
        });
        Self { port, frozen }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }
}

/// Copies bytes one way, holding them while frozen (the connection stays open, silent).
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, frozen: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The test database's URL through the proxy.
fn proxied_url(db: &TestDb, proxy: &Proxy) -> String {
    let server = tokio_postgres::Config::from_str(&server_url()).unwrap();
    let user = encode(server.get_user().unwrap_or("postgres"));
    let password = server
        .get_password()
        .map(|p| format!(":{}", encode(&String::from_utf8_lossy(p))))
        .unwrap_or_default();
    format!(
        "postgres://{user}{password}@127.0.0.1:{}/{}",
        proxy.port, db.name
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_listener_is_noticed_by_its_heartbeat() {
    let db = TestDb::create().await;
    let proxy = Proxy::start(server_address()).await;
    let heartbeat = Duration::from_millis(200);
    let b = PostgresStore::connect(
        &proxied_url(&db, &proxy),
        PgOptions {
            listener_heartbeat: heartbeat,
            connect_timeout: Duration::from_secs(1),
            ..PgOptions::default()
        },
    )
    .await
    .unwrap();
    let a = db.connect().await;
    let (sa, sb) = (stores_of(&a), stores_of(&b));
    let resets: Arc<Mutex<Vec<bool>>> = Arc::default();
    let (sink, feed) = (resets.clone(), b.change_feed());
    sb.changes.add_listener(Arc::new(move |event| {
        if *event == ChangeEvent::Reset {
            sink.lock().unwrap().push(feed.is_live());
        }
    }));
    let mut rx = sb.changes.subscribe();
    sa.apps.insert_app(&app("before")).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event, ChangeEvent::Changed(Change::App("before".into())));

    proxy.freeze(true);
    let frozen_at = Instant::now();
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let noticed = frozen_at.elapsed();
    assert_eq!(event, ChangeEvent::Reset);
    assert!(!sb.changes.is_live());
    println!(
        "a silent listener connection was noticed after {noticed:?} (heartbeat {heartbeat:?})"
    );
    assert!(
        noticed < heartbeat * 2 + Duration::from_secs(1),
        "{noticed:?}"
    );

    // Reconnecting through the silent proxy times out: the feed stays not live.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!sb.changes.is_live());
    assert_eq!(*resets.lock().unwrap(), [false]);

    proxy.freeze(false);
    let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event, ChangeEvent::Reset);
    assert_eq!(*resets.lock().unwrap(), [false, true]);
    sa.apps.insert_app(&app("after")).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event, ChangeEvent::Changed(Change::App("after".into())));
}
