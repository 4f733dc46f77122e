//! Read-through caches that serve warm requests from memory and never serve a value older than a
//! change this node has heard of.
//!
//! Invalidation is synchronous: the change feed calls [`Caches::apply`] before a write returns
//! (locally) or as soon as a notification arrives (from other nodes). A value loaded from the
//! database is only cached if no change was published while it loaded (the feed's sequence did
//! not move), checked under the same lock invalidation takes, so a stale load can never land after
//! the invalidation that should have removed it. While the feed is not live (a PostgreSQL listener
//! reconnecting), caches are bypassed: fail closed.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use portcullis_domain::{
    Change, ChangeEvent, ChangeFeed, ConnectionKey, ConnectionRecord, UserRecord,
};

use crate::plane::AppSnapshot;

/// One cache.
pub(crate) struct Cache<K, V> {
    map: quick_cache::sync::Cache<K, V>,
    write: Mutex<()>,
    feed: Arc<dyn ChangeFeed>,
    /// How many times a value was read from the database (a miss, or a bypass).
    loads: AtomicU64,
}

impl<K, V> Cache<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    pub(crate) fn new(capacity: usize, feed: Arc<dyn ChangeFeed>) -> Self {
        Self {
            map: quick_cache::sync::Cache::new(capacity.max(16)),
            write: Mutex::new(()),
            feed,
            loads: AtomicU64::new(0),
        }
    }

    /// The cached value, or `load`'s (cached when nothing changed meanwhile). `key` may be a
    /// borrowed form of the key (no allocation on a hit); `owned` makes the key to insert.
    pub(crate) async fn get_or_load<Q, E, F, Fut>(
        &self,
        key: &Q,
        owned: impl FnOnce() -> K,
        load: F,
    ) -> Result<V, E>
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        if self.feed.is_live()
            && let Some(v) = self.map.get(key)
        {
            return Ok(v);
        }
        let mark = self.mark();
        let value = load().await?;
        self.insert_loaded(mark, owned, value.clone());
        Ok(value)
    }

    /// Whether `key` is cached (and the cache in use): a read of it would not load.
    pub(crate) fn holds<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        self.feed.is_live() && self.map.contains_key(key)
    }

    /// Marks the start of a load from the database: what [`Cache::insert_loaded`] checks.
    pub(crate) fn mark(&self) -> LoadMark {
        self.loads.fetch_add(1, Ordering::Relaxed);
        LoadMark {
            live: self.feed.is_live(),
            sequence: self.feed.sequence(),
        }
    }

    /// Caches a value loaded since `mark`, unless a change was published meanwhile (or the
    /// cache is bypassed).
    pub(crate) fn insert_loaded(&self, mark: LoadMark, key: impl FnOnce() -> K, value: V) {
        if mark.live {
            let _guard = self.lock();
            if self.feed.is_live() && self.feed.sequence() == mark.sequence {
                self.map.insert(key(), value);
            }
        }
    }

    pub(crate) fn invalidate(&self, key: &K) {
        let _guard = self.lock();
        self.map.remove(key);
    }

    pub(crate) fn clear(&self) {
        let _guard = self.lock();
        self.map.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a load from the database started: the feed's state then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadMark {
    live: bool,
    sequence: u64,
}

/// A borrowed [`ConnectionKey`], to look a connection up without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionKeyRef<'a> {
    pub(crate) app_id: &'a str,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) tenant_id: Option<&'a str>,
}

impl Hash for ConnectionKeyRef<'_> {
    // INVARIANT: hashes exactly as the derived `Hash` of `ConnectionKey` (fields in order; a
    // `String` hashes as its `str`, an `Option<String>` as its `Option<&str>`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.app_id.hash(state);
        self.user_id.hash(state);
        self.tenant_id.hash(state);
    }
}

impl quick_cache::Equivalent<ConnectionKey> for ConnectionKeyRef<'_> {
    fn equivalent(&self, key: &ConnectionKey) -> bool {
        self.app_id == key.app_id
            && self.user_id == key.user_id.as_deref()
            && self.tenant_id == key.tenant_id.as_deref()
    }
}

impl ConnectionKeyRef<'_> {
    pub(crate) fn to_owned_key(self) -> ConnectionKey {
        ConnectionKey {
            app_id: self.app_id.to_owned(),
            user_id: self.user_id.map(str::to_owned),
            tenant_id: self.tenant_id.map(str::to_owned),
        }
    }
}

/// A borrowed identity key (issuer, subject), to look a user up without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdentityRef<'a>(pub(crate) &'a str, pub(crate) &'a str);

impl Hash for IdentityRef<'_> {
    // INVARIANT: hashes exactly as the derived `Hash` of `(String, String)`.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl quick_cache::Equivalent<(String, String)> for IdentityRef<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// The caches of the token path.
pub(crate) struct Caches {
    pub(crate) apps: Cache<String, Option<Arc<AppSnapshot>>>,
    pub(crate) users: Cache<String, Option<Arc<UserRecord>>>,
    /// Users by identity (issuer, subject); `None` for an external subject. Cleared by any user
    /// change: a change may add or remove identity links anywhere.
    pub(crate) identities: Cache<(String, String), Option<Arc<UserRecord>>>,
    pub(crate) connections: Cache<ConnectionKey, Option<Arc<ConnectionRecord>>>,
}

impl Caches {
    pub(crate) fn new(
        feed: &Arc<dyn ChangeFeed>,
        sizes: &crate::settings::CacheCapacities,
    ) -> Self {
        Self {
            apps: Cache::new(sizes.apps, feed.clone()),
            users: Cache::new(sizes.users, feed.clone()),
            identities: Cache::new(sizes.identities, feed.clone()),
            connections: Cache::new(sizes.connections, feed.clone()),
        }
    }

    /// How many values the token path's caches have read from the database so far.
    pub(crate) fn loads(&self) -> u64 {
        self.apps.loads.load(Ordering::Relaxed)
            + self.users.loads.load(Ordering::Relaxed)
            + self.identities.loads.load(Ordering::Relaxed)
            + self.connections.loads.load(Ordering::Relaxed)
    }

    /// Applies one event (called synchronously by the change feed).
    pub(crate) fn apply(&self, event: &ChangeEvent) {
        match event {
            ChangeEvent::Reset => {
                self.apps.clear();
                self.users.clear();
                self.identities.clear();
                self.connections.clear();
            }
            ChangeEvent::Changed(change) => match change {
                Change::App(id) => self.apps.invalidate(id),
                Change::User(id) => {
                    self.users.invalidate(id);
                    self.identities.clear();
                }
                Change::AllUsers => {
                    self.users.clear();
                    self.identities.clear();
                }
                Change::Connection(key) => self.connections.invalidate(key),
                Change::AppConnections(_) => self.connections.clear(),
                Change::Issuers
                | Change::Client(_)
                | Change::AdminKeys
                | Change::DataKeys
                | Change::SigningKeys
                | Change::Resources => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_domain::LocalChangeFeed;

    #[test]
    fn a_borrowed_connection_key_hashes_as_the_owned_one() {
        use std::hash::BuildHasher;
        let s = std::collections::hash_map::RandomState::new();
        for (u, t) in [
            (Some("u"), None),
            (None, Some("t")),
            (Some("u"), Some("t")),
            (None, None),
        ] {
            let r = ConnectionKeyRef {
                app_id: "a",
                user_id: u,
                tenant_id: t,
            };
            assert_eq!(s.hash_one(r), s.hash_one(r.to_owned_key()));
            assert!(quick_cache::Equivalent::equivalent(&r, &r.to_owned_key()));
        }
    }

    #[tokio::test]
    async fn serves_from_memory_until_invalidated() {
        let feed = Arc::new(LocalChangeFeed::new(16));
        let cache: Arc<Cache<String, u32>> = Arc::new(Cache::new(16, feed.clone()));
        let c = cache.clone();
        feed.add_listener(Arc::new(move |e| {
            if let ChangeEvent::Changed(Change::App(id)) = e {
                c.invalidate(id);
            }
        }));
        let k = "a".to_owned();
        let v = cache
            .get_or_load(&k, || k.clone(), || async { Ok::<_, ()>(1) })
            .await;
        assert_eq!(v, Ok(1));
        let v = cache
            .get_or_load(&k, || k.clone(), || async { Ok::<_, ()>(2) })
            .await;
        assert_eq!(v, Ok(1), "served from memory");
        feed.publish(Change::App("a".into()));
        let v = cache
            .get_or_load(&k, || k.clone(), || async { Ok::<_, ()>(3) })
            .await;
        assert_eq!(v, Ok(3), "reloaded after the change");
    }

    #[tokio::test]
    async fn a_load_racing_a_change_is_not_cached() {
        let feed = Arc::new(LocalChangeFeed::new(16));
        let cache: Cache<String, u32> = Cache::new(16, feed.clone());
        let k = "a".to_owned();
        let f = feed.clone();
        let v = cache
            .get_or_load(
                &k,
                || k.clone(),
                || async move {
                    // A change lands while the value is being read.
                    f.publish(Change::App("a".into()));
                    Ok::<_, ()>(1)
                },
            )
            .await;
        assert_eq!(v, Ok(1));
        let v = cache
            .get_or_load(&k, || k.clone(), || async { Ok::<_, ()>(2) })
            .await;
        assert_eq!(v, Ok(2), "the racing load was not cached");
    }

    #[tokio::test]
    async fn a_feed_that_is_not_live_bypasses_the_cache() {
        let feed = Arc::new(LocalChangeFeed::new(16));
        let cache: Cache<String, u32> = Cache::new(16, feed.clone());
        let k = "a".to_owned();
        let _ = cache
            .get_or_load(&k, || k.clone(), || async { Ok::<_, ()>(1) })
            .await;
        feed.set_live(false);
        let v = cache
            .get_or_load(&k, || k.clone(), || async { Ok::<_, ()>(2) })
            .await;
        assert_eq!(v, Ok(2));
        let v = cache
            .get_or_load(&k, || k.clone(), || async { Ok::<_, ()>(3) })
            .await;
        assert_eq!(v, Ok(3));
    }
}
