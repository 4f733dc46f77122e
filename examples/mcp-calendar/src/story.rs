//! The calendar story's configuration of Portcullis, through its management API: the MCP server
//! (a resource), its client, the calendar and CRM apps with their policies, the roles Viewer and
//! Editor, and two users — who may also sign in through the example's OpenID provider, whose
//! groups then give them their roles. What the end-to-end test, the load driver and the demo
//! start from.

use portcullis_client::{Client, ClientError};
use serde_json::{Value, json};

/// The OAuth client Portcullis is at the example's provider.
pub const CLIENT_ID: &str = "portcullis";
/// Its secret.
pub const CLIENT_SECRET: &str = "calendar-secret";
/// The public client users sign in with (any loopback port, RFC 8252).
pub const MCP_CLIENT: &str = "desktop";
/// Its redirect URI.
pub const MCP_REDIRECT: &str = "http://127.0.0.1/callback";
/// The client Portcullis is at the example's OpenID provider.
pub const SSO_CLIENT_ID: &str = "portcullis-sso";
/// Its secret.
pub const SSO_CLIENT_SECRET: &str = "sso-secret";
/// The SSO connection's id.
pub const SSO_CONNECTION: &str = "entra";
/// The group whose members are Viewers.
pub const VIEWERS_GROUP: &str = "calendar-viewers";
/// The group whose members are Editors.
pub const EDITORS_GROUP: &str = "calendar-editors";

/// The story's people as the OpenID provider knows them: Vera in the viewers' group, Eddie in
/// the editors'. Their subjects are their user ids.
pub fn people() -> Vec<crate::idp::Person> {
    [
        ("vera", "Vera Viewer", VIEWERS_GROUP),
        ("eddie", "Eddie Editor", EDITORS_GROUP),
    ]
    .into_iter()
    .map(|(id, name, group)| crate::idp::Person {
        subject: id.to_owned(),
        email: format!("{id}@example.com"),
        name: name.to_owned(),
        groups: vec![group.to_owned(), "everyone".to_owned()],
    })
    .collect()
}

/// Where the story's parts are.
#[derive(Debug, Clone, Copy)]
pub struct Story<'a> {
    /// The example services' base URL.
    pub services: &'a str,
    /// The MCP server's resource URI.
    pub resource: &'a str,
    /// The users' password.
    pub password: &'a str,
    /// The CRM's API key (the app's, for every user).
    pub crm_key: &'a str,
    /// The example's OpenID provider (its issuer), if users sign in through it: then an SSO
    /// connection maps its groups to the roles, which users get at their first sign-in.
    pub idp: Option<&'a str>,
}

/// What [`configure`] made that a story changes later.
#[derive(Debug, Clone)]
pub struct Configured {
    /// The id of the policy "Viewers read" (calendar.readonly for Viewers and Editors).
    pub viewers_read: String,
}

/// Configures Portcullis for the story with an admin client (an admin key with every scope).
/// Users: `vera@example.com` (Viewer) and `eddie@example.com` (Editor), each with the story's
/// password; with an OpenID provider, linked to their identities there, and their roles come
/// from its groups.
///
/// # Errors
/// The first management call that fails.
pub async fn configure(admin: &Client, story: &Story<'_>) -> Result<Configured, ClientError> {
    admin
        .post(
            "/v1/mgmt/resources",
            &json!({"id": "calendar-mcp", "uri": story.resource, "name": "Calendar",
                "scopes": [{"name": "calendar.read", "description": "See your events"},
                           {"name": "calendar.write", "description": "Create events"},
                           {"name": "crm.read", "description": "Look customers up"}]}),
        )
        .await?;
    admin
        .post(
            "/v1/mgmt/clients",
            &json!({"id": MCP_CLIENT, "name": "Desktop agent", "redirectUris": [MCP_REDIRECT],
                "tokenEndpointAuthMethod": "none"}),
        )
        .await?;
    admin
        .post(
            "/v1/mgmt/outbound-apps",
            &json!({"id": "calendar", "name": "Calendar", "type": "oauth",
                "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
                "authorizationUrl": format!("{}/oauth/authorize", story.services),
                "tokenUrl": format!("{}/oauth/token", story.services),
                "scopes": [{"name": crate::READ}, {"name": crate::WRITE}],
                "defaultScopes": [crate::READ], "pkce": true}),
        )
        .await?;
    admin
        .post(
            "/v1/mgmt/outbound-apps",
            &json!({"id": "crm", "name": "CRM", "type": "apiKey"}),
        )
        .await?;
    admin
        .post(
            "/v1/mgmt/outbound-apps/crm/api-keys",
            &json!({"apiKey": story.crm_key}),
        )
        .await?;
    for role in ["Viewer", "Editor"] {
        admin.post("/v1/mgmt/roles", &json!({"name": role})).await?;
    }
    if let Some(issuer) = story.idp {
        admin
            .post(
                "/v1/mgmt/sso-connections",
                &json!({"id": SSO_CONNECTION, "name": "Entra ID (demo)", "issuer": issuer,
                    "clientId": SSO_CLIENT_ID, "clientSecret": SSO_CLIENT_SECRET,
                    "mappings": [
                        {"claim": "groups", "value": VIEWERS_GROUP, "roles": ["Viewer"]},
                        {"claim": "groups", "value": EDITORS_GROUP, "roles": ["Editor"]}]}),
            )
            .await?;
    }
    for (id, role) in [("vera", "Viewer"), ("eddie", "Editor")] {
        let mut user = json!({"id": id, "email": format!("{id}@example.com")});
        match story.idp {
            Some(issuer) => user["identities"] = json!([{"issuer": issuer, "subject": id}]),
            None => user["roles"] = json!([role]),
        }
        admin.post("/v1/mgmt/users", &user).await?;
        admin
            .put(
                &format!("/v1/mgmt/users/{id}/password"),
                &json!({"password": story.password}),
            )
            .await?;
    }
    let policy = |app: &str, name: &str, condition: Value, scopes: Value| {
        let path = format!("/v1/mgmt/outbound-apps/{app}/policies");
        let body = json!({"name": name, "conditions": [condition], "scopes": scopes});
        async move { admin.post(&path, &body).await }
    };
    let viewers_read = policy(
        "calendar",
        "Viewers read",
        json!({"source": "userRoles", "operator": "in", "value": ["Viewer", "Editor"]}),
        json!([crate::READ]),
    )
    .await?;
    policy(
        "calendar",
        "Editors write",
        json!({"source": "userRoles", "operator": "equals", "value": "Editor"}),
        json!("all"),
    )
    .await?;
    policy(
        "crm",
        "Viewers look up",
        json!({"source": "userRoles", "operator": "equals", "value": "Viewer"}),
        json!("all"),
    )
    .await?;
    Ok(Configured {
        viewers_read: viewers_read["id"].as_str().unwrap_or_default().to_owned(),
    })
}
