//! Who is calling: the admin behind a management call, or the bearer token of an outbound call.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use std::marker::PhantomData;

use portcullis_core::admin::AdminScope;
use portcullis_core::{AdminIdentity, ServiceError};

use crate::AppState;
use crate::error::ApiError;

/// The `Authorization: Bearer` credential of a request, if any. Any other scheme, a malformed
/// header, or several Authorization headers count as no credential.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// The bearer token of an outbound call (verified by the service, which also audits a missing one).
#[derive(Debug, Clone)]
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(bearer(parts).map(str::to_owned)))
    }
}

/// An authenticated admin whose key holds the scope `N` names: every management handler takes
/// one as its first argument, so its signature states the scope it needs. The key is the bearer
/// credential or, without one, the admin console's session cookie (see [`crate::console`]).
/// Without a valid key: 401; with a key lacking the scope: 403 `insufficient_scope`, naming it; a
/// console request that changes something without the session's CSRF token: 403 `csrf_mismatch`.
#[derive(Debug, Clone)]
pub struct Admin<N>(pub AdminIdentity, pub PhantomData<N>);

impl<N: Need> FromRequestParts<AppState> for Admin<N> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A bearer key first; without one, the console's session cookie (its CSRF token checked
        // on changing requests); with neither, the bearer key's 401.
        let mut identity = match bearer(parts) {
            None if crate::console::has_session(parts) => {
                crate::console::authenticate(state, parts).await?
            }
            key => state.core.authenticate_admin(key).await?,
        };
        N::check(&identity)?;
        identity.request_id = parts
            .extensions
            .get::<crate::RequestId>()
            .map(|r| r.0.clone());
        Ok(Self(identity, PhantomData))
    }
}

/// What a management operation needs of the admin key.
pub trait Need: Send + Sync + 'static {
    /// Refuses a key that may not do it.
    fn check(admin: &AdminIdentity) -> Result<(), ServiceError>;
}

/// The needs of management operations, one type each (see [`AdminScope`]).
pub mod need {
    use super::{AdminIdentity, AdminScope, Need, ServiceError};

    macro_rules! needs {
        ($($(#[$doc:meta])* $name:ident => $check:ident($scope:ident);)*) => {$(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Need for $name {
                fn check(admin: &AdminIdentity) -> Result<(), ServiceError> {
                    admin.$check(AdminScope::$scope)
                }
            }
        )*};
    }

    needs! {
        /// Managing admin keys: `admin` only.
        AdminKeys => require(Admin);
        /// Changing outbound apps.
        Apps => require(Apps);
        /// Reading outbound apps.
        ReadApps => require_read(Apps);
        /// Changing policies.
        Policies => require(Policies);
        /// Reading policies, and the simulator.
        ReadPolicies => require_read(Policies);
        /// Changing connections.
        Vault => require(Vault);
        /// Reading connections' metadata.
        ReadVault => require_read(Vault);
        /// Changing users, roles, tenants and identity links.
        Directory => require(Directory);
        /// Reading the directory.
        ReadDirectory => require_read(Directory);
        /// Changing trusted issuers.
        Issuers => require(Issuers);
        /// Reading trusted issuers.
        ReadIssuers => require_read(Issuers);
        /// Changing OAuth clients.
        Clients => require(Clients);
        /// Reading OAuth clients.
        ReadClients => require_read(Clients);
        /// Reading the audit log.
        ReadAudit => require_read(Audit);
        /// Rotating data keys.
        Keys => require(Keys);
        /// Reading the data keys' status.
        ReadKeys => require_read(Keys);
    }

    /// Any valid admin key: the operation checks the scopes of what it does itself (`apply`
    /// needs `apps`, `policies` or `directory` according to what the desired state lists).
    #[derive(Debug, Clone, Copy)]
    pub struct ByContent;

    impl Need for ByContent {
        fn check(_: &AdminIdentity) -> Result<(), ServiceError> {
            Ok(())
        }
    }
}
