//! Who is asking: the inbound token verified, its scope checked, the principal found.

use super::*;

/// Who is asking, once the inbound token is verified and the directory consulted.
pub(crate) struct Caller {
    pub(crate) token: Arc<VerifiedToken>,
    /// The directory user the token's identity (issuer and subject) is linked to, if any.
    pub(crate) user: Option<Arc<UserRecord>>,
    /// The principal id: the directory user's id, or the external subject's (issuer-qualified)
    /// id. Connections, pending consents and audit records are keyed by it.
    pub(crate) id: String,
}

impl Caller {
    /// The roles that count: live from the directory, else mapped from the token.
    /// Refuses a disabled directory user (on every user path: token, exchange, connect).
    pub(crate) fn check_enabled(&self) -> Result<(), Refusal> {
        match &self.user {
            Some(u) if u.disabled => Err(Refusal::Forbidden {
                reason: ForbiddenReason::UserDisabled,
                message: "the user is disabled".into(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn roles(&self, tenant: Option<&str>) -> Vec<String> {
        self.roles_ref(tenant).into_owned()
    }

    /// The roles that count, borrowed when no tenant adds any (the common case: no copy).
    pub(crate) fn roles_ref(&self, tenant: Option<&str>) -> std::borrow::Cow<'_, [String]> {
        match (&self.user, tenant) {
            (Some(u), None) => std::borrow::Cow::Borrowed(&u.roles),
            (Some(u), Some(_)) => std::borrow::Cow::Owned(u.effective_roles(tenant)),
            (None, _) => std::borrow::Cow::Borrowed(&self.token.token_roles),
        }
    }

    /// Whether the caller belongs to `tenant`.
    pub(crate) fn in_tenant(&self, tenant: &str) -> bool {
        match &self.user {
            Some(u) => u.is_member_of(tenant),
            None => self.token.tenants.iter().any(|t| t == tenant),
        }
    }
}

/// The connection a token request looks for first: the caller's own, of the app, in the
/// request's tenant. Where the store's reads overlap (a database server: each read is a round
/// trip), a caller not in the caches has it read beside the caller, not after.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted<'a> {
    pub(crate) app_id: &'a str,
    pub(crate) tenant: Option<&'a str>,
}

impl<'a> Wanted<'a> {
    /// Its key, for the principal `user`.
    fn key(self, user: &'a str) -> crate::cache::ConnectionKeyRef<'a> {
        crate::cache::ConnectionKeyRef {
            app_id: self.app_id,
            user_id: Some(user),
            tenant_id: self.tenant,
        }
    }
}

impl Core {
    /// Counts a request of the principal `id`: `RateLimited` when it is over its limit.
    pub(crate) fn rate_limit_subject(&self, id: &str) -> Result<(), Refusal> {
        match &self.per_subject {
            None => Ok(()),
            Some(limiter) => limiter
                .check(id, Instant::now())
                .map_err(|retry_after| Refusal::RateLimited { retry_after }),
        }
    }

    /// Verifies the bearer token, checks its scope, and reads the user from the directory (and
    /// the `wanted` connection beside it, see [`Wanted`]).
    pub(crate) async fn authenticate_caller(
        &self,
        bearer: Option<&str>,
        wanted: Option<Wanted<'_>>,
    ) -> Result<Caller, Refusal> {
        let Some(bearer) = bearer else {
            return Err(Refusal::InvalidToken {
                code: None,
                message: "an inbound access token is required (Authorization: Bearer ...)".into(),
            });
        };
        let token = self
            .verify_inbound(bearer)
            .await
            .map_err(|e| Refusal::InvalidToken {
                code: Some(e.code()),
                message: e.to_string(),
            })?;
        if !token.has_scope(&self.settings.fetch_scope) {
            return Err(Refusal::InsufficientScope {
                scope: self.settings.fetch_scope.clone(),
            });
        }
        let (user, id) = self.resolve_identity(&token, wanted).await?;
        Ok(Caller { token, user, id })
    }

    /// Finds who a verified token is: Portcullis's own tokens name directory users by id; any
    /// other issuer's subject is a directory user only through an identity link, else an
    /// external subject of that issuer.
    pub(crate) async fn resolve_identity(
        &self,
        token: &VerifiedToken,
        wanted: Option<Wanted<'_>>,
    ) -> Result<(Option<Arc<UserRecord>>, String), ServiceError> {
        let wanted = wanted.filter(|_| self.stores.connections.reads_overlap());
        if self.inbound.is_local_issuer(&token.issuer) {
            let id = token.subject.as_str();
            let user = match wanted {
                // The user's id is the subject: the connection is read by its key.
                Some(w) if !self.caches.users.holds(id) => {
                    self.beside_connection(self.directory_user(id), w.key(id))
                        .await?
                }
                _ => self.directory_user(id).await?,
            };
            return Ok((user, token.subject.clone()));
        }
        let directory = self.stores.directory.clone();
        let (issuer, subject) = (token.issuer.as_str(), token.subject.as_str());
        let identity = crate::cache::IdentityRef(issuer, subject);
        let load = self.caches.identities.get_or_load(
            &identity,
            || (issuer.to_owned(), subject.to_owned()),
            || async move {
                Ok::<_, ServiceError>(
                    directory
                        .user_by_identity(issuer, subject)
                        .await?
                        .map(Arc::new),
                )
            },
        );
        let wanted = wanted.filter(|_| !self.caches.identities.holds(&identity));
        let user = match (wanted, token.found.get()) {
            (None, _) => load.await?,
            // The token was read before (a change to some user, most often another, dropped the
            // identity's read): the principal it was is a hint, never trusted for who is asking,
            // naming the connection to read beside it by key, as any read (nothing when cached).
            (Some(w), Some(found)) => {
                let principal = match found {
                    Some(user) => std::borrow::Cow::Borrowed(user.as_str()),
                    None => std::borrow::Cow::Owned(crate::external_principal(issuer, subject)),
                };
                self.beside_connection(load, w.key(&principal)).await?
            }
            // Read by the identity: the connection of the user the identity links, if any.
            (Some(w), None) => {
                let mark = self.caches.connections.mark();
                let store = self.stores.connections.clone();
                let (user, conn) = tokio::join!(
                    load,
                    store.connection_by_identity(w.app_id, issuer, subject, w.tenant)
                );
                let user = user?;
                // Cached only as the connection of the user the identity's read found (the two
                // reads are apart: a link changed between them caches nothing).
                if let (Some(u), Ok(Some(c))) = (&user, conn)
                    && quick_cache::Equivalent::equivalent(&w.key(&u.id), &c.key)
                {
                    let key = c.key.clone();
                    self.caches
                        .connections
                        .insert_loaded(mark, || key, Some(Arc::new(c)));
                }
                user
            }
        };
        if token.found.get().is_none() {
            let _ = token.found.set(user.as_ref().map(|u| u.id.clone()));
        }
        let id = match &user {
            Some(u) => u.id.clone(),
            None => crate::external_principal(issuer, subject),
        };
        Ok((user, id))
    }

    /// `read`, with the connection `key` read into the cache beside it, as any read (nothing
    /// when it is cached). Its outcome is the cache's: the request reads it again if it failed.
    async fn beside_connection<T>(
        &self,
        read: impl std::future::Future<Output = T>,
        key: crate::cache::ConnectionKeyRef<'_>,
    ) -> T {
        tokio::join!(read, self.cached_connection(key)).0
    }

    /// The user's directory entry (live, from memory when nothing changed).
    pub(crate) async fn directory_user(
        &self,
        id: &str,
    ) -> Result<Option<Arc<UserRecord>>, ServiceError> {
        let directory = self.stores.directory.clone();
        self.caches
            .users
            .get_or_load(
                id,
                || id.to_owned(),
                || async move { Ok::<_, ServiceError>(directory.user(id).await?.map(Arc::new)) },
            )
            .await
    }
}
