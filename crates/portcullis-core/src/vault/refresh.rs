//! Refreshing: a token fresh enough to hand out, one refresh per connection per cluster (single flight on a node, a row lease across nodes), narrowing, forced refresh.

use super::*;

impl Core {
    /// Returns the connection with a token fresh enough to hand out, refreshing it when it expires
    /// within the refresh window, has expired, or `force` is set.
    pub(crate) async fn ensure_fresh(
        &self,
        app: &AppRecord,
        conn: Arc<ConnectionRecord>,
        force: bool,
    ) -> Result<Arc<ConnectionRecord>, RefreshError> {
        let now = self.clock.now();
        let due = conn
            .expires_at
            .is_some_and(|e| e.millis_since(now) <= self.settings.refresh_window_secs * 1000);
        if !force && !due {
            return Ok(conn);
        }
        if conn.refresh.is_none() {
            return match conn.expires_at {
                Some(e) if e <= now => Err(RefreshError::Expired),
                _ => Ok(conn),
            };
        }
        let forced_at = force.then_some(now);
        self.single_flight(format!("refresh:{}", conn.id), {
            let app = app.clone();
            move |core| {
                async move {
                    core.refresh_cluster(&app, conn, forced_at, None)
                        .await
                        .map(|(c, _)| c)
                }
                .boxed()
            }
        })
        .await
    }

    /// A token narrowed to `scopes` (a refresh with a `scope` subset, RFC 6749 §6), remembered in
    /// memory until it is about to expire.
    pub(crate) async fn narrowed_token(
        &self,
        app: &AppRecord,
        conn: &Arc<ConnectionRecord>,
        scopes: &[String],
    ) -> Result<Arc<Narrowed>, RefreshError> {
        let mut sorted = scopes.to_vec();
        sorted.sort();
        let cache_key = (conn.id.clone(), sorted.join(" "));
        let now = self.clock.now();
        if let Some(hit) = self.narrowed.get(&cache_key)
            && hit
                .expires_at
                .is_none_or(|e| e.millis_since(now) > self.settings.refresh_window_secs * 1000)
        {
            return Ok(hit);
        }
        let result: Result<Arc<ConnectionRecord>, RefreshError> = self
            .single_flight(format!("narrow:{}:{}", conn.id, cache_key.1), {
                let app = app.clone();
                let conn = conn.clone();
                let scopes = sorted.clone();
                move |core| {
                    async move {
                        let (c, narrowed) = core
                            .refresh_cluster(&app, conn, None, Some(&scopes))
                            .await?;
                        if let Some(n) = narrowed {
                            core.narrowed
                                .insert((c.id.clone(), scopes.join(" ")), Arc::new(n));
                        }
                        Ok(c)
                    }
                    .boxed()
                }
            })
            .await;
        result?;
        self.narrowed.get(&cache_key).ok_or_else(|| {
            RefreshError::Unavailable("the narrowed token could not be obtained".into())
        })
    }

    /// Runs `work` once per key on this node: concurrent callers share its result. The work runs
    /// on its own task, so a caller that goes away cannot abandon a refresh half-way.
    pub(super) async fn single_flight<F>(
        &self,
        key: String,
        work: F,
    ) -> Result<Arc<ConnectionRecord>, RefreshError>
    where
        F: FnOnce(Arc<Core>) -> BoxFuture<'static, Result<Arc<ConnectionRecord>, RefreshError>>
            + Send
            + 'static,
    {
        let shared = {
            let mut inflight = self
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(f) = inflight.get(&key) {
                f.clone()
            } else {
                let core = self
                    .me
                    .upgrade()
                    .ok_or_else(|| RefreshError::Internal("the server is shutting down".into()))?;
                let key2 = key.clone();
                let core2 = core.clone();
                let handle = tokio::spawn(async move {
                    let result = work(core2.clone()).await;
                    core2
                        .inflight
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&key2);
                    result
                });
                let fut: BoxFuture<'static, Result<Arc<ConnectionRecord>, RefreshError>> =
                    async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(RefreshError::Internal(format!(
                                "a refresh task failed: {e}"
                            )))
                        })
                    }
                    .boxed();
                let shared = fut.shared();
                inflight.insert(key, shared.clone());
                shared
            }
        };
        shared.await
    }

    /// The cluster-wide refresh: take the connection's lease (or wait for the node holding it),
    /// call the provider once, write the new tokens fenced by the version read.
    pub(super) async fn refresh_cluster(
        &self,
        app: &AppRecord,
        observed: Arc<ConnectionRecord>,
        forced_at: Option<Timestamp>,
        narrow: Option<&[String]>,
    ) -> Result<(Arc<ConnectionRecord>, Option<Narrowed>), RefreshError> {
        let store = &self.stores.connections;
        let owner = format!("{}:{}", self.settings.node_id, random_token(6));
        let lease_ms = self.settings.refresh_lease_secs * 1000;
        let deadline = Instant::now()
            + Duration::from_millis(u64::try_from(lease_ms).unwrap_or(30_000) + 5_000);
        let mut poll = Duration::from_millis(10);
        let mut tried_after_failure = false;
        loop {
            let now = self.clock.now();
            match store
                .acquire_refresh_lease(&observed.id, &owner, now, now.add_millis(lease_ms))
                .await?
            {
                Some(row) => {
                    if narrow.is_none() && self.refreshed_since(&row, &observed, forced_at) {
                        store.release_refresh_lease(&row.id, &owner).await?;
                        return Ok((Arc::new(row), None));
                    }
                    if row.status == ConnectionStatus::ConsentRequired {
                        store.release_refresh_lease(&row.id, &owner).await?;
                        return Err(RefreshError::ConsentRequired);
                    }
                    return self.refresh_held(app, row, &owner, narrow).await;
                }
                None => {
                    // Another node (or task) holds the lease: wait for its result.
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(Duration::from_millis(100));
                    let Some(row) = store.connection_by_id(&observed.id).await? else {
                        return Err(RefreshError::Gone);
                    };
                    if narrow.is_none() && self.refreshed_since(&row, &observed, forced_at) {
                        return Ok((Arc::new(row), None));
                    }
                    if row.lease.is_none() {
                        if row.status == ConnectionStatus::ConsentRequired {
                            return Err(RefreshError::ConsentRequired);
                        }
                        if row.last_refresh_error.is_some() && row.version == observed.version {
                            // The holder failed; try once ourselves, then give up.
                            if tried_after_failure {
                                return Err(RefreshError::Unavailable(
                                    row.last_refresh_error.unwrap_or_default(),
                                ));
                            }
                            tried_after_failure = true;
                        }
                    }
                    if Instant::now() > deadline {
                        return Err(RefreshError::Unavailable(
                            "waited too long for another node's refresh".into(),
                        ));
                    }
                }
            }
        }
    }

    /// Whether `row` holds tokens newer than what `observed` held and fresh enough.
    pub(super) fn refreshed_since(
        &self,
        row: &ConnectionRecord,
        observed: &ConnectionRecord,
        forced_at: Option<Timestamp>,
    ) -> bool {
        if row.version <= observed.version {
            return false;
        }
        match forced_at {
            Some(t) => row.last_refresh_at.is_some_and(|r| r >= t) || row.updated_at >= t,
            None => row.expires_at.is_none_or(|e| {
                e.millis_since(self.clock.now()) > self.settings.refresh_window_secs * 1000
            }),
        }
    }

    /// Writes a refresh's result, retrying a failed write while the lease is held: the provider
    /// may have rotated the refresh token, and the old one no longer works.
    pub(super) async fn store_refresh(
        &self,
        row: &ConnectionRecord,
        owner: &str,
        tokens: &TokenSet,
        now: Timestamp,
        held_until: Instant,
    ) -> Result<Option<ConnectionRecord>, RefreshError> {
        let store = &self.stores.connections;
        let mut wait = STORE_RETRY_FIRST;
        loop {
            match store
                .complete_refresh(&row.id, owner, row.version, tokens, now)
                .await
            {
                Ok(stored) => return Ok(stored),
                Err(e) if Instant::now() + wait < held_until => {
                    metrics::counter!("portcullis_refresh_write_retries_total").increment(1);
                    tracing::warn!(connection = %row.id, error = %e, "writing refreshed tokens failed; retrying while the lease is held");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(connection = %row.id, error = %e, "writing refreshed tokens failed; a rotated refresh token may be lost");
                    return Err(e.into());
                }
            }
        }
    }

    /// Refreshes while holding the lease.
    pub(super) async fn refresh_held(
        &self,
        app: &AppRecord,
        row: ConnectionRecord,
        owner: &str,
        narrow: Option<&[String]>,
    ) -> Result<(Arc<ConnectionRecord>, Option<Narrowed>), RefreshError> {
        let store = &self.stores.connections;
        // The lease was taken just now; keep a margin so the last write lands before it lapses.
        let held_until = Instant::now()
            + Duration::from_millis(
                u64::try_from(self.settings.refresh_lease_secs * 1000)
                    .unwrap_or(0)
                    .saturating_sub(1000),
            );
        let key = row.key.clone();
        let release_with = |error: String, consent: bool| {
            let id = row.id.clone();
            let owner = owner.to_owned();
            async move {
                if let Err(e) = store
                    .fail_refresh(
                        &id,
                        &owner,
                        &RefreshFailure {
                            error,
                            consent_required: consent,
                        },
                    )
                    .await
                {
                    tracing::warn!(error = %e, "recording a refresh failure failed");
                }
            }
        };
        let Some(sealed_rt) = &row.refresh else {
            release_with("no refresh token is stored".into(), false).await;
            return Err(RefreshError::Expired);
        };
        let opened = async {
            let rt = self
                .sealer
                .open(sealed_rt, &connection_aad(&key, "refresh"))
                .await?;
            let secret = self.app_client_secret(app).await?;
            Ok::<_, ServiceError>((rt, secret))
        }
        .await;
        let (rt, secret) = match opened {
            Ok(v) => v,
            Err(e) => {
                release_with("cannot open the stored refresh token".into(), false).await;
                return Err(e.into());
            }
        };
        let rt = String::from_utf8_lossy(rt.expose()).into_owned();
        metrics::counter!("portcullis_provider_refresh_total", "app" => app.id.clone())
            .increment(1);
        let resp = match self
            .provider
            .refresh(app, secret.as_ref(), &rt, narrow)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let consent = e.is_invalid_grant();
                tracing::warn!(app = %app.id, connection = %row.id, error = %e, "refresh failed");
                release_with(e.to_string(), consent).await;
                return Err(if consent {
                    RefreshError::ConsentRequired
                } else {
                    RefreshError::Unavailable(e.to_string())
                });
            }
        };
        let now = self.clock.now();
        let tokens = match self.token_set(&row, &resp, &rt, narrow.is_some()) {
            Ok(t) => t,
            Err(e) => {
                release_with("cannot seal the refreshed tokens".into(), false).await;
                return Err(e.into());
            }
        };
        let narrowed = narrow.map(|scopes| Narrowed {
            access_token: resp.access_token.clone(),
            token_type: resp.token_type.clone(),
            expires_at: resp.expires_in.map(|s| now.add_secs(s)),
            scopes: resp.granted_scopes(scopes),
        });
        match self
            .store_refresh(&row, owner, &tokens, now, held_until)
            .await?
        {
            Some(stored) => Ok((Arc::new(stored), narrowed)),
            None => {
                // Fenced out (our lease lapsed and someone else refreshed): theirs is newer.
                tracing::warn!(connection = %row.id, "a refresh was fenced out by a newer one");
                let current = store
                    .connection_by_id(&row.id)
                    .await?
                    .ok_or(RefreshError::Gone)?;
                Ok((Arc::new(current), narrowed))
            }
        }
    }

    /// The tokens to store after a refresh. A narrowing refresh keeps the stored (broader) access
    /// token and stores only a rotated refresh token.
    pub(super) fn token_set(
        &self,
        row: &ConnectionRecord,
        resp: &TokenResponse,
        old_rt: &str,
        narrowing: bool,
    ) -> Result<TokenSet, ServiceError> {
        let now = self.clock.now();
        let access_aad = connection_aad(&row.key, "access");
        let refresh_aad = connection_aad(&row.key, "refresh");
        let rt = resp.refresh_token.as_ref().map_or(old_rt, |r| r.expose());
        let refresh = Some(self.sealer.seal(rt.as_bytes(), &refresh_aad)?);
        if narrowing {
            let access = self
                .sealer
                .open_cached(&row.access, &access_aad)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            return Ok(TokenSet {
                access: self.sealer.seal(access.expose(), &access_aad)?,
                refresh,
                token_type: row.token_type.clone(),
                expires_at: row.expires_at,
                scopes: row.scopes.clone(),
            });
        }
        Ok(TokenSet {
            access: self
                .sealer
                .seal(resp.access_token.expose().as_bytes(), &access_aad)?,
            refresh,
            token_type: resp.token_type.clone().or_else(|| row.token_type.clone()),
            expires_at: resp.expires_in.map(|s| now.add_secs(s)),
            scopes: resp.granted_scopes(&row.scopes),
        })
    }

    /// Forces a refresh of one connection now (an admin action).
    pub async fn force_refresh_connection(&self, id: &str) -> Result<ConnectionInfo, ServiceError> {
        let conn = self
            .stores
            .connections
            .connection_by_id(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("connection", id))?;
        if conn.kind != CredentialKind::OAuth {
            return Err(ServiceError::Conflict {
                code: "not_refreshable",
                message: "API keys are not refreshed".into(),
            });
        }
        if conn.refresh.is_none() {
            return Err(ServiceError::Conflict {
                code: "not_refreshable",
                message: "the connection has no refresh token".into(),
            });
        }
        let app = self
            .stores
            .apps
            .app(&conn.key.app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", &conn.key.app_id))?;
        match self.ensure_fresh(&app, Arc::new(conn), true).await {
            Ok(c) => Ok(ConnectionInfo::from(c.as_ref())),
            Err(RefreshError::ConsentRequired) => Err(ServiceError::Conflict {
                code: "consent_required",
                message: "the provider rejected the refresh token; the connection now needs the user's consent".into(),
            }),
            Err(RefreshError::Unavailable(m)) => Err(ServiceError::Unavailable(m)),
            Err(RefreshError::Gone) => Err(ServiceError::not_found("connection", id)),
            Err(e) => Err(ServiceError::Internal(e.to_string())),
        }
    }
}
