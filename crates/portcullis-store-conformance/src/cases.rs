//! The cases. Each takes a fresh, empty set of stores.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::{
    AdminKeyRecord, AuditEvent, AuditOutcome, AuditQuery, Change, ChangeEvent, ClientRecord,
    ConnectionKey, ConnectionRecord, ConnectionStatus, ConsentState, DataKeyRecord, DecisionInputs,
    Identity, IssuerRecord, ManagementEvent, ManagementQuery, PageRequest, PolicyVerdict,
    RefreshFailure, RejectedCount, Reseal, Role, StoreError, Stores, TenantMembership,
    TenantRecord, TokenSet, Write,
};

use crate::fixtures::{T0, app, connection, policy, sealed, user};

fn page(after: Option<&str>, limit: u32) -> PageRequest {
    PageRequest {
        after: after.map(str::to_owned),
        limit,
    }
}

fn role(name: &str) -> Role {
    Role {
        name: name.to_owned(),
        description: Some(format!("the {name} role")),
        created_at: T0,
        updated_at: T0,
    }
}

fn tenant(id: &str) -> TenantRecord {
    TenantRecord {
        id: id.to_owned(),
        name: format!("Tenant {id}"),
        attributes: serde_json::Map::new(),
        created_at: T0,
        updated_at: T0,
    }
}

/// An app survives a round trip exactly, and duplicate ids are refused.
pub async fn apps_round_trip(s: &Stores) {
    let a = app("calendar");
    s.apps.insert_app(&a).await.unwrap();
    assert_eq!(s.apps.app("calendar").await.unwrap(), Some(a.clone()));
    assert_eq!(s.apps.app("nope").await.unwrap(), None);
    assert!(matches!(
        s.apps.insert_app(&a).await,
        Err(StoreError::AlreadyExists { entity: "app" })
    ));
}

/// Lists are ordered by id and paginate with an exclusive cursor.
pub async fn apps_paginate_by_id(s: &Stores) {
    for id in ["c", "a", "e", "b", "d"] {
        s.apps.insert_app(&app(id)).await.unwrap();
    }
    let first = s.apps.apps(&page(None, 2)).await.unwrap();
    assert_eq!(ids(&first), ["a", "b"]);
    let second = s.apps.apps(&page(Some("b"), 2)).await.unwrap();
    assert_eq!(ids(&second), ["c", "d"]);
    let last = s.apps.apps(&page(Some("d"), 2)).await.unwrap();
    assert_eq!(ids(&last), ["e"]);
    assert!(s.apps.apps(&page(Some("e"), 2)).await.unwrap().is_empty());
}

fn ids(apps: &[portcullis_domain::AppRecord]) -> Vec<&str> {
    apps.iter().map(|a| a.id.as_str()).collect()
}

/// An update names the revision it read; a stale one is a conflict and changes nothing.
pub async fn app_update_checks_revision(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let mut a = s.apps.app("x").await.unwrap().unwrap();
    a.name = "Renamed".into();
    a.client_secret = None;
    a.revision = 2;
    a.updated_at = T0.add_secs(5);
    s.apps.update_app(&a, 1).await.unwrap();
    assert_eq!(s.apps.app("x").await.unwrap(), Some(a.clone()));

    let mut stale = a.clone();
    stale.name = "Stale".into();
    stale.revision = 2;
    assert!(matches!(
        s.apps.update_app(&stale, 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.apps.app("x").await.unwrap().unwrap().name, "Renamed");

    let mut ghost = app("ghost");
    ghost.revision = 2;
    assert!(matches!(
        s.apps.update_app(&ghost, 1).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Deleting an app deletes its policies, connections and pending consents.
pub async fn app_delete_cascades(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    s.apps
        .insert_policy(&policy("x", "p1", "P"), 1)
        .await
        .unwrap();
    s.connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    s.consent_states
        .insert_state(&state("st", "x", T0.add_secs(600)))
        .await
        .unwrap();
    s.apps.delete_app("x").await.unwrap();
    assert_eq!(s.apps.app("x").await.unwrap(), None);
    assert_eq!(s.apps.policy("x", "p1").await.unwrap(), None);
    assert_eq!(s.connections.connection_by_id("c1").await.unwrap(), None);
    assert_eq!(s.consent_states.take_state("st").await.unwrap(), None);
    assert!(matches!(
        s.apps.delete_app("x").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Policy writes bump the app's revision and check the one the caller read.
pub async fn policies_bump_app_revision(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    s.apps
        .insert_policy(&policy("x", "p1", "One"), 1)
        .await
        .unwrap();
    assert_eq!(s.apps.app("x").await.unwrap().unwrap().revision, 2);
    assert!(matches!(
        s.apps.insert_policy(&policy("x", "p2", "Two"), 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.apps.policy("x", "p2").await.unwrap(), None);
    s.apps
        .insert_policy(&policy("x", "p2", "Two"), 2)
        .await
        .unwrap();
    let (a, ps) = s.apps.app_with_policies("x").await.unwrap().unwrap();
    assert_eq!(a.revision, 3);
    assert_eq!(ps.len(), 2);
    assert_eq!(ps[0].document.name, "One");
    assert!(matches!(
        s.apps
            .insert_policy(&policy("nope", "p3", "Three"), 1)
            .await,
        Err(StoreError::NotFound { entity: "app" })
    ));
    assert_eq!(s.apps.app_with_policies("nope").await.unwrap(), None);
}

/// Two policies of one app cannot share a name (case-insensitive); other apps may reuse it.
pub async fn policy_names_are_unique_per_app(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    s.apps.insert_app(&app("y")).await.unwrap();
    s.apps
        .insert_policy(&policy("x", "p1", "Viewers"), 1)
        .await
        .unwrap();
    assert!(matches!(
        s.apps.insert_policy(&policy("x", "p2", "viewers"), 2).await,
        Err(StoreError::AlreadyExists {
            entity: "policy name"
        })
    ));
    assert!(matches!(
        s.apps.insert_policy(&policy("x", "p1", "Other"), 2).await,
        Err(StoreError::AlreadyExists { entity: "policy" })
    ));
    // A refused write does not bump the revision.
    assert_eq!(s.apps.app("x").await.unwrap().unwrap().revision, 2);
    s.apps
        .insert_policy(&policy("y", "p3", "Viewers"), 1)
        .await
        .unwrap();
}

/// Policies can be replaced and deleted; both bump the revision.
pub async fn policy_update_and_delete(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    s.apps
        .insert_policy(&policy("x", "p1", "One"), 1)
        .await
        .unwrap();
    s.apps
        .insert_policy(&policy("x", "p2", "Two"), 2)
        .await
        .unwrap();
    let mut p = policy("x", "p1", "Uno");
    p.updated_at = T0.add_secs(1);
    s.apps.update_policy(&p, 3).await.unwrap();
    assert_eq!(s.apps.policy("x", "p1").await.unwrap(), Some(p));
    assert!(matches!(
        s.apps.update_policy(&policy("x", "p1", "Two"), 4).await,
        Err(StoreError::AlreadyExists {
            entity: "policy name"
        })
    ));
    assert!(matches!(
        s.apps.update_policy(&policy("x", "p9", "Nine"), 4).await,
        Err(StoreError::NotFound { entity: "policy" })
    ));
    s.apps.delete_policy("x", "p2").await.unwrap();
    assert_eq!(s.apps.app("x").await.unwrap().unwrap().revision, 5);
    assert!(matches!(
        s.apps.delete_policy("x", "p2").await,
        Err(StoreError::NotFound { .. })
    ));
    let listed = s.apps.policies("x", &page(None, 10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        s.apps
            .policies("x", &page(Some("p1"), 10))
            .await
            .unwrap()
            .len(),
        0
    );
}

/// Users keep their roles and tenant memberships.
pub async fn users_with_roles_and_tenants(s: &Stores) {
    for r in ["viewer", "editor", "admin"] {
        s.directory.insert_role(&role(r)).await.unwrap();
    }
    s.directory.insert_tenant(&tenant("acme")).await.unwrap();
    let mut u = user("u1");
    u.roles = vec!["editor".into(), "viewer".into()];
    u.tenants = vec![TenantMembership {
        tenant_id: "acme".into(),
        roles: vec!["admin".into()],
    }];
    u.attributes
        .insert("team".into(), serde_json::json!("blue"));
    s.directory.insert_user(&u).await.unwrap();
    assert_eq!(s.directory.user("u1").await.unwrap(), Some(u.clone()));
    assert_eq!(
        u.effective_roles(Some("acme")),
        ["editor", "viewer", "admin"]
    );

    u.roles = vec!["viewer".into()];
    u.tenants = vec![];
    u.updated_at = T0.add_secs(1);
    s.directory.update_user(&u).await.unwrap();
    assert_eq!(s.directory.user("u1").await.unwrap(), Some(u.clone()));
    assert!(matches!(
        s.directory.update_user(&user("ghost")).await,
        Err(StoreError::NotFound { .. })
    ));
    s.directory.insert_user(&user("u0")).await.unwrap();
    let listed = s.directory.users(&page(None, 10)).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, "u0");
    assert_eq!(listed[1], u);
}

/// An identity is an issuer and a subject: the same subject at another issuer is someone else; an
/// identity links at most one user (a second claim of it stores nothing); links follow updates
/// and go with the user.
pub async fn identities_reach_one_user(s: &Stores) {
    let id = |issuer: &str, subject: &str| Identity {
        issuer: issuer.into(),
        subject: subject.into(),
    };
    let mut u = user("u1");
    u.identities = vec![
        id("https://a.example", "alice"),
        id("https://b.example", "al"),
    ];
    s.directory.insert_user(&u).await.unwrap();
    assert_eq!(s.directory.user("u1").await.unwrap(), Some(u.clone()));
    let found = s
        .directory
        .user_by_identity("https://a.example", "alice")
        .await
        .unwrap();
    assert_eq!(found, Some(u.clone()));
    for (iss, sub) in [
        ("https://b.example", "alice"),
        ("https://a.example", "al"),
        ("https://a.example", "u1"),
    ] {
        assert_eq!(
            s.directory.user_by_identity(iss, sub).await.unwrap(),
            None,
            "{iss} {sub}"
        );
    }

    let mut thief = user("u2");
    thief.identities = vec![
        id("https://c.example", "x"),
        id("https://a.example", "alice"),
    ];
    assert!(matches!(
        s.directory.insert_user(&thief).await,
        Err(StoreError::AlreadyExists {
            entity: "user identity"
        })
    ));
    assert_eq!(s.directory.user("u2").await.unwrap(), None);
    assert_eq!(
        s.directory
            .user_by_identity("https://c.example", "x")
            .await
            .unwrap(),
        None
    );
    s.directory.insert_user(&user("u2")).await.unwrap();
    assert!(matches!(
        s.directory.update_user(&thief).await,
        Err(StoreError::AlreadyExists {
            entity: "user identity"
        })
    ));
    assert!(
        s.directory
            .user("u2")
            .await
            .unwrap()
            .unwrap()
            .identities
            .is_empty()
    );

    u.identities = vec![id("https://b.example", "al")];
    s.directory.update_user(&u).await.unwrap();
    assert_eq!(
        s.directory
            .user_by_identity("https://a.example", "alice")
            .await
            .unwrap(),
        None
    );
    thief.identities = vec![id("https://a.example", "alice")];
    s.directory.update_user(&thief).await.unwrap();
    assert_eq!(
        s.directory
            .user_by_identity("https://a.example", "alice")
            .await
            .unwrap()
            .map(|u| u.id),
        Some("u2".to_owned())
    );
    s.directory.delete_user("u1").await.unwrap();
    assert_eq!(
        s.directory
            .user_by_identity("https://b.example", "al")
            .await
            .unwrap(),
        None
    );
    let listed = s.directory.users(&page(None, 10)).await.unwrap();
    assert_eq!(listed, vec![thief]);
}

/// A user naming an unknown role or tenant is refused, naming it, and nothing is stored.
pub async fn user_references_must_exist(s: &Stores) {
    s.directory.insert_role(&role("viewer")).await.unwrap();
    let mut u = user("u1");
    u.roles = vec!["viewer".into(), "ghost".into()];
    match s.directory.insert_user(&u).await {
        Err(StoreError::MissingReference { entity: "role", id }) => assert_eq!(id, "ghost"),
        other => panic!("expected a missing role, got {other:?}"),
    }
    assert_eq!(s.directory.user("u1").await.unwrap(), None);
    u.roles = vec![];
    u.tenants = vec![TenantMembership {
        tenant_id: "nowhere".into(),
        roles: vec![],
    }];
    match s.directory.insert_user(&u).await {
        Err(StoreError::MissingReference {
            entity: "tenant",
            id,
        }) => assert_eq!(id, "nowhere"),
        other => panic!("expected a missing tenant, got {other:?}"),
    }
    assert_eq!(s.directory.user("u1").await.unwrap(), None);
}

/// Emails are unique, ignoring case; ids too.
pub async fn user_emails_are_unique(s: &Stores) {
    s.directory.insert_user(&user("u1")).await.unwrap();
    let mut twin = user("u2");
    twin.email = Some("U1@Example.com".into());
    assert!(matches!(
        s.directory.insert_user(&twin).await,
        Err(StoreError::AlreadyExists {
            entity: "user email"
        })
    ));
    assert!(matches!(
        s.directory.insert_user(&user("u1")).await,
        Err(StoreError::AlreadyExists { entity: "user" })
    ));
    let mut no_email = user("u3");
    no_email.email = None;
    s.directory.insert_user(&no_email).await.unwrap();
    let mut no_email2 = user("u4");
    no_email2.email = None;
    s.directory.insert_user(&no_email2).await.unwrap();
}

/// A role held by a user (globally or in a tenant) cannot be deleted.
pub async fn roles_in_use_cannot_be_deleted(s: &Stores) {
    s.directory.insert_role(&role("viewer")).await.unwrap();
    s.directory
        .insert_role(&role("tenant-admin"))
        .await
        .unwrap();
    s.directory.insert_tenant(&tenant("acme")).await.unwrap();
    let mut u = user("u1");
    u.roles = vec!["viewer".into()];
    u.tenants = vec![TenantMembership {
        tenant_id: "acme".into(),
        roles: vec!["tenant-admin".into()],
    }];
    s.directory.insert_user(&u).await.unwrap();
    assert!(matches!(
        s.directory.delete_role("viewer").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.directory.delete_role("tenant-admin").await,
        Err(StoreError::Conflict(_))
    ));
    u.roles = vec![];
    u.tenants = vec![];
    s.directory.update_user(&u).await.unwrap();
    s.directory.delete_role("viewer").await.unwrap();
    s.directory.delete_role("tenant-admin").await.unwrap();
    assert!(matches!(
        s.directory.delete_role("viewer").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.directory
            .insert_role(&role("x"))
            .await
            .and(s.directory.insert_role(&role("x")).await),
        Err(StoreError::AlreadyExists { entity: "role" })
    ));
    let mut r = role("x");
    r.description = None;
    s.directory.update_role(&r).await.unwrap();
    assert_eq!(
        s.directory.role("x").await.unwrap().unwrap().description,
        None
    );
    assert_eq!(s.directory.roles(&page(None, 10)).await.unwrap().len(), 1);
}

/// Deleting a tenant removes its memberships and its connections.
pub async fn tenant_delete_cascades(s: &Stores) {
    s.directory.insert_role(&role("admin")).await.unwrap();
    s.directory.insert_tenant(&tenant("acme")).await.unwrap();
    s.directory.insert_tenant(&tenant("other")).await.unwrap();
    let mut u = user("u1");
    u.tenants = vec![
        TenantMembership {
            tenant_id: "acme".into(),
            roles: vec!["admin".into()],
        },
        TenantMembership {
            tenant_id: "other".into(),
            roles: vec![],
        },
    ];
    s.directory.insert_user(&u).await.unwrap();
    s.apps.insert_app(&app("x")).await.unwrap();
    s.connections
        .put_connection(&connection("c1", ConnectionKey::tenant("x", "acme")))
        .await
        .unwrap();
    s.connections
        .put_connection(&connection(
            "c2",
            ConnectionKey::user("x", "u1", Some("acme")),
        ))
        .await
        .unwrap();
    s.connections
        .put_connection(&connection("c3", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    s.directory.delete_tenant("acme").await.unwrap();
    let after = s.directory.user("u1").await.unwrap().unwrap();
    assert_eq!(after.tenants.len(), 1);
    assert_eq!(after.tenants[0].tenant_id, "other");
    assert_eq!(s.connections.connection_by_id("c1").await.unwrap(), None);
    assert_eq!(s.connections.connection_by_id("c2").await.unwrap(), None);
    assert!(
        s.connections
            .connection_by_id("c3")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.directory.tenant("acme").await.unwrap(), None);
    assert!(matches!(
        s.directory.delete_tenant("acme").await,
        Err(StoreError::NotFound { .. })
    ));
    let mut t = tenant("other");
    t.name = "Renamed".into();
    s.directory.update_tenant(&t).await.unwrap();
    assert_eq!(s.directory.tenants(&page(None, 5)).await.unwrap(), vec![t]);
    // The admin role is free again: nothing holds it.
    s.directory.delete_role("admin").await.unwrap();
}

/// Deleting a user deletes the user's connections.
pub async fn user_delete_cascades_connections(s: &Stores) {
    s.directory.insert_user(&user("u1")).await.unwrap();
    s.apps.insert_app(&app("x")).await.unwrap();
    s.connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    s.connections
        .put_connection(&connection("c2", ConnectionKey::user("x", "u2", None)))
        .await
        .unwrap();
    s.directory.delete_user("u1").await.unwrap();
    assert_eq!(s.connections.connection_by_id("c1").await.unwrap(), None);
    assert!(
        s.connections
            .connection_by_id("c2")
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        s.directory.delete_user("u1").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// One connection per key: putting again replaces the credential, keeps the id, bumps the version.
pub async fn connections_upsert_by_key(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let key = ConnectionKey::user("x", "u1", None);
    let first = s
        .connections
        .put_connection(&connection("c1", key.clone()))
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.id, "c1");
    let mut again = connection("c-other", key.clone());
    again.scopes = vec!["read".into(), "write".into()];
    again.access = sealed(1, b"access-2");
    again.updated_at = T0.add_secs(9);
    let second = s.connections.put_connection(&again).await.unwrap();
    assert_eq!(second.id, "c1");
    assert_eq!(second.version, 2);
    assert_eq!(second.created_at, T0);
    assert_eq!(second.scopes, ["read", "write"]);
    assert_eq!(second.access, sealed(1, b"access-2"));
    assert_eq!(s.connections.connection(&key).await.unwrap(), Some(second));

    // Keys with and without a tenant, and the tenant's own, are different connections.
    let in_tenant = ConnectionKey::user("x", "u1", Some("acme"));
    let of_tenant = ConnectionKey::tenant("x", "acme");
    let of_app = ConnectionKey::app("x");
    for (i, k) in [&in_tenant, &of_tenant, &of_app].into_iter().enumerate() {
        s.connections
            .put_connection(&connection(&format!("k{i}"), k.clone()))
            .await
            .unwrap();
    }
    for k in [&key, &in_tenant, &of_tenant, &of_app] {
        assert_eq!(&s.connections.connection(k).await.unwrap().unwrap().key, k);
    }
    assert!(matches!(
        s.connections
            .put_connection(&connection(
                "c9",
                ConnectionKey::user("ghost-app", "u1", None)
            ))
            .await,
        Err(StoreError::MissingReference { .. })
    ));
}

/// A connection read by identity is the linked user's connection of that app and tenant: never
/// another user's, another tenant's, a shared one, or an unlinked subject's.
pub async fn connections_by_identity(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    s.apps.insert_app(&app("y")).await.unwrap();
    let mut u = user("u1");
    u.identities = vec![Identity {
        issuer: "https://a.example".into(),
        subject: "alice".into(),
    }];
    s.directory.insert_user(&u).await.unwrap();
    s.directory.insert_user(&user("u2")).await.unwrap();
    let mine = ConnectionKey::user("x", "u1", None);
    let in_tenant = ConnectionKey::user("x", "u1", Some("acme"));
    for (id, key) in [
        ("c1", mine.clone()),
        ("c2", in_tenant.clone()),
        ("c3", ConnectionKey::user("y", "u2", None)),
        ("c4", ConnectionKey::tenant("y", "acme")),
        ("c5", ConnectionKey::app("y")),
        // An external subject's own connection is keyed by its principal, not by a link.
        ("c6", ConnectionKey::user("y", "alice", None)),
    ] {
        s.connections
            .put_connection(&connection(id, key))
            .await
            .unwrap();
    }
    let by = |app: &'static str, iss: &'static str, sub: &'static str, t: Option<&'static str>| {
        let c = s.connections.clone();
        async move {
            c.connection_by_identity(app, iss, sub, t)
                .await
                .unwrap()
                .map(|c| c.key)
        }
    };
    assert_eq!(
        by("x", "https://a.example", "alice", None).await,
        Some(mine)
    );
    assert_eq!(
        by("x", "https://a.example", "alice", Some("acme")).await,
        Some(in_tenant)
    );
    for (app, iss, sub, t) in [
        ("y", "https://a.example", "alice", None),
        ("y", "https://a.example", "alice", Some("acme")),
        ("x", "https://a.example", "alice", Some("other")),
        ("x", "https://b.example", "alice", None),
        ("x", "https://a.example", "u1", None),
        ("ghost", "https://a.example", "alice", None),
    ] {
        assert_eq!(by(app, iss, sub, t).await, None, "{app} {iss} {sub} {t:?}");
    }
    // The link follows the user: unlinked, the identity reads nothing.
    u.identities.clear();
    s.directory.update_user(&u).await.unwrap();
    assert_eq!(by("x", "https://a.example", "alice", None).await, None);
}

/// Connections list per app and per user, and delete one by one or per user.
pub async fn connections_list_and_delete(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    s.apps.insert_app(&app("y")).await.unwrap();
    for (id, a, u) in [("c1", "x", "u1"), ("c2", "y", "u1"), ("c3", "x", "u2")] {
        s.connections
            .put_connection(&connection(id, ConnectionKey::user(a, u, None)))
            .await
            .unwrap();
    }
    let of_x = s
        .connections
        .connections_for_app("x", &page(None, 10))
        .await
        .unwrap();
    assert_eq!(
        of_x.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["c1", "c3"]
    );
    let of_u1 = s
        .connections
        .connections_for_user("u1", &page(None, 1))
        .await
        .unwrap();
    assert_eq!(of_u1.len(), 1);
    assert_eq!(of_u1[0].id, "c1");
    let rest = s
        .connections
        .connections_for_user("u1", &page(Some("c1"), 5))
        .await
        .unwrap();
    assert_eq!(rest[0].id, "c2");
    let gone = s
        .connections
        .delete_connection("c3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.id, "c3");
    assert_eq!(s.connections.delete_connection("c3").await.unwrap(), None);
    let gone = s.connections.delete_user_connections("u1").await.unwrap();
    assert_eq!(gone.len(), 2);
    assert!(
        s.connections
            .connections_for_user("u1", &page(None, 5))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A batch of connections is written whole or not at all.
pub async fn connection_batch_is_all_or_nothing(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let good = connection("c1", ConnectionKey::user("x", "u1", None));
    let bad = connection("c2", ConnectionKey::user("no-such-app", "u1", None));
    assert!(
        s.connections
            .put_connections(&[good.clone(), bad])
            .await
            .is_err()
    );
    assert_eq!(s.connections.connection_by_id("c1").await.unwrap(), None);
    let stored = s
        .connections
        .put_connections(&[good, connection("c3", ConnectionKey::user("x", "u2", None))])
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
}

/// A live lease keeps others out; a lapsed one does not.
pub async fn refresh_lease_is_exclusive(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let c = s
        .connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    let now = T0.add_secs(10);
    let held = s
        .connections
        .acquire_refresh_lease(&c.id, "node-a", now, now.add_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.lease, Some(("node-a".to_owned(), now.add_secs(30))));
    assert_eq!(held.version, c.version);
    assert_eq!(
        s.connections
            .acquire_refresh_lease(&c.id, "node-b", now.add_secs(29), now.add_secs(59))
            .await
            .unwrap(),
        None
    );
    let taken = s
        .connections
        .acquire_refresh_lease(&c.id, "node-b", now.add_secs(31), now.add_secs(61))
        .await
        .unwrap();
    assert!(taken.is_some());
    // Releasing: only the holder can, and then anyone may take it at once.
    assert!(
        !s.connections
            .release_refresh_lease(&c.id, "node-a")
            .await
            .unwrap()
    );
    assert!(
        s.connections
            .release_refresh_lease(&c.id, "node-b")
            .await
            .unwrap()
    );
    let after = s
        .connections
        .connection_by_id(&c.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.lease, None);
    assert_eq!(after.version, c.version);
    assert!(
        s.connections
            .acquire_refresh_lease(&c.id, "node-c", now.add_secs(32), now.add_secs(62))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.connections
            .acquire_refresh_lease("missing", "node-b", now, now.add_secs(1))
            .await
            .unwrap(),
        None
    );
}

/// Many contenders at once: exactly one gets the lease.
pub async fn refresh_lease_races_have_one_winner(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let c = s
        .connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    let store = s.connections.clone();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .acquire_refresh_lease(&id, &format!("node-{i}"), T0, T0.add_secs(30))
                .await
                .unwrap()
                .is_some()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

fn new_tokens(tag: &str) -> TokenSet {
    TokenSet {
        access: sealed(1, format!("access-{tag}").as_bytes()),
        refresh: Some(sealed(1, format!("refresh-{tag}").as_bytes())),
        token_type: Some("Bearer".into()),
        expires_at: Some(T0.add_secs(7200)),
        scopes: vec!["read".into()],
    }
}

/// Only the lease holder, at the version it read, can write refreshed tokens.
pub async fn refresh_completion_is_fenced(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let c = s
        .connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    let now = T0.add_secs(10);
    let a = s
        .connections
        .acquire_refresh_lease(&c.id, "node-a", now, now.add_secs(30))
        .await
        .unwrap()
        .unwrap();
    // Not the holder.
    assert_eq!(
        s.connections
            .complete_refresh(&c.id, "node-b", a.version, &new_tokens("b"), now)
            .await
            .unwrap(),
        None
    );
    // Node A's lease lapses; node B takes over and refreshes first.
    let later = now.add_secs(31);
    let b = s
        .connections
        .acquire_refresh_lease(&c.id, "node-b", later, later.add_secs(30))
        .await
        .unwrap()
        .unwrap();
    let done = s
        .connections
        .complete_refresh(&c.id, "node-b", b.version, &new_tokens("b"), later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.version, c.version + 1);
    assert_eq!(done.lease, None);
    assert_eq!(done.access, sealed(1, b"access-b"));
    assert_eq!(done.refresh, Some(sealed(1, b"refresh-b")));
    assert_eq!(done.last_refresh_at, Some(later));
    // The stale holder A wakes up: fenced out, B's tokens stay.
    assert_eq!(
        s.connections
            .complete_refresh(&c.id, "node-a", a.version, &new_tokens("a"), later)
            .await
            .unwrap(),
        None
    );
    let stored = s
        .connections
        .connection_by_id(&c.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.access, sealed(1, b"access-b"));
    // Even holding a new lease, A cannot write at the version it read before.
    s.connections
        .acquire_refresh_lease(&c.id, "node-a", later, later.add_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.connections
            .complete_refresh(&c.id, "node-a", a.version, &new_tokens("a"), later)
            .await
            .unwrap(),
        None
    );
}

/// A failed refresh records the error and releases the lease; `invalid_grant` marks the
/// connection as needing consent but keeps it and its tokens.
pub async fn refresh_failure_keeps_tokens(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let c = s
        .connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    s.connections
        .acquire_refresh_lease(&c.id, "n", T0, T0.add_secs(30))
        .await
        .unwrap()
        .unwrap();
    let transient = RefreshFailure {
        error: "provider answered 503".into(),
        consent_required: false,
    };
    assert!(
        s.connections
            .fail_refresh(&c.id, "n", &transient)
            .await
            .unwrap()
    );
    let after = s
        .connections
        .connection_by_id(&c.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, ConnectionStatus::Active);
    assert_eq!(after.lease, None);
    assert_eq!(
        after.last_refresh_error.as_deref(),
        Some("provider answered 503")
    );
    assert_eq!(after.refresh, c.refresh);
    // Not holding the lease any more: nothing recorded.
    assert!(
        !s.connections
            .fail_refresh(&c.id, "n", &transient)
            .await
            .unwrap()
    );

    s.connections
        .acquire_refresh_lease(&c.id, "n", T0, T0.add_secs(30))
        .await
        .unwrap()
        .unwrap();
    let rejected = RefreshFailure {
        error: "invalid_grant: token revoked".into(),
        consent_required: true,
    };
    assert!(
        s.connections
            .fail_refresh(&c.id, "n", &rejected)
            .await
            .unwrap()
    );
    let after = s
        .connections
        .connection_by_id(&c.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, ConnectionStatus::ConsentRequired);
    assert_eq!(after.access, c.access);
    assert_eq!(after.refresh, c.refresh);
    assert_eq!(after.version, c.version);

    // A new consent makes it active again.
    let mut renewed = connection("ignored", c.key.clone());
    renewed.status = ConnectionStatus::Active;
    let renewed = s.connections.put_connection(&renewed).await.unwrap();
    assert_eq!(renewed.status, ConnectionStatus::Active);
    assert_eq!(renewed.last_refresh_error, None);
}

/// Last use is recorded in batches and never moves backwards.
pub async fn touch_records_last_use(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let c = s
        .connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    s.connections
        .touch_connections(&[(c.id.clone(), T0.add_secs(50)), ("gone".into(), T0)])
        .await
        .unwrap();
    s.connections
        .touch_connections(&[(c.id.clone(), T0.add_secs(40))])
        .await
        .unwrap();
    let after = s
        .connections
        .connection_by_id(&c.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.last_used_at, Some(T0.add_secs(50)));
    assert_eq!(after.version, c.version);
}

/// Key rotation finds secrets under old keys and re-seals them without bumping versions; a
/// concurrent refresh (version moved) wins over a re-seal.
pub async fn reseal_finds_and_replaces_old_keys(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let c1 = s
        .connections
        .put_connection(&connection("c1", ConnectionKey::user("x", "u1", None)))
        .await
        .unwrap();
    let mut newer = connection("c2", ConnectionKey::user("x", "u2", None));
    newer.access = sealed(2, b"a");
    newer.refresh = None;
    s.connections.put_connection(&newer).await.unwrap();
    let old = s
        .connections
        .connections_sealed_with_other_key(2, None, 10)
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].id, "c1");
    // A cursor: only ids after it, in id order, however many come before.
    for (id, user) in [("c3", "u3"), ("c4", "u4")] {
        s.connections
            .put_connection(&connection(id, ConnectionKey::user("x", user, None)))
            .await
            .unwrap();
    }
    let ids = |rows: Vec<ConnectionRecord>| rows.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let all = s.connections.connections_sealed_with_other_key(2, None, 10);
    assert_eq!(ids(all.await.unwrap()), ["c1", "c3", "c4"]);
    let first = s.connections.connections_sealed_with_other_key(2, None, 1);
    assert_eq!(ids(first.await.unwrap()), ["c1"]);
    let next = s
        .connections
        .connections_sealed_with_other_key(2, Some("c1"), 10);
    assert_eq!(ids(next.await.unwrap()), ["c3", "c4"]);
    let end = s
        .connections
        .connections_sealed_with_other_key(2, Some("c4"), 10);
    assert!(end.await.unwrap().is_empty());
    for id in ["c3", "c4"] {
        assert!(s.connections.delete_connection(id).await.unwrap().is_some());
    }
    assert!(
        s.connections
            .reseal_connection("c1", c1.version, &sealed(2, b"A1"), Some(&sealed(2, b"R1")))
            .await
            .unwrap()
    );
    assert!(
        !s.connections
            .reseal_connection("c1", c1.version + 7, &sealed(2, b"X"), None)
            .await
            .unwrap()
    );
    // A batch: each row as alone (a row written since it was read is left alone); the count.
    let mut fresh = Vec::new();
    for (id, user) in [("c5", "u5"), ("c6", "u6")] {
        let c = connection(id, ConnectionKey::user("x", user, None));
        fresh.push(s.connections.put_connection(&c).await.unwrap());
    }
    let batch = [
        Reseal {
            id: "c5".into(),
            expected_version: fresh[0].version,
            access: sealed(2, b"A5"),
            refresh: None,
        },
        Reseal {
            id: "c6".into(),
            expected_version: fresh[1].version + 1,
            access: sealed(2, b"A6"),
            refresh: None,
        },
    ];
    assert_eq!(s.connections.reseal_connections(&batch).await.unwrap(), 1);
    let c5 = s.connections.connection_by_id("c5").await.unwrap().unwrap();
    assert_eq!(
        (c5.access, c5.refresh, c5.version),
        (sealed(2, b"A5"), None, fresh[0].version)
    );
    let c6 = s.connections.connection_by_id("c6").await.unwrap().unwrap();
    assert_eq!(c6.access, fresh[1].access);
    for id in ["c5", "c6"] {
        assert!(s.connections.delete_connection(id).await.unwrap().is_some());
    }
    let after = s.connections.connection_by_id("c1").await.unwrap().unwrap();
    assert_eq!(after.access, sealed(2, b"A1"));
    assert_eq!(after.refresh, Some(sealed(2, b"R1")));
    assert_eq!(after.version, c1.version);
    assert!(
        s.connections
            .connections_sealed_with_other_key(2, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let st = state("st", "x", T0.add_secs(60));
    s.consent_states.insert_state(&st).await.unwrap();
    let old = s
        .consent_states
        .states_sealed_with_other_key(2, None, 10)
        .await
        .unwrap();
    assert_eq!(old.len(), 1);
    assert!(
        s.consent_states
            .reseal_state("st", &sealed(2, b"v"))
            .await
            .unwrap()
    );
    assert!(
        s.consent_states
            .states_sealed_with_other_key(2, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.consent_states
            .take_state("st")
            .await
            .unwrap()
            .unwrap()
            .pkce_verifier,
        Some(sealed(2, b"v"))
    );
}

fn state(id: &str, app_id: &str, expires_at: portcullis_domain::Timestamp) -> ConsentState {
    ConsentState {
        id: id.to_owned(),
        key: ConnectionKey::user(app_id, "u1", Some("acme")),
        scopes: vec!["read".into()],
        return_url: Some("https://app.example/done".into()),
        pkce_verifier: Some(sealed(1, b"verifier")),
        redirect_uri: "https://portcullis.example/v1/outbound/callback".into(),
        initiated_by: "user:u1".into(),
        created_at: T0,
        expires_at,
    }
}

/// One connection key keeps only its newest pending consents.
pub async fn pending_consents_are_capped_per_key(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let cap = portcullis_domain::MAX_PENDING_CONSENTS_PER_KEY as i64;
    for i in 0..cap + 3 {
        let mut st = state(&format!("s{i:02}"), "x", T0.add_secs(600));
        st.created_at = T0.add_secs(i);
        s.consent_states.insert_state(&st).await.unwrap();
    }
    // Another key's flows are not touched.
    let mut other = state("other", "x", T0.add_secs(600));
    other.key = ConnectionKey::user("x", "u2", None);
    s.consent_states.insert_state(&other).await.unwrap();
    for i in 0..3 {
        assert_eq!(
            s.consent_states
                .take_state(&format!("s{i:02}"))
                .await
                .unwrap(),
            None,
            "s{i:02}"
        );
    }
    for i in 3..cap + 3 {
        assert!(
            s.consent_states
                .take_state(&format!("s{i:02}"))
                .await
                .unwrap()
                .is_some(),
            "s{i:02}"
        );
    }
    assert!(
        s.consent_states
            .take_state("other")
            .await
            .unwrap()
            .is_some()
    );
}

/// A pending consent can be taken once; expired ones are purged.
pub async fn consent_states_are_single_use(s: &Stores) {
    s.apps.insert_app(&app("x")).await.unwrap();
    let st = state("s1", "x", T0.add_secs(600));
    s.consent_states.insert_state(&st).await.unwrap();
    s.consent_states
        .insert_state(&state("s2", "x", T0.add_secs(1)))
        .await
        .unwrap();
    assert!(s.consent_states.insert_state(&st).await.is_err());
    assert_eq!(s.consent_states.take_state("s1").await.unwrap(), Some(st));
    assert_eq!(s.consent_states.take_state("s1").await.unwrap(), None);
    assert_eq!(
        s.consent_states
            .purge_expired_states(T0.add_secs(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.consent_states.take_state("s2").await.unwrap(), None);
    assert!(matches!(
        s.consent_states
            .insert_state(&state("s3", "nope", T0))
            .await,
        Err(StoreError::MissingReference { .. })
    ));
}

fn admin_key(id: &str, secret: u8) -> AdminKeyRecord {
    AdminKeyRecord {
        id: id.to_owned(),
        name: format!("key {id}"),
        secret_hash: [secret; 32],
        created_at: T0,
        expires_at: None,
        scopes: vec!["read".to_owned(), "policies".to_owned()],
    }
}

/// Several nodes starting at once on an empty database create exactly one bootstrap key.
pub async fn first_admin_key_is_inserted_once(s: &Stores) {
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let store = s.admin_keys.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_first_admin_key(&admin_key(&format!("ak{i}"), i))
                .await
                .unwrap()
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        if t.await.unwrap() {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1);
    assert_eq!(
        s.admin_keys
            .admin_keys(&page(None, 50))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Keys are found by hash (and by id, for the console's sessions); expiry is kept; delete works
/// once.
pub async fn admin_keys_by_hash(s: &Stores) {
    let mut k = admin_key("ak1", 7);
    k.expires_at = Some(T0.add_secs(60));
    s.admin_keys.insert_admin_key(&k).await.unwrap();
    assert_eq!(
        s.admin_keys.admin_key_by_hash(&[7; 32]).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        s.admin_keys.admin_key_by_id("ak1").await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(s.admin_keys.admin_key_by_id("ak9").await.unwrap(), None);
    assert_eq!(
        s.admin_keys.admin_key_by_hash(&[8; 32]).await.unwrap(),
        None
    );
    assert!(matches!(
        s.admin_keys.insert_admin_key(&admin_key("ak2", 7)).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    s.admin_keys.delete_admin_key("ak1").await.unwrap();
    assert_eq!(
        s.admin_keys.admin_key_by_hash(&[7; 32]).await.unwrap(),
        None
    );
    assert_eq!(s.admin_keys.admin_key_by_id("ak1").await.unwrap(), None);
    assert!(matches!(
        s.admin_keys.delete_admin_key("ak1").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Clients round-trip with their metadata.
pub async fn clients_round_trip(s: &Stores) {
    let mut c = ClientRecord {
        id: "mcp-server".into(),
        name: "MCP server".into(),
        secret_hash: Some([3; 32]),
        metadata:
            serde_json::json!({"grantTypes": ["urn:ietf:params:oauth:grant-type:token-exchange"]})
                .as_object()
                .cloned()
                .unwrap(),
        created_at: T0,
        updated_at: T0,
    };
    s.clients.insert_client(&c).await.unwrap();
    assert_eq!(
        s.clients.client("mcp-server").await.unwrap(),
        Some(c.clone())
    );
    assert!(matches!(
        s.clients.insert_client(&c).await,
        Err(StoreError::AlreadyExists { entity: "client" })
    ));
    c.secret_hash = None;
    c.name = "Renamed".into();
    s.clients.update_client(&c).await.unwrap();
    assert_eq!(s.clients.clients(&page(None, 5)).await.unwrap(), vec![c]);
    s.clients.delete_client("mcp-server").await.unwrap();
    assert!(matches!(
        s.clients.delete_client("mcp-server").await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Issuers round-trip; their `issuer` value is unique.
pub async fn issuers_round_trip(s: &Stores) {
    let mut i = IssuerRecord {
        id: "iss_1".into(),
        issuer: "https://idp.example".into(),
        jwks_url: Some("https://idp.example/jwks".into()),
        discovery_url: None,
        audiences: vec!["https://mcp.example".into()],
        algorithms: vec!["RS256".into(), "ES256".into()],
        roles_claim: Some("roles".into()),
        tenant_claim: Some("org.id".into()),
        clock_skew_seconds: 30,
        required_typ: None,
        created_at: T0,
        updated_at: T0,
    };
    s.issuers.insert_issuer(&i).await.unwrap();
    let mut twin = i.clone();
    twin.id = "iss_2".into();
    assert!(matches!(
        s.issuers.insert_issuer(&twin).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    i.audiences.push("other".into());
    i.required_typ = Some("at+jwt".into());
    s.issuers.update_issuer(&i).await.unwrap();
    assert_eq!(s.issuers.issuer("iss_1").await.unwrap(), Some(i.clone()));
    assert_eq!(s.issuers.issuers().await.unwrap(), vec![i]);
    s.issuers.delete_issuer("iss_1").await.unwrap();
    assert!(s.issuers.issuers().await.unwrap().is_empty());
}

/// The first data key is created once; a rotation makes the new key the only active one.
pub async fn data_keys_rotate(s: &Stores) {
    let k1 = DataKeyRecord {
        id: 1,
        master_key_id: "m1".into(),
        wrapped: vec![1; 60],
        active: true,
        created_at: T0,
    };
    let keys = s.keys.insert_first_data_key(&k1).await.unwrap();
    assert_eq!(keys, vec![k1.clone()]);
    let mut other = k1.clone();
    other.wrapped = vec![9; 60];
    assert_eq!(
        s.keys.insert_first_data_key(&other).await.unwrap(),
        vec![k1.clone()]
    );
    let k2 = DataKeyRecord {
        id: 2,
        wrapped: vec![2; 60],
        active: true,
        ..k1.clone()
    };
    s.keys.insert_active_data_key(&k2).await.unwrap();
    assert!(matches!(
        s.keys.insert_active_data_key(&k2).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let keys = s.keys.data_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(!keys[0].active);
    assert!(keys[1].active);
    s.keys.rewrap_data_key(1, "m2", &[4; 60]).await.unwrap();
    let keys = s.keys.data_keys().await.unwrap();
    assert_eq!(keys[0].master_key_id, "m2");
    assert_eq!(keys[0].wrapped, vec![4; 60]);
}

/// The first signing key is inserted once (nodes racing at first start keep one); a rotation
/// retires the active key at the new key's creation, in one step; retired keys are purged only
/// once their retention has passed.
pub async fn signing_keys_rotate_and_purge(s: &Stores) {
    let key = |kid: &str, secs: i64| portcullis_domain::SigningKeyRecord {
        kid: kid.to_owned(),
        alg: "ES256".into(),
        private_key: portcullis_domain::Ciphertext {
            key_id: 1,
            bytes: vec![7; 90],
        },
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        created_at: T0.add_secs(secs),
        retired_at: None,
    };
    assert!(s.signing_keys.signing_keys().await.unwrap().is_empty());
    let first = s
        .signing_keys
        .insert_first_signing_key(&key("k1", 0))
        .await
        .unwrap();
    assert_eq!(first, vec![key("k1", 0)]);
    // A second node's first key loses the race: the stored key stands.
    let again = s
        .signing_keys
        .insert_first_signing_key(&key("k0", 1))
        .await
        .unwrap();
    assert_eq!(again, vec![key("k1", 0)]);

    s.signing_keys
        .rotate_signing_key(&key("k2", 100))
        .await
        .unwrap();
    let keys = s.signing_keys.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, "k1");
    assert_eq!(keys[0].retired_at, Some(T0.add_secs(100)));
    assert_eq!(keys[1], key("k2", 100));
    // A key id is never reused.
    assert!(matches!(
        s.signing_keys.rotate_signing_key(&key("k1", 200)).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let keys = s.signing_keys.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2, "a refused rotation changes nothing");
    assert_eq!(keys[1].retired_at, None);

    // Only keys retired before the cut are purged; the active key never is.
    assert_eq!(
        s.signing_keys
            .purge_signing_keys(T0.add_secs(100))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.signing_keys
            .purge_signing_keys(T0.add_secs(10_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.signing_keys.signing_keys().await.unwrap(),
        vec![key("k2", 100)]
    );
}

/// Resource servers: inserted, read, listed by id, replaced and deleted; an id or a URI is one
/// resource's; a refused write changes nothing.
pub async fn resources_round_trip(s: &Stores) {
    let r = |id: &str, uri: &str| portcullis_domain::ResourceRecord {
        id: id.to_owned(),
        uri: uri.to_owned(),
        name: format!("MCP {id}"),
        description: Some("Tools".into()),
        scopes: vec![portcullis_domain::ScopeDef {
            name: "tools.read".into(),
            description: Some("Read".into()),
        }],
        created_at: T0,
        updated_at: T0,
    };
    let crm = r("crm", "https://crm.example/mcp");
    s.resources.insert_resource(&crm).await.unwrap();
    assert_eq!(
        s.resources.resource("crm").await.unwrap(),
        Some(crm.clone())
    );
    for dup in [
        r("crm", "https://other.example/mcp"),
        r("crm2", "https://crm.example/mcp"),
    ] {
        assert!(
            matches!(
                s.resources.insert_resource(&dup).await,
                Err(StoreError::AlreadyExists { .. })
            ),
            "{dup:?}"
        );
    }
    let docs = r("docs", "https://docs.example/mcp");
    s.resources.insert_resource(&docs).await.unwrap();
    let page = PageRequest {
        after: None,
        limit: 10,
    };
    assert_eq!(
        s.resources.resources(&page).await.unwrap(),
        vec![crm.clone(), docs.clone()]
    );
    let after = PageRequest {
        after: Some("crm".into()),
        limit: 10,
    };
    assert_eq!(
        s.resources.resources(&after).await.unwrap(),
        vec![docs.clone()]
    );

    let mut moved = docs.clone();
    moved.uri = "https://crm.example/mcp".into();
    assert!(matches!(
        s.resources.update_resource(&moved).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(
        s.resources.resource("docs").await.unwrap(),
        Some(docs.clone())
    );
    let mut renamed = docs.clone();
    renamed.name = "Docs".into();
    renamed.description = None;
    renamed.updated_at = T0.add_secs(5);
    s.resources.update_resource(&renamed).await.unwrap();
    assert_eq!(s.resources.resource("docs").await.unwrap(), Some(renamed));
    assert!(matches!(
        s.resources
            .update_resource(&r("nope", "https://nope.example"))
            .await,
        Err(StoreError::NotFound { .. })
    ));

    s.resources.delete_resource("crm").await.unwrap();
    assert!(matches!(
        s.resources.delete_resource("crm").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.resources.resource("crm").await.unwrap(), None);
}

fn event(id: &str, app: &str, user: &str, outcome: AuditOutcome, secs: i64) -> AuditEvent {
    AuditEvent {
        id: id.to_owned(),
        at: T0.add_secs(secs),
        action: "token".into(),
        app_id: Some(app.to_owned()),
        user_id: Some(user.to_owned()),
        tenant_id: None,
        client_id: Some("mcp".into()),
        issuer: Some("https://idp.example".into()),
        requested_scopes: vec!["read".into()],
        granted_scopes: if outcome == AuditOutcome::Allowed {
            vec!["read".into()]
        } else {
            vec![]
        },
        outcome,
        reason: None,
        deciding_policies: vec!["p1".into()],
        considered_policies: vec![PolicyVerdict {
            id: "p1".into(),
            matched: true,
            shadow: false,
        }],
        shadow_outcome: Some("denied".into()),
        latency_us: 42,
        inputs: Some(DecisionInputs {
            roles: vec!["Viewer".into()],
            claims: serde_json::json!({"sub": user, "dept": ["eng", "ops"], "n": 1.5})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            truncated: false,
            allowed: outcome == AuditOutcome::Allowed,
            scopes: if outcome == AuditOutcome::Allowed {
                vec!["read".into()]
            } else {
                vec![]
            },
        }),
    }
}

/// The audit summary groups a window's decisions per bucket, app and outcome, in the database,
/// with their counts and latencies; what falls outside the window is not counted.
pub async fn audit_summary_groups_by_bucket(s: &Stores) {
    let mut events = vec![
        // Before the window.
        event("evt_01", "x", "u1", AuditOutcome::Allowed, 0),
        // Bucket 0: [10 s, 20 s).
        event("evt_02", "x", "u1", AuditOutcome::Allowed, 10),
        event("evt_03", "x", "u2", AuditOutcome::Allowed, 19),
        event("evt_04", "x", "u2", AuditOutcome::Denied, 15),
        event("evt_05", "y", "u1", AuditOutcome::Denied, 12),
        // Bucket 2: [30 s, 40 s).
        event("evt_06", "y", "u1", AuditOutcome::Denied, 30),
        event("evt_07", "x", "u1", AuditOutcome::InvalidToken, 39),
        // At the window's end: not counted.
        event("evt_08", "x", "u1", AuditOutcome::Allowed, 40),
    ];
    events[1].latency_us = 100;
    events[2].latency_us = 300;
    events[6].app_id = None;
    s.audit.append_audit(events.into()).await.unwrap();
    let mut rows = s
        .audit
        .audit_summary(T0.add_secs(10), T0.add_secs(40), 10_000)
        .await
        .unwrap();
    rows.sort_by(|a, b| {
        (a.bucket, &a.app_id, a.outcome.as_str()).cmp(&(b.bucket, &b.app_id, b.outcome.as_str()))
    });
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.bucket,
                r.app_id.as_deref(),
                r.outcome,
                r.count,
                r.latency_sum_us,
                r.latency_max_us,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, Some("x"), AuditOutcome::Allowed, 2, 400, 300),
            (0, Some("x"), AuditOutcome::Denied, 1, 42, 42),
            (0, Some("y"), AuditOutcome::Denied, 1, 42, 42),
            (2, None, AuditOutcome::InvalidToken, 1, 42, 42),
            (2, Some("y"), AuditOutcome::Denied, 1, 42, 42),
        ]
    );
    // An empty window: no row.
    assert!(
        s.audit
            .audit_summary(T0.add_secs(100), T0.add_secs(200), 10_000)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The audit log filters, orders newest first, and pages by id.
pub async fn audit_filters_and_pages(s: &Stores) {
    let mut events = vec![
        event("evt_01", "x", "u1", AuditOutcome::Allowed, 1),
        event("evt_02", "x", "u2", AuditOutcome::Denied, 2),
        event("evt_03", "y", "u1", AuditOutcome::NotConnected, 3),
        event("evt_04", "x", "u1", AuditOutcome::Denied, 4),
    ];
    // Every optional field, set and unset, comes back as written.
    events[1].tenant_id = Some("t1".into());
    events[1].client_id = None;
    events[1].reason = Some("no_matching_policy".into());
    events[1].shadow_outcome = None;
    events[2].issuer = None;
    events[2].considered_policies = vec![];
    // Refused before the policies ran: no inputs.
    events[3].inputs = None;
    s.audit.append_audit(events.clone().into()).await.unwrap();
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        };
        f(&mut q);
        q
    };
    let all = s.audit.audit(&q(|_| {})).await.unwrap();
    assert_eq!(all.len(), 4);
    let mut newest_first = events.clone();
    newest_first.reverse();
    assert_eq!(all, newest_first);
    let got = s
        .audit
        .audit(&q(|q| q.app_id = Some("x".into())))
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    let got = s
        .audit
        .audit(&q(|q| {
            q.user_id = Some("u1".into());
            q.outcome = Some(AuditOutcome::Denied);
        }))
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["evt_04"]
    );
    let got = s
        .audit
        .audit(&q(|q| {
            q.since = Some(T0.add_secs(2));
            q.until = Some(T0.add_secs(4));
        }))
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["evt_03", "evt_02"]
    );
    let got = s
        .audit
        .audit(&q(|q| {
            q.before_id = Some("evt_03".into());
            q.limit = 1;
        }))
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["evt_02"]
    );
    assert!(matches!(
        s.audit.append_audit(Arc::from([events[0].clone()])).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    // A batch is one transaction: a duplicate in it leaves none of it stored.
    let fresh = event("evt_05", "x", "u3", AuditOutcome::Allowed, 5);
    assert!(matches!(
        s.audit
            .append_audit(Arc::from([fresh, events[0].clone()]))
            .await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(s.audit.audit(&q(|_| {})).await.unwrap(), newest_first);

    // What a replay reads: the app's decisions that carry inputs, in the window, newest first,
    // paged by id.
    let replayable = |f: fn(&mut AuditQuery)| {
        let query = q(f);
        async move {
            s.audit
                .recorded_decisions(&query)
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.id, d.user_id, d.requested_scopes, d.inputs))
                .collect::<Vec<_>>()
        }
    };
    let expected = |e: &AuditEvent| {
        (
            e.id.clone(),
            e.user_id.clone(),
            e.requested_scopes.clone(),
            e.inputs.clone().unwrap(),
        )
    };
    assert_eq!(
        replayable(|q| q.app_id = Some("x".into())).await,
        [expected(&events[1]), expected(&events[0])]
    );
    assert_eq!(
        replayable(|q| {
            q.app_id = Some("x".into());
            q.since = Some(T0.add_secs(2));
        })
        .await,
        [expected(&events[1])]
    );
    assert_eq!(
        replayable(|q| {
            q.app_id = Some("x".into());
            q.before_id = Some("evt_02".into());
        })
        .await,
        [expected(&events[0])]
    );
    assert_eq!(replayable(|q| q.app_id = Some("nope".into())).await, []);
}

/// Writes announce what they changed on the change feed, after they commit.
pub async fn writes_publish_changes(s: &Stores) {
    let mut rx = s.changes.subscribe();
    assert!(s.changes.is_live());
    s.apps.insert_app(&app("x")).await.unwrap();
    s.apps
        .insert_policy(&policy("x", "p1", "P"), 1)
        .await
        .unwrap();
    s.directory.insert_user(&user("u1")).await.unwrap();
    let key = ConnectionKey::user("x", "u1", None);
    s.connections
        .put_connection(&connection("c1", key.clone()))
        .await
        .unwrap();
    s.issuers
        .insert_issuer(&IssuerRecord {
            id: "i".into(),
            issuer: "https://i.example".into(),
            jwks_url: None,
            discovery_url: None,
            audiences: vec!["a".into()],
            algorithms: vec!["ES256".into()],
            roles_claim: None,
            tenant_claim: None,
            clock_skew_seconds: 0,
            required_typ: None,
            created_at: T0,
            updated_at: T0,
        })
        .await
        .unwrap();
    s.directory.delete_user("u1").await.unwrap();
    let expected = [
        Change::App("x".into()),
        Change::User("u1".into()),
        Change::Connection(key),
        Change::Issuers,
    ];
    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !expected.iter().all(|c| seen.contains(c)) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ChangeEvent::Changed(c))) => {
                seen.insert(c);
            }
            Ok(Ok(ChangeEvent::Reset)) => {}
            Ok(Err(e)) => panic!("the feed failed: {e}"),
            Err(_) => panic!("missing changes: saw {seen:?}"),
        }
    }
}

/// Management events round-trip, and filter by actor, action, target (the target or anything
/// under it, wildcards taken literally) and time, newest first, a page at a time.
pub async fn management_events_filter_and_page(s: &Stores) {
    let event = |id: &str, actor: &str, action: &str, target: &str, secs: i64| ManagementEvent {
        id: id.to_owned(),
        at: T0.add_secs(secs),
        actor_id: actor.to_owned(),
        actor_name: format!("key {actor}"),
        action: action.to_owned(),
        target: target.to_owned(),
        change: serde_json::json!({"after": {"name": id}})
            .as_object()
            .cloned()
            .unwrap(),
        request_id: (secs % 2 == 0).then(|| format!("req-{id}")),
    };
    let all = [
        event("chg_1", "ak_a", "app.create", "outbound-apps/cal", 1),
        event(
            "chg_2",
            "ak_a",
            "policy.create",
            "outbound-apps/cal/policies/p1",
            2,
        ),
        event(
            "chg_3",
            "ak_b",
            "policy.update",
            "outbound-apps/cal/policies/p1",
            3,
        ),
        event("chg_4", "ak_b", "app.create", "outbound-apps/calx", 4),
        event("chg_5", "ak_b", "user.create", "users/a_b", 5),
    ];
    for e in &all {
        s.management.append_management(e).await.unwrap();
    }
    assert!(matches!(
        s.management.append_management(&all[0]).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let ids = |v: Vec<ManagementEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let q = |f: fn(&mut ManagementQuery)| {
        let mut q = ManagementQuery {
            limit: 10,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let got = s.management.management_events(&q(|_| {})).await.unwrap();
    assert_eq!(got[0], all[4]);
    assert_eq!(ids(got), ["chg_5", "chg_4", "chg_3", "chg_2", "chg_1"]);
    let by = |f| async move { ids(s.management.management_events(&q(f)).await.unwrap()) };
    assert_eq!(
        by(|q| q.actor_id = Some("ak_a".into())).await,
        ["chg_2", "chg_1"]
    );
    assert_eq!(
        by(|q| q.action = Some("app.create".into())).await,
        ["chg_4", "chg_1"]
    );
    assert_eq!(
        by(|q| q.target = Some("outbound-apps/cal".into())).await,
        ["chg_3", "chg_2", "chg_1"]
    );
    assert_eq!(
        by(|q| q.target = Some("users/a%".into())).await,
        Vec::<String>::new()
    );
    assert_eq!(by(|q| q.target = Some("users/a_b".into())).await, ["chg_5"]);
    assert_eq!(
        by(|q| {
            q.since = Some(T0.add_secs(2));
            q.until = Some(T0.add_secs(4));
        })
        .await,
        ["chg_3", "chg_2"]
    );
    assert_eq!(
        by(|q| {
            q.before_id = Some("chg_3".into());
            q.limit = 1;
        })
        .await,
        ["chg_2"]
    );
}

/// Rejected requests are counted per minute, surface and reason: adding to an existing row sums.
pub async fn rejected_counts_add_up(s: &Stores) {
    let count = |minute: i64, surface: &str, reason: &str, n: u64| RejectedCount {
        minute: T0.add_secs(60 * minute),
        surface: surface.to_owned(),
        reason: reason.to_owned(),
        count: n,
    };
    s.audit
        .add_rejected(&[
            count(0, "token", "missing_token", 3),
            count(0, "token", "expired", 1),
        ])
        .await
        .unwrap();
    s.audit
        .add_rejected(&[
            count(0, "token", "missing_token", 4),
            count(1, "oauth", "rate_limited", 2),
        ])
        .await
        .unwrap();
    s.audit.add_rejected(&[]).await.unwrap();
    let all = s.audit.rejected(None, None, 10).await.unwrap();
    assert_eq!(
        all,
        [
            count(1, "oauth", "rate_limited", 2),
            count(0, "token", "expired", 1),
            count(0, "token", "missing_token", 7),
        ]
    );
    let first_minute = s
        .audit
        .rejected(Some(T0), Some(T0.add_secs(60)), 10)
        .await
        .unwrap();
    assert_eq!(first_minute.len(), 2);
    assert_eq!(s.audit.rejected(None, None, 1).await.unwrap().len(), 1);
}

/// Retention deletes decision events, management events and rejected counts older than the
/// cutoff, a bounded number at a time, and keeps everything newer.
pub async fn audit_retention_prunes_old_rows(s: &Stores) {
    let events: Vec<AuditEvent> = (0..5)
        .map(|i| {
            event(
                &format!("evt_0{i}"),
                "x",
                "u1",
                AuditOutcome::Allowed,
                i * 100,
            )
        })
        .collect();
    s.audit.append_audit(events.into()).await.unwrap();
    for (id, secs) in [("chg_1", 10), ("chg_2", 450)] {
        s.management
            .append_management(&ManagementEvent {
                id: id.to_owned(),
                at: T0.add_secs(secs),
                actor_id: "ak_a".into(),
                actor_name: "a".into(),
                action: "app.create".into(),
                target: "outbound-apps/x".into(),
                change: serde_json::Map::new(),
                request_id: None,
            })
            .await
            .unwrap();
    }
    s.audit
        .add_rejected(&[
            RejectedCount {
                minute: T0,
                surface: "token".into(),
                reason: "expired".into(),
                count: 1,
            },
            RejectedCount {
                minute: T0.add_secs(600),
                surface: "token".into(),
                reason: "expired".into(),
                count: 1,
            },
        ])
        .await
        .unwrap();
    // Cutoff at +250 s: events 0, 1, 2 (0, 100, 200 s), chg_1 and the first count are older.
    let cutoff = T0.add_secs(250);
    assert_eq!(s.audit.prune_audit(cutoff, 2).await.unwrap(), 4);
    assert_eq!(s.audit.prune_audit(cutoff, 2).await.unwrap(), 1);
    assert_eq!(s.audit.prune_audit(cutoff, 2).await.unwrap(), 0);
    let left: Vec<String> = s
        .audit
        .audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, ["evt_04", "evt_03"]);
    let changes = s
        .management
        .management_events(&ManagementQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].id, "chg_2");
    assert_eq!(s.audit.rejected(None, None, 10).await.unwrap().len(), 1);
}

/// A change set applies all or nothing: when its last write fails, none of the others is there;
/// when every write succeeds, all are, in order (policy writes see the app's new revision).
pub async fn change_sets_apply_all_or_nothing(s: &Stores) {
    let mut user_x = user("ux");
    user_x.roles = vec!["editor".into()];
    let failing = [
        Write::InsertRole(role("editor")),
        Write::InsertTenant(tenant("acme")),
        Write::InsertUser(user_x.clone()),
        Write::InsertApp(app("cal")),
        Write::InsertPolicy {
            policy: policy("cal", "pol_1", "Viewers"),
            expected_app_revision: 1,
        },
        // The name is taken by the policy just written.
        Write::InsertPolicy {
            policy: policy("cal", "pol_2", "viewers"),
            expected_app_revision: 2,
        },
    ];
    assert!(matches!(
        s.apply.apply_writes(&failing).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(s.directory.role("editor").await.unwrap().is_none());
    assert!(s.directory.tenant("acme").await.unwrap().is_none());
    assert!(s.directory.user("ux").await.unwrap().is_none());
    assert!(s.apps.app("cal").await.unwrap().is_none());

    let mut renamed = app("cal");
    renamed.name = "Calendar".into();
    renamed.revision = 3;
    let mut updated_role = role("editor");
    updated_role.description = Some("edits".into());
    let ok = [
        Write::InsertRole(role("editor")),
        Write::UpdateRole(updated_role.clone()),
        Write::InsertTenant(tenant("acme")),
        Write::InsertUser(user_x.clone()),
        Write::InsertApp(app("cal")),
        Write::InsertPolicy {
            policy: policy("cal", "pol_1", "Viewers"),
            expected_app_revision: 1,
        },
        Write::UpdateApp {
            app: renamed.clone(),
            expected_revision: 2,
        },
        Write::InsertPolicy {
            policy: policy("cal", "pol_2", "Editors"),
            expected_app_revision: 3,
        },
        Write::DeletePolicy {
            app_id: "cal".into(),
            id: "pol_1".into(),
        },
        Write::Management(ManagementEvent {
            id: "chg_apply".into(),
            at: T0,
            actor_id: "ak_a".into(),
            actor_name: "a".into(),
            action: "apply".into(),
            target: "apply".into(),
            change: serde_json::Map::new(),
            request_id: None,
        }),
    ];
    s.apply.apply_writes(&ok).await.unwrap();
    assert_eq!(
        s.directory.role("editor").await.unwrap(),
        Some(updated_role)
    );
    assert!(s.directory.user("ux").await.unwrap().is_some());
    let (app_now, policies) = s.apps.app_with_policies("cal").await.unwrap().unwrap();
    assert_eq!(app_now.name, "Calendar");
    assert_eq!(app_now.revision, 5);
    assert_eq!(
        policies.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["pol_2"]
    );
    let changes = s
        .management
        .management_events(&ManagementQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    // A stale revision fails the whole set.
    let stale = [
        Write::UpdateRole(role("editor")),
        Write::UpdateApp {
            app: app("cal"),
            expected_revision: 1,
        },
    ];
    assert!(matches!(
        s.apply.apply_writes(&stale).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.directory
            .role("editor")
            .await
            .unwrap()
            .unwrap()
            .description,
        Some("edits".into())
    );
}

/// Seal counts add up per data key; an unknown key is not found.
pub async fn data_key_seals_add_up(s: &Stores) {
    let k1 = DataKeyRecord {
        id: 1,
        master_key_id: "m1".into(),
        wrapped: vec![1; 60],
        active: true,
        created_at: T0,
    };
    s.keys.insert_first_data_key(&k1).await.unwrap();
    assert_eq!(s.keys.add_seals(1, 5).await.unwrap(), 5);
    assert_eq!(s.keys.add_seals(1, 1_000_000).await.unwrap(), 1_000_005);
    assert!(matches!(
        s.keys.add_seals(2, 1).await,
        Err(StoreError::NotFound { .. })
    ));
}

fn code(hash: &str, family: &str) -> portcullis_domain::CodeRecord {
    portcullis_domain::CodeRecord {
        hash: hash.to_owned(),
        family_id: family.to_owned(),
        client_id: "cli".into(),
        user_id: "u1".into(),
        resource: "https://mcp.example/".into(),
        scopes: vec!["tools.read".into(), "outbound.token.fetch".into()],
        redirect_uri: "http://127.0.0.1/cb".into(),
        code_challenge: "challenge".into(),
        auth_time: T0,
        created_at: T0,
        expires_at: T0.add_secs(60),
        // One code with an OpenID Connect nonce, the others without: both read back as written.
        nonce: (hash == "c1").then(|| "n-0S6_WzA2Mj".to_owned()),
    }
}

fn refresh(hash: &str, family: &str, client: &str) -> portcullis_domain::RefreshRecord {
    portcullis_domain::RefreshRecord {
        hash: hash.to_owned(),
        family_id: family.to_owned(),
        client_id: client.to_owned(),
        user_id: "u1".into(),
        resource: "https://mcp.example/".into(),
        scopes: vec!["tools.read".into()],
        auth_time: T0,
        created_at: T0,
        expires_at: T0.add_secs(3600),
        rotated_at: None,
        revoked_at: None,
    }
}

/// A code is redeemed once, even by many at once; presenting it again revokes the refresh tokens
/// of its family. A refresh token rotates once: its successor carries the grant on, and
/// presenting the spent one revokes the whole family, successor included.
pub async fn grants_redeem_once_and_rotate(s: &Stores) {
    use portcullis_domain::{Redemption, Rotation};
    s.grants.insert_code(&code("c1", "f1")).await.unwrap();
    assert!(matches!(
        s.grants.insert_code(&code("c1", "f9")).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let g = s.grants.clone();
        tasks.push(tokio::spawn(async move {
            g.redeem_code("c1", T0.add_secs(1)).await.unwrap()
        }));
    }
    let mut redeemed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Redemption::Redeemed(c) => {
                assert_eq!(c, code("c1", "f1"));
                redeemed += 1;
            }
            Redemption::Reused(c) => assert_eq!(c.family_id, "f1"),
            Redemption::Unknown => panic!("the code was stored"),
        }
    }
    assert_eq!(redeemed, 1);
    assert_eq!(
        s.grants.redeem_code("nope", T0).await.unwrap(),
        Redemption::Unknown
    );

    // The family the code started: its first token rotates once.
    s.grants
        .insert_refresh(&refresh("r1", "f1", "cli"))
        .await
        .unwrap();
    let next = portcullis_domain::RefreshRecord {
        created_at: T0.add_secs(10),
        expires_at: T0.add_secs(3610),
        ..refresh("r2", "ignored", "ignored")
    };
    // A presentation the check refuses changes nothing, whatever the token's state.
    let refused = s
        .grants
        .rotate_refresh(
            "f1",
            "r1",
            &next,
            T0.add_secs(10),
            Box::new(|r| r.client_id == "other"),
        )
        .await
        .unwrap();
    assert!(
        matches!(refused, Rotation::Refused(ref r) if r.hash == "r1" && r.rotated_at.is_none())
    );
    assert!(s.grants.refresh_token("f1", "r2").await.unwrap().is_none());
    let Rotation::Rotated(r2) = s
        .grants
        .rotate_refresh("f1", "r1", &next, T0.add_secs(10), any())
        .await
        .unwrap()
    else {
        panic!("an active token rotates");
    };
    assert_eq!((r2.hash.as_str(), r2.family_id.as_str()), ("r2", "f1"));
    assert_eq!(r2.client_id, "cli");
    assert_eq!(r2.expires_at, T0.add_secs(3610));
    assert!(r2.is_active(T0.add_secs(10)));
    let spent = s.grants.refresh_token("f1", "r1").await.unwrap().unwrap();
    assert_eq!(spent.rotated_at, Some(T0.add_secs(10)));
    // A spent token the check refuses revokes nothing.
    let refused = s
        .grants
        .rotate_refresh(
            "f1",
            "r1",
            &refresh("r3", "f1", "cli"),
            T0.add_secs(15),
            Box::new(|_| false),
        )
        .await
        .unwrap();
    assert!(matches!(refused, Rotation::Refused(_)));
    assert!(
        s.grants
            .refresh_token("f1", "r2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    // Replaying the spent token revokes the family, its successor included.
    let replay = s
        .grants
        .rotate_refresh(
            "f1",
            "r1",
            &refresh("r3", "f1", "cli"),
            T0.add_secs(20),
            any(),
        )
        .await
        .unwrap();
    assert!(matches!(replay, Rotation::Reused(ref r) if r.hash == "r1"));
    assert!(s.grants.refresh_token("f1", "r3").await.unwrap().is_none());
    let r2 = s.grants.refresh_token("f1", "r2").await.unwrap().unwrap();
    assert_eq!(r2.revoked_at, Some(T0.add_secs(20)));
    assert!(matches!(
        s.grants
            .rotate_refresh(
                "f1",
                "r2",
                &refresh("r4", "f1", "cli"),
                T0.add_secs(21),
                any()
            )
            .await
            .unwrap(),
        Rotation::Inactive(_)
    ));
    assert_eq!(
        s.grants
            .rotate_refresh("f1", "nope", &refresh("r5", "f1", "cli"), T0, any())
            .await
            .unwrap(),
        Rotation::Unknown
    );
    // An expired token does not rotate.
    s.grants
        .insert_refresh(&refresh("e1", "f2", "cli"))
        .await
        .unwrap();
    assert!(matches!(
        s.grants
            .rotate_refresh(
                "f2",
                "e1",
                &refresh("e2", "f2", "cli"),
                T0.add_secs(3600),
                any()
            )
            .await
            .unwrap(),
        Rotation::Inactive(_)
    ));

    // A code presented again after its family got tokens revokes them.
    s.grants.insert_code(&code("c2", "f3")).await.unwrap();
    assert!(matches!(
        s.grants.redeem_code("c2", T0).await.unwrap(),
        Redemption::Redeemed(_)
    ));
    s.grants
        .insert_refresh(&refresh("g1", "f3", "cli"))
        .await
        .unwrap();
    assert!(matches!(
        s.grants.redeem_code("c2", T0.add_secs(5)).await.unwrap(),
        Redemption::Reused(_)
    ));
    let g1 = s.grants.refresh_token("f3", "g1").await.unwrap().unwrap();
    assert_eq!(g1.revoked_at, Some(T0.add_secs(5)));
    // A first redemption storing its token after the replay was seen stores nothing.
    assert!(
        !s.grants
            .insert_code_refresh("c2", &refresh("g2", "f3", "cli"))
            .await
            .unwrap()
    );
    assert!(s.grants.refresh_token("f3", "g2").await.unwrap().is_none());
    s.grants.insert_code(&code("c3", "f6")).await.unwrap();
    s.grants.redeem_code("c3", T0).await.unwrap();
    let mut g3 = refresh("g3", "f6", "cli");
    g3.user_id = "u3".into();
    assert!(s.grants.insert_code_refresh("c3", &g3).await.unwrap());

    // A user's grants to one client, then to all, are revoked.
    s.grants
        .insert_refresh(&refresh("h1", "f4", "a"))
        .await
        .unwrap();
    s.grants
        .insert_refresh(&refresh("h2", "f5", "b"))
        .await
        .unwrap();
    assert_eq!(
        s.grants
            .revoke_user_grants("u1", Some("a"), T0.add_secs(30))
            .await
            .unwrap(),
        1
    );
    assert!(
        s.grants
            .refresh_token("f5", "h2")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert_eq!(
        s.grants
            .revoke_user_grants("u1", None, T0.add_secs(31))
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.grants.revoke_family("f5", T0).await.unwrap(), 0);
    // A one-time assertion is used once; its record goes when it has expired.
    assert!(s.grants.use_assertion("a1", T0.add_secs(60)).await.unwrap());
    assert!(!s.grants.use_assertion("a1", T0.add_secs(60)).await.unwrap());
    // Expired grants are purged.
    assert!(s.grants.purge_grants(T0.add_secs(3601)).await.unwrap() >= 7);
    assert!(s.grants.refresh_token("f4", "h1").await.unwrap().is_none());
    assert!(s.grants.refresh_token("f1", "r2").await.unwrap().is_some());
    // A token is found only with its own family.
    assert!(s.grants.refresh_token("f2", "r2").await.unwrap().is_none());
    assert!(s.grants.use_assertion("a1", T0.add_secs(60)).await.unwrap());
}

/// Consents are kept per user, client and resource, widened in place and forgotten per client or
/// all at once; passwords belong to existing users, and failed sign-ins lock at the limit.
pub async fn consents_and_passwords(s: &Stores) {
    s.directory.insert_user(&user("u1")).await.unwrap();
    let consent = |client: &str, scopes: &[&str], at: i64| portcullis_domain::ConsentRecord {
        user_id: "u1".into(),
        client_id: client.into(),
        resource: "https://mcp.example/".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        created_at: T0,
        updated_at: T0.add_secs(at),
    };
    s.grants
        .put_consent(&consent("a", &["x"], 0))
        .await
        .unwrap();
    s.grants
        .put_consent(&consent("a", &["x", "y"], 5))
        .await
        .unwrap();
    s.grants
        .put_consent(&consent("b", &["x"], 0))
        .await
        .unwrap();
    assert_eq!(
        s.grants
            .consent("u1", "a", "https://mcp.example/")
            .await
            .unwrap(),
        Some(consent("a", &["x", "y"], 5))
    );
    assert_eq!(s.grants.consents("u1").await.unwrap().len(), 2);
    assert_eq!(s.grants.delete_consents("u1", Some("a")).await.unwrap(), 1);
    assert_eq!(
        s.grants.consents("u1").await.unwrap(),
        vec![consent("b", &["x"], 0)]
    );
    assert_eq!(s.grants.delete_consents("u1", None).await.unwrap(), 1);

    assert!(matches!(
        s.grants.set_password("ghost", "$argon2id$x", T0).await,
        Err(StoreError::NotFound { .. })
    ));
    s.grants
        .set_password("u1", "$argon2id$1", T0)
        .await
        .unwrap();
    let after = |n: u32| async move {
        let mut last = None;
        for _ in 0..n {
            last = s.grants.sign_in_failed("u1", T0, 3, 60).await.unwrap();
        }
        last.unwrap()
    };
    let two = after(2).await;
    assert_eq!((two.failures, two.locked_until), (2, None));
    s.grants.sign_in_succeeded("u1").await.unwrap();
    let three = after(3).await;
    assert_eq!(
        (three.failures, three.locked_until),
        (0, Some(T0.add_secs(60)))
    );
    // A new password clears the lockout.
    s.grants
        .set_password("u1", "$argon2id$2", T0.add_secs(1))
        .await
        .unwrap();
    let p = s.grants.password("u1").await.unwrap().unwrap();
    assert_eq!((p.hash.as_str(), p.locked_until), ("$argon2id$2", None));
    assert_eq!(
        s.grants.user_id_by_email("u1@example.com").await.unwrap(),
        Some("u1".to_owned())
    );
    assert_eq!(
        s.grants
            .user_id_by_email("nobody@example.com")
            .await
            .unwrap(),
        None
    );
    assert!(
        s.grants
            .sign_in_failed("ghost", T0, 3, 60)
            .await
            .unwrap()
            .is_none()
    );
    // A deleted user's password and consents go with them.
    s.grants
        .put_consent(&consent("a", &["x"], 0))
        .await
        .unwrap();
    s.directory.delete_user("u1").await.unwrap();
    assert!(s.grants.password("u1").await.unwrap().is_none());
    assert!(s.grants.consents("u1").await.unwrap().is_empty());
}

/// Many rotations at once (as a busy server sees them): each token presented twice at the same
/// moment rotates once, and the other presentation is the replay that revokes its family.
pub async fn refresh_rotations_race(s: &Stores) {
    use portcullis_domain::Rotation;
    for i in 0..20 {
        s.grants
            .insert_refresh(&refresh(&format!("t{i}"), &format!("fam{i}"), "cli"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..20 {
        for twin in 0..2 {
            let g = s.grants.clone();
            tasks.push(tokio::spawn(async move {
                let next = refresh(&format!("t{i}-{twin}"), "x", "x");
                (
                    i,
                    g.rotate_refresh(
                        &format!("fam{i}"),
                        &format!("t{i}"),
                        &next,
                        T0.add_secs(1),
                        any(),
                    )
                    .await
                    .unwrap(),
                )
            }));
        }
    }
    let mut rotated = [0; 20];
    let mut reused = [0; 20];
    for t in tasks {
        match t.await.unwrap() {
            (i, Rotation::Rotated(r)) => {
                assert_eq!(r.family_id, format!("fam{i}"));
                rotated[i] += 1;
            }
            (i, Rotation::Reused(_)) => reused[i] += 1,
            (_, other) => panic!("{other:?}"),
        }
    }
    assert_eq!(rotated, [1; 20]);
    assert_eq!(reused, [1; 20]);
    for i in 0..20 {
        // The winner's successor is revoked with its family.
        for twin in 0..2 {
            if let Some(r) = s
                .grants
                .refresh_token(&format!("fam{i}"), &format!("t{i}-{twin}"))
                .await
                .unwrap()
            {
                assert!(r.revoked_at.is_some(), "{r:?}");
            }
        }
    }
}

/// A rotation check that admits every presentation.
fn any() -> portcullis_domain::RotationCheck {
    Box::new(|_| true)
}
