//! Records to store.

use std::any::Any;

use portcullis_domain::{
    AppKind, AppRecord, Ciphertext, ConnectionKey, ConnectionRecord, ConnectionStatus,
    CredentialKind, OAuthSettings, PolicyRecord, ScopeDef, Stores, Timestamp, UserRecord,
};
use portcullis_policy::PolicyDocument;

/// A fresh set of stores, and whatever must live as long as they do (a temporary directory, a
/// database to drop).
pub struct TestStores {
    /// The stores under test.
    pub stores: Stores,
    /// Dropped after the test.
    pub guard: Box<dyn Any + Send>,
}

impl std::fmt::Debug for TestStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStores").finish_non_exhaustive()
    }
}

pub(crate) const T0: Timestamp = Timestamp::from_millis(1_790_000_000_000);

pub(crate) fn app(id: &str) -> AppRecord {
    AppRecord {
        id: id.to_owned(),
        name: format!("App {id}"),
        description: Some("an app".to_owned()),
        kind: AppKind::OAuth,
        settings: OAuthSettings {
            client_id: Some("client".to_owned()),
            token_url: Some("https://provider.example/token".to_owned()),
            scopes: vec![
                ScopeDef {
                    name: "read".to_owned(),
                    description: None,
                },
                ScopeDef {
                    name: "write".to_owned(),
                    description: Some("write things".to_owned()),
                },
            ],
            pkce: true,
            ..OAuthSettings::default()
        },
        client_secret: Some(sealed(1, b"client-secret")),
        revision: 1,
        created_at: T0,
        updated_at: T0,
    }
}

pub(crate) fn policy(app_id: &str, id: &str, name: &str) -> PolicyRecord {
    let document = PolicyDocument::from_json(&serde_json::json!({
        "name": name,
        "conditions": [{"source": "userRoles", "operator": "contains", "value": "viewer"}],
        "scopes": ["read"],
    }))
    .expect("a valid policy document");
    PolicyRecord {
        id: id.to_owned(),
        app_id: app_id.to_owned(),
        document,
        created_at: T0,
        updated_at: T0,
    }
}

pub(crate) fn user(id: &str) -> UserRecord {
    UserRecord {
        id: id.to_owned(),
        identities: vec![],
        email: Some(format!("{id}@example.com")),
        name: Some(format!("User {id}")),
        roles: vec![],
        tenants: vec![],
        attributes: serde_json::Map::new(),
        disabled: false,
        created_at: T0,
        updated_at: T0,
    }
}

pub(crate) fn sealed(key_id: u32, bytes: &[u8]) -> Ciphertext {
    Ciphertext {
        key_id,
        bytes: bytes.to_vec(),
    }
}

pub(crate) fn connection(id: &str, key: ConnectionKey) -> ConnectionRecord {
    ConnectionRecord {
        id: id.to_owned(),
        key,
        kind: CredentialKind::OAuth,
        status: ConnectionStatus::Active,
        scopes: vec!["read".to_owned()],
        token_type: Some("Bearer".to_owned()),
        access: sealed(1, b"access-1"),
        refresh: Some(sealed(1, b"refresh-1")),
        expires_at: Some(T0.add_secs(3600)),
        provider_subject: Some("provider-sub".to_owned()),
        version: 0,
        lease: None,
        last_refresh_at: None,
        last_refresh_error: None,
        last_used_at: None,
        granted_by: Some("user:u1".to_owned()),
        created_at: T0,
        updated_at: T0,
    }
}
