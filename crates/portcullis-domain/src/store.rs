//! The storage traits. Each is narrow and owned by the domain; each backend implements all of them
//! once. Every write is one transaction and publishes its [`Change`](crate::Change) after commit.

use std::sync::Arc;

use async_trait::async_trait;

use crate::table::{self, TableStore};
use crate::{
    AdminKeyRecord, AppRecord, AuditEvent, AuditQuery, AuditSummaryRow, ChangeFeed, Ciphertext,
    ClientRecord, ConnectionKey, ConnectionRecord, ConsentState, DataKeyRecord, IssuerRecord,
    ManagementEvent, PolicyRecord, RecordedDecision, RefreshFailure, RejectedCount, Role,
    TenantRecord, Timestamp, TokenSet, UserRecord,
};

/// How many pending consent flows one connection key keeps.
pub const MAX_PENDING_CONSENTS_PER_KEY: u32 = 8;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist.
    #[error("{entity} not found")]
    NotFound {
        /// What was looked for (`app`, `policy`, `user`...).
        entity: &'static str,
    },
    /// An id or a unique value is already taken.
    #[error("{entity} already exists")]
    AlreadyExists {
        /// What collided (`app`, `policy name`, `user email`...).
        entity: &'static str,
    },
    /// A reference to something that does not exist (an unknown role or tenant on a user, an
    /// unknown app on a connection).
    #[error("{entity} {id} does not exist")]
    MissingReference {
        /// The kind of thing referenced.
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// The write lost a race (the revision moved) or would break a rule (a role still in use).
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported.
    #[error("the database failed: {0}")]
    Backend(String),
}

impl StoreError {
    /// For a write addressed to one row: `NotFound { entity }` unless it touched one.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when `touched` is false.
    pub fn found(touched: bool, entity: &'static str) -> Result<(), Self> {
        if touched {
            Ok(())
        } else {
            Err(Self::NotFound { entity })
        }
    }
}

/// A page of a list ordered by id: the items with ids after `after`, at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Exclusive lower bound on the id (the cursor).
    pub after: Option<String>,
    /// How many items at most (the store reads exactly this many if there are so many).
    pub limit: u32,
}

/// Outbound apps and their policies. An app's `revision` is bumped by every change to the app or
/// to one of its policies, which is how writes that check the app and its policies together stay
/// consistent without locks (optimistic concurrency).
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Inserts a new app (its revision as given). `AlreadyExists` when the id is taken.
    async fn insert_app(&self, app: &AppRecord) -> Result<(), StoreError>;
    /// Reads one app.
    async fn app(&self, id: &str) -> Result<Option<AppRecord>, StoreError>;
    /// Lists apps by id.
    async fn apps(&self, page: &PageRequest) -> Result<Vec<AppRecord>, StoreError>;
    /// Reads an app and all its policies in one consistent snapshot.
    async fn app_with_policies(
        &self,
        id: &str,
    ) -> Result<Option<(AppRecord, Vec<PolicyRecord>)>, StoreError>;
    /// Replaces an app whose revision is still `expected_revision`, storing `app.revision`
    /// (the caller sets it to `expected_revision + 1`). `NotFound`, or `Conflict` when the
    /// revision moved.
    async fn update_app(&self, app: &AppRecord, expected_revision: i64) -> Result<(), StoreError>;
    /// Deletes an app with its policies, connections and pending consents. `NotFound`.
    async fn delete_app(&self, id: &str) -> Result<(), StoreError>;

    /// Inserts a policy if its app's revision is still `expected_app_revision`, bumping it.
    /// `AlreadyExists` (entity `policy name`) when the app has a policy with the same name
    /// (case-insensitive); `NotFound` for an unknown app; `Conflict` when the revision moved.
    async fn insert_policy(
        &self,
        policy: &PolicyRecord,
        expected_app_revision: i64,
    ) -> Result<(), StoreError>;
    /// Reads one policy of an app.
    async fn policy(&self, app_id: &str, id: &str) -> Result<Option<PolicyRecord>, StoreError>;
    /// Lists an app's policies by id.
    async fn policies(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<PolicyRecord>, StoreError>;
    /// Replaces a policy, under the same revision rule as `insert_policy`.
    async fn update_policy(
        &self,
        policy: &PolicyRecord,
        expected_app_revision: i64,
    ) -> Result<(), StoreError>;
    /// Deletes a policy, bumping its app's revision. `NotFound`.
    async fn delete_policy(&self, app_id: &str, id: &str) -> Result<(), StoreError>;
}

/// Users, roles and tenants. Roles and tenants are kept the same way by every backend, so their
/// insert, read, list and update are written here once, over the backend's [`TableStore`]; a
/// backend implements the rest.
#[async_trait]
pub trait DirectoryStore: TableStore + Send + Sync {
    /// Inserts a user. `AlreadyExists` (`user`, `user email`, or `user identity` when another
    /// user already has one of its identities); `MissingReference` for an unknown role or tenant.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Reads one user.
    async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Reads the user linked to the identity `(issuer, subject)`, if any.
    async fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Lists users by id.
    async fn users(&self, page: &PageRequest) -> Result<Vec<UserRecord>, StoreError>;
    /// Replaces a user. Same errors as `insert_user`, plus `NotFound`.
    async fn update_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Deletes a user and the user's connections. `NotFound`.
    async fn delete_user(&self, id: &str) -> Result<(), StoreError>;

    /// Inserts a role. `AlreadyExists`.
    async fn insert_role(&self, role: &Role) -> Result<(), StoreError> {
        table::insert(self, role).await
    }
    /// Reads one role.
    async fn role(&self, name: &str) -> Result<Option<Role>, StoreError> {
        table::get(self, name).await
    }
    /// Lists roles by name.
    async fn roles(&self, page: &PageRequest) -> Result<Vec<Role>, StoreError> {
        table::list(self, page).await
    }
    /// Replaces a role's description. `NotFound`.
    async fn update_role(&self, role: &Role) -> Result<(), StoreError> {
        table::update(self, role).await
    }
    /// Deletes a role. `NotFound`; `Conflict` while a user holds it.
    async fn delete_role(&self, name: &str) -> Result<(), StoreError>;

    /// Inserts a tenant. `AlreadyExists`.
    async fn insert_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        table::insert(self, tenant).await
    }
    /// Reads one tenant.
    async fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        table::get(self, id).await
    }
    /// Lists tenants by id.
    async fn tenants(&self, page: &PageRequest) -> Result<Vec<TenantRecord>, StoreError> {
        table::list(self, page).await
    }
    /// Replaces a tenant. `NotFound`.
    async fn update_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        table::update(self, tenant).await
    }
    /// Deletes a tenant, its memberships and its connections. `NotFound`.
    async fn delete_tenant(&self, id: &str) -> Result<(), StoreError>;
}

/// Credentials, and the refresh protocol that keeps exactly one refresh in flight per connection
/// across every node sharing the database:
///
/// 1. `acquire_refresh_lease` takes a time-bounded lease (`lease_owner`, `lease_until`) if none is
///    live, returning the row as it is now, so the holder re-checks whether a refresh is still
///    needed;
/// 2. the holder calls the provider, then `complete_refresh` writes the new tokens only if it still
///    holds the lease and the version has not moved (fencing: a holder whose lease lapsed cannot
///    overwrite newer tokens), bumping the version and releasing the lease in the same statement;
/// 3. or `fail_refresh` records the error and releases the lease.
///
/// Everyone else waits for the version to move (or the lease to lapse).
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Reads the connection with this key.
    async fn connection(&self, key: &ConnectionKey)
    -> Result<Option<ConnectionRecord>, StoreError>;
    /// Reads the connection of the directory user linked to the identity `(issuer, subject)`
    /// with the key `(app_id, that user, tenant_id)`: what [`ConnectionStore::connection`] would
    /// read once the user is known, without waiting for the user's read. `None` when the
    /// identity is linked to no user or the user has no such connection.
    async fn connection_by_identity(
        &self,
        app_id: &str,
        issuer: &str,
        subject: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<ConnectionRecord>, StoreError>;
    /// Whether two reads sent together take about the time of one (each costs a round trip to a
    /// database server), so that the token path reads a user's connection beside the user on a
    /// cache miss rather than after it. `false` where reads run in process.
    fn reads_overlap(&self) -> bool {
        false
    }
    /// Reads a connection by id.
    async fn connection_by_id(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError>;
    /// Inserts a connection, or replaces the credential of the one with the same key (keeping its
    /// id and creation time, bumping its version, clearing any lease). Returns the stored row.
    /// `MissingReference` for an unknown app.
    async fn put_connection(&self, c: &ConnectionRecord) -> Result<ConnectionRecord, StoreError>;
    /// `put_connection` for many, all or nothing.
    async fn put_connections(
        &self,
        cs: &[ConnectionRecord],
    ) -> Result<Vec<ConnectionRecord>, StoreError>;
    /// Lists an app's connections by id.
    async fn connections_for_app(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;
    /// Lists a user's connections by id.
    async fn connections_for_user(
        &self,
        user_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;
    /// Deletes one connection, returning it.
    async fn delete_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError>;
    /// Deletes every connection of a user, returning them.
    async fn delete_user_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

    /// Takes the refresh lease of a connection for `owner` until `until`, if no lease is live at
    /// `now`. Returns the row as it is now when taken; `None` when someone else holds it (or the
    /// connection is gone).
    async fn acquire_refresh_lease(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<ConnectionRecord>, StoreError>;
    /// Writes refreshed tokens if `owner` still holds the lease and the version is still
    /// `expected_version`; bumps the version, marks the connection active, records `now` as the last
    /// refresh and clears the error and the lease. `None` when fenced out.
    async fn complete_refresh(
        &self,
        id: &str,
        owner: &str,
        expected_version: i64,
        tokens: &TokenSet,
        now: Timestamp,
    ) -> Result<Option<ConnectionRecord>, StoreError>;
    /// Records a failed refresh and releases the lease (if `owner` still holds it). A failure with
    /// `consent_required` marks the connection as needing consent; the stored tokens are kept.
    async fn fail_refresh(
        &self,
        id: &str,
        owner: &str,
        failure: &RefreshFailure,
    ) -> Result<bool, StoreError>;
    /// Releases a refresh lease without changing anything else (the holder found the refresh was
    /// no longer needed). False when `owner` did not hold it.
    async fn release_refresh_lease(&self, id: &str, owner: &str) -> Result<bool, StoreError>;
    /// Records when connections were last handed out (batched by the caller).
    async fn touch_connections(&self, used: &[(String, Timestamp)]) -> Result<(), StoreError>;

    /// Connections with a secret sealed under a data key other than `key_id`, in id order, with
    /// an id after `after` (a cursor: the last id of the previous batch), at most `limit`.
    async fn connections_sealed_with_other_key(
        &self,
        key_id: u32,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;
    /// Replaces the ciphertexts of a connection whose version is still `expected_version`, without
    /// bumping it (the tokens are the same, only re-sealed). False when the version moved.
    async fn reseal_connection(
        &self,
        id: &str,
        expected_version: i64,
        access: &Ciphertext,
        refresh: Option<&Ciphertext>,
    ) -> Result<bool, StoreError>;
    /// Re-seals several connections as [`ConnectionStore::reseal_connection`] does each, in as
    /// few writes as the store can (a key rotation's batch); how many were re-sealed.
    async fn reseal_connections(&self, rows: &[Reseal]) -> Result<u64, StoreError> {
        let mut done = 0;
        for r in rows {
            if self
                .reseal_connection(&r.id, r.expected_version, &r.access, r.refresh.as_ref())
                .await?
            {
                done += 1;
            }
        }
        Ok(done)
    }
}

/// A connection's tokens sealed again under another data key, for
/// [`ConnectionStore::reseal_connections`].
#[derive(Debug, Clone)]
pub struct Reseal {
    /// The connection.
    pub id: String,
    /// Its version when it was read: a connection written since is left alone.
    pub expected_version: i64,
    /// The access token, re-sealed.
    pub access: Ciphertext,
    /// The refresh token, re-sealed.
    pub refresh: Option<Ciphertext>,
}

/// Pending consent flows.
#[async_trait]
pub trait ConsentStateStore: Send + Sync {
    /// Stores a new pending flow, keeping at most [`MAX_PENDING_CONSENTS_PER_KEY`] per connection
    /// key (the oldest are forgotten), so that a client asking again and again cannot pile up rows.
    async fn insert_state(&self, state: &ConsentState) -> Result<(), StoreError>;
    /// Removes and returns a pending flow (single use: a second take finds nothing). Expiry is the
    /// caller's to check, so that it can say "expired" rather than "unknown".
    async fn take_state(&self, id: &str) -> Result<Option<ConsentState>, StoreError>;
    /// Deletes flows that expired before `now`; returns how many.
    async fn purge_expired_states(&self, now: Timestamp) -> Result<u64, StoreError>;
    /// Pending flows sealed under a data key other than `key_id`, in id order, with an id after
    /// `after`, at most `limit`.
    async fn states_sealed_with_other_key(
        &self,
        key_id: u32,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConsentState>, StoreError>;
    /// Replaces a pending flow's sealed PKCE verifier. False when the flow is gone.
    async fn reseal_state(&self, id: &str, verifier: &Ciphertext) -> Result<bool, StoreError>;
}

/// Admin API keys.
#[async_trait]
pub trait AdminKeyStore: Send + Sync {
    /// Inserts a key. `AlreadyExists` when the id or the hash is taken.
    async fn insert_admin_key(&self, key: &AdminKeyRecord) -> Result<(), StoreError>;
    /// Inserts `key` only if no admin key exists yet (atomic, even with several nodes starting at
    /// once). True when inserted.
    async fn insert_first_admin_key(&self, key: &AdminKeyRecord) -> Result<bool, StoreError>;
    /// Finds a key by the SHA-256 of its secret.
    async fn admin_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<AdminKeyRecord>, StoreError>;
    /// Finds a key by its id (the console's sessions name the key they act as).
    async fn admin_key_by_id(&self, id: &str) -> Result<Option<AdminKeyRecord>, StoreError>;
    /// Lists keys by id.
    async fn admin_keys(&self, page: &PageRequest) -> Result<Vec<AdminKeyRecord>, StoreError>;
    /// Deletes a key. `NotFound`.
    async fn delete_admin_key(&self, id: &str) -> Result<(), StoreError>;
}

/// OAuth clients registered by admins.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Inserts a client. `AlreadyExists`.
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    /// Reads one client.
    async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Lists clients by id.
    async fn clients(&self, page: &PageRequest) -> Result<Vec<ClientRecord>, StoreError>;
    /// Replaces a client. `NotFound`.
    async fn update_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    /// Deletes a client. `NotFound`.
    async fn delete_client(&self, id: &str) -> Result<(), StoreError>;
}

/// Trusted inbound issuers managed through the API (issuers from the config file are not stored).
#[async_trait]
pub trait IssuerStore: Send + Sync {
    /// Inserts an issuer. `AlreadyExists` when the id or the `issuer` value is taken.
    async fn insert_issuer(&self, issuer: &IssuerRecord) -> Result<(), StoreError>;
    /// Reads one issuer.
    async fn issuer(&self, id: &str) -> Result<Option<IssuerRecord>, StoreError>;
    /// All issuers (a short list).
    async fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError>;
    /// Replaces an issuer. `NotFound`; `AlreadyExists` when the new `issuer` value is taken.
    async fn update_issuer(&self, issuer: &IssuerRecord) -> Result<(), StoreError>;
    /// Deletes an issuer. `NotFound`.
    async fn delete_issuer(&self, id: &str) -> Result<(), StoreError>;
}

/// Data-encryption keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// All data keys.
    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError>;
    /// Inserts the first data key if there is none yet (several nodes may race at first start);
    /// returns the keys as they are after.
    async fn insert_first_data_key(
        &self,
        key: &DataKeyRecord,
    ) -> Result<Vec<DataKeyRecord>, StoreError>;
    /// Inserts a new key and makes it the only active one (a rotation). `AlreadyExists` when the
    /// id is taken (another node rotated at the same time: read the keys and try the next id).
    async fn insert_active_data_key(&self, key: &DataKeyRecord) -> Result<(), StoreError>;
    /// Replaces the wrapping of a data key (master-key rotation).
    async fn rewrap_data_key(
        &self,
        id: u32,
        master_key_id: &str,
        wrapped: &[u8],
    ) -> Result<(), StoreError>;
    /// Adds `n` to the number of secrets data key `id` sealed; returns the new total.
    async fn add_seals(&self, id: u32, n: u64) -> Result<u64, StoreError>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends events (one transaction). Shared, so that a backend can move them to another
    /// thread and the writer can retry with them, without copying.
    async fn append_audit(&self, events: Arc<[AuditEvent]>) -> Result<(), StoreError>;
    /// Reads events matching `query`, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;
    /// Reads the recorded decisions matching `query` (its app, time window, cursor and limit;
    /// the other filters are ignored) that carry their inputs, newest first: what a replay
    /// re-decides, read without the rest of each event.
    async fn recorded_decisions(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<RecordedDecision>, StoreError>;
    /// Counts the decisions in `[since, until)` per time bucket (`bucket_ms` wide, the first
    /// starting at `since`), app and outcome, with their latencies: what a dashboard charts,
    /// computed by the database, never by reading the events. Rows in no particular order; groups
    /// without a decision are absent.
    async fn audit_summary(
        &self,
        since: Timestamp,
        until: Timestamp,
        bucket_ms: i64,
    ) -> Result<Vec<AuditSummaryRow>, StoreError>;
    /// Adds counts of rejected requests (one transaction): a row per minute, surface and reason,
    /// its count increased when it exists.
    async fn add_rejected(&self, counts: &[RejectedCount]) -> Result<(), StoreError>;
    /// Counts of rejected requests in `[since, until)`, newest minute first, at most `limit`.
    async fn rejected(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<RejectedCount>, StoreError>;
    /// Deletes at most `limit` of the oldest decision events, rejected counts and management
    /// events older than `before` (a short transaction, so that writers never wait long); returns
    /// how many rows went. Retention calls it until it returns less than `limit`.
    async fn prune_audit(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError>;
}

/// One write of an all-or-nothing change set (see [`ApplyStore`]). Each has the meaning, the
/// checks and the changes published of the single-write method of the same name.
#[derive(Debug, Clone)]
pub enum Write {
    /// [`DirectoryStore::insert_role`].
    InsertRole(Role),
    /// [`DirectoryStore::update_role`].
    UpdateRole(Role),
    /// [`DirectoryStore::insert_tenant`].
    InsertTenant(TenantRecord),
    /// [`DirectoryStore::update_tenant`].
    UpdateTenant(TenantRecord),
    /// [`DirectoryStore::insert_user`].
    InsertUser(UserRecord),
    /// [`DirectoryStore::update_user`].
    UpdateUser(UserRecord),
    /// [`AppStore::insert_app`].
    InsertApp(AppRecord),
    /// [`AppStore::update_app`].
    UpdateApp {
        /// The new record.
        app: AppRecord,
        /// The revision it replaces.
        expected_revision: i64,
    },
    /// [`AppStore::insert_policy`].
    InsertPolicy {
        /// The policy.
        policy: PolicyRecord,
        /// The app's revision before this write.
        expected_app_revision: i64,
    },
    /// [`AppStore::update_policy`].
    UpdatePolicy {
        /// The policy.
        policy: PolicyRecord,
        /// The app's revision before this write.
        expected_app_revision: i64,
    },
    /// [`AppStore::delete_policy`].
    DeletePolicy {
        /// The app.
        app_id: String,
        /// The policy.
        id: String,
    },
    /// [`ManagementAuditStore::append_management`](crate::ManagementAuditStore::append_management).
    Management(ManagementEvent),
}

/// Change sets applied all or nothing (`apply`).
#[async_trait]
pub trait ApplyStore: Send + Sync {
    /// Applies every write, in order, in one transaction: all of them, or — when one fails, with
    /// its error — none. Changes are published after the commit.
    async fn apply_writes(&self, writes: &[Write]) -> Result<(), StoreError>;
}

/// Whether the backend answers.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// A cheap round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The backend's name, for logs and metrics (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
}

/// Every store of one backend, as trait objects: what services are built from.
#[derive(Clone)]
pub struct Stores {
    /// Apps and policies.
    pub apps: Arc<dyn AppStore>,
    /// Users, roles, tenants.
    pub directory: Arc<dyn DirectoryStore>,
    /// Credentials.
    pub connections: Arc<dyn ConnectionStore>,
    /// Pending consent flows.
    pub consent_states: Arc<dyn ConsentStateStore>,
    /// Admin API keys.
    pub admin_keys: Arc<dyn AdminKeyStore>,
    /// OAuth clients.
    pub clients: Arc<dyn ClientStore>,
    /// Trusted issuers.
    pub issuers: Arc<dyn IssuerStore>,
    /// Data keys.
    pub keys: Arc<dyn KeyStore>,
    /// Token-signing keys.
    pub signing_keys: Arc<dyn crate::SigningKeyStore>,
    /// Resource servers.
    pub resources: Arc<dyn crate::ResourceStore>,
    /// Single sign-on connections.
    pub sso: Arc<dyn crate::SsoStore>,
    /// The authorization server's codes, refresh tokens, consents and passwords.
    pub grants: Arc<dyn crate::GrantStore>,
    /// Audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Management audit (who changed what).
    pub management: Arc<dyn crate::ManagementAuditStore>,
    /// All-or-nothing change sets.
    pub apply: Arc<dyn ApplyStore>,
    /// Change notifications.
    pub changes: Arc<dyn ChangeFeed>,
    /// Health.
    pub health: Arc<dyn StoreHealth>,
}

impl Stores {
    /// Builds the set from one backend that implements every trait.
    pub fn from_backend<B>(backend: Arc<B>, changes: Arc<dyn ChangeFeed>) -> Self
    where
        B: AppStore
            + DirectoryStore
            + ConnectionStore
            + ConsentStateStore
            + AdminKeyStore
            + ClientStore
            + IssuerStore
            + KeyStore
            + crate::SigningKeyStore
            + crate::ResourceStore
            + crate::SsoStore
            + crate::GrantStore
            + AuditStore
            + crate::ManagementAuditStore
            + ApplyStore
            + StoreHealth
            + 'static,
    {
        Self {
            apps: backend.clone(),
            directory: backend.clone(),
            connections: backend.clone(),
            consent_states: backend.clone(),
            admin_keys: backend.clone(),
            clients: backend.clone(),
            issuers: backend.clone(),
            keys: backend.clone(),
            signing_keys: backend.clone(),
            resources: backend.clone(),
            sso: backend.clone(),
            grants: backend.clone(),
            audit: backend.clone(),
            management: backend.clone(),
            apply: backend.clone(),
            health: backend,
            changes,
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("backend", &self.health.backend())
            .finish_non_exhaustive()
    }
}
