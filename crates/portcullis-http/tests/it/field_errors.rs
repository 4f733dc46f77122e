//! A management refusal about a field of the body says which field, as data: `details` is
//! `[{"path": <the field's JSON path on the wire>, "message": <the message>}]`, the shape of the
//! policy validation errors, so that a client (the console) puts it beside the field without
//! reading the message. And a refused write stores nothing.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use portcullis_http::AppState;
use serde_json::{Value, json};

struct Api {
    router: Router,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (core, admin) =
            crate::core_on_sqlite(dir.path(), crate::unlimited(), "field-errors").await;
        let router = portcullis_http::router(AppState {
            core,
            metrics: None,
        });
        Self {
            router,
            admin,
            _dir: dir,
        }
    }

    /// An admin's request: the status and the JSON body (`null` when there is none).
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (status, _, bytes) = crate::send(&self.router, req.body(body).unwrap()).await;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    /// Sends a write that must be refused with a 400 `code` about the field at `path`: checks the
    /// answer's shape and returns its message.
    async fn refused_at(
        &self,
        method: Method,
        uri: &str,
        body: Value,
        code: &str,
        path: &str,
    ) -> String {
        let (status, e) = self.call(method.clone(), uri, Some(body)).await;
        let what = format!("{method} {uri}: {status} {e}");
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(e["error"], code, "{what}");
        let message = e["message"].as_str().expect("a message").to_owned();
        assert_eq!(
            e["details"],
            json!([{"path": path, "message": message}]),
            "{what}"
        );
        message
    }

    async fn status(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }
}

fn oauth_app(id: &str, scopes: Value) -> Value {
    json!({
        "id": id, "name": "Calendar", "type": "oauth",
        "clientId": "calendar-client", "clientSecret": "calendar-secret",
        "authorizationUrl": "https://provider.example/authorize",
        "tokenUrl": "https://provider.example/token",
        "scopes": scopes,
    })
}

#[tokio::test]
async fn an_app_is_refused_at_the_field_at_fault_and_stays_as_it_was() {
    let api = Api::start().await;
    // A scope name with a space: the second scope's name.
    let message = api
        .refused_at(
            Method::POST,
            "/v1/mgmt/outbound-apps",
            oauth_app("cal", json!([{"name": "read"}, {"name": "write all"}])),
            "invalid_app",
            "scopes[1].name",
        )
        .await;
    assert!(message.starts_with("scopes[1].name must be"), "{message}");
    assert_eq!(
        api.status("/v1/mgmt/outbound-apps/cal").await.0,
        StatusCode::NOT_FOUND
    );
    // A scope listed twice: the second time.
    api.refused_at(
        Method::POST,
        "/v1/mgmt/outbound-apps",
        oauth_app(
            "cal",
            json!([{"name": "read"}, {"name": "write"}, {"name": "read"}]),
        ),
        "invalid_app",
        "scopes[2].name",
    )
    .await;
    // A default scope the app does not offer.
    let mut body = oauth_app("cal", json!([{"name": "read"}]));
    body["defaultScopes"] = json!(["read", "admin"]);
    api.refused_at(
        Method::POST,
        "/v1/mgmt/outbound-apps",
        body,
        "invalid_app",
        "defaultScopes[1]",
    )
    .await;

    // A change with a bad URL is refused at that URL, and the app keeps its settings.
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/mgmt/outbound-apps",
            Some(oauth_app("cal", json!([{"name": "read"}]))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let mut change = oauth_app("cal", json!([{"name": "read"}]));
    change["tokenUrl"] = json!("not a url");
    let message = api
        .refused_at(
            Method::PUT,
            "/v1/mgmt/outbound-apps/cal",
            change,
            "invalid_url",
            "tokenUrl",
        )
        .await;
    assert!(
        message.starts_with("tokenUrl is not a valid absolute URL"),
        "{message}"
    );
    let (status, app) = api.status("/v1/mgmt/outbound-apps/cal").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app["tokenUrl"], "https://provider.example/token");
    assert_eq!(app["revision"], created["revision"]);
}

#[tokio::test]
async fn a_client_with_a_bad_second_redirect_uri_is_refused_at_it() {
    let api = Api::start().await;
    let message = api
        .refused_at(
            Method::POST,
            "/v1/mgmt/clients",
            json!({
                "id": "web", "name": "Web app",
                "redirectUris": ["https://app.example/callback", "http://app.example/callback"],
            }),
            "invalid_redirect_uri",
            "redirectUris[1]",
        )
        .await;
    assert!(
        message.starts_with("redirect URI http://app.example/callback: "),
        "{message}"
    );
    assert_eq!(
        api.status("/v1/mgmt/clients/web").await.0,
        StatusCode::NOT_FOUND
    );
    // A rule across fields goes to the field to change: a public client's grants.
    api.refused_at(
        Method::POST,
        "/v1/mgmt/clients",
        json!({
            "id": "cli", "name": "CLI", "tokenEndpointAuthMethod": "none",
            "grantTypes": ["client_credentials"],
        }),
        "invalid_request",
        "grantTypes",
    )
    .await;
    assert_eq!(
        api.status("/v1/mgmt/clients/cli").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_sso_connection_with_a_bad_mapping_is_refused_at_it() {
    let api = Api::start().await;
    let connection = |mappings: Value| {
        json!({
            "id": "entra", "name": "Entra ID", "issuer": "https://login.example.com/tenant/v2.0",
            "clientId": "portcullis", "clientSecret": "sso-secret",
            "mappings": mappings,
        })
    };
    let message = api
        .refused_at(
            Method::POST,
            "/v1/mgmt/sso-connections",
            connection(json!([{"claim": "", "value": "admins", "roles": []}])),
            "invalid_mapping",
            "mappings[0].claim",
        )
        .await;
    assert!(message.starts_with("mappings[0].claim: "), "{message}");
    assert_eq!(
        api.status("/v1/mgmt/sso-connections/entra").await.0,
        StatusCode::NOT_FOUND
    );
    api.refused_at(
        Method::POST,
        "/v1/mgmt/sso-connections",
        connection(json!([
            {"claim": "groups", "value": "admins", "roles": []},
            {"claim": "groups", "value": "", "roles": []},
        ])),
        "invalid_mapping",
        "mappings[1].value",
    )
    .await;
    assert_eq!(
        api.status("/v1/mgmt/sso-connections/entra").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_user_is_refused_at_the_field_at_fault_and_stays_as_it_was() {
    let api = Api::start().await;
    let message = api
        .refused_at(
            Method::POST,
            "/v1/mgmt/users",
            json!({"id": "alice", "email": "not an address"}),
            "invalid_request",
            "email",
        )
        .await;
    assert_eq!(message, "email is not a valid address");
    assert_eq!(
        api.status("/v1/mgmt/users/alice").await.0,
        StatusCode::NOT_FOUND
    );

    // A change with a bad identity link is refused at it; the user keeps the record it had.
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/mgmt/users",
            Some(json!({"id": "alice", "email": "alice@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    api.refused_at(
        Method::PUT,
        "/v1/mgmt/users/alice",
        json!({
            "email": "alice@example.org",
            "identities": [{"issuer": "https://idp.example", "subject": "a"}, {"issuer": "with space", "subject": "a"}],
        }),
        "invalid_request",
        "identities[1].issuer",
    )
    .await;
    let (status, user) = api.status("/v1/mgmt/users/alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["identities"], json!([]));
}

#[tokio::test]
async fn an_mcp_server_with_a_scope_listed_twice_is_refused_at_the_second() {
    let api = Api::start().await;
    let message = api
        .refused_at(
            Method::POST,
            "/v1/mgmt/resources",
            json!({
                "id": "notes", "name": "Notes", "uri": "https://mcp.example.com/notes",
                "scopes": [{"name": "notes.read"}, {"name": "notes.write"}, {"name": "notes.read"}],
            }),
            "invalid_scope",
            "scopes[2].name",
        )
        .await;
    assert_eq!(message, "scope notes.read is listed twice");
    assert_eq!(
        api.status("/v1/mgmt/resources/notes").await.0,
        StatusCode::NOT_FOUND
    );
    api.refused_at(
        Method::POST,
        "/v1/mgmt/resources",
        json!({"id": "notes", "name": "Notes", "uri": "https://mcp.example.com/notes#top"}),
        "invalid_resource_uri",
        "uri",
    )
    .await;
    assert_eq!(
        api.status("/v1/mgmt/resources/notes").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_names_the_part_at_fault() {
    let api = Api::start().await;
    let mut app = oauth_app("calendar", json!([{"name": "a"}, {"name": 5}]));
    let message = api
        .refused_at(
            Method::POST,
            "/v1/mgmt/outbound-apps",
            app.clone(),
            "invalid_body",
            "scopes[1].name",
        )
        .await;
    assert!(message.contains("invalid type: integer `5`"), "{message}");
    app["scopes"] = json!([{"name": "a"}]);
    app["colour"] = json!("red");
    api.refused_at(
        Method::POST,
        "/v1/mgmt/outbound-apps",
        app,
        "invalid_body",
        "colour",
    )
    .await;
    assert_eq!(
        api.status("/v1/mgmt/outbound-apps/calendar").await.0,
        StatusCode::NOT_FOUND
    );
    // A field missing from the body is the body's own problem: no part is named.
    let (status, e) = api
        .call(
            Method::POST,
            "/v1/mgmt/outbound-apps/calendar/policies/replay",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"], "invalid_body", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("missing field `policies`"),
        "{e}"
    );
    assert!(e.get("details").is_none(), "{e}");
    // In a desired state, the part is placed under its entry.
    let (status, e) = api
        .call(
            Method::POST,
            "/v1/mgmt/apply",
            Some(json!({"users": [{"id": "bob"}, {"id": "carol", "roles": "Viewer"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["details"][0]["path"], "users[1].roles", "{e}");
    assert_eq!(e["details"][0]["code"], "invalid_body", "{e}");
}

#[tokio::test]
async fn a_query_parameter_is_named_as_a_parameter_not_a_path() {
    let api = Api::start().await;
    for (uri, code, parameter) in [
        ("/v1/mgmt/users?limit=0", "invalid_request", "limit"),
        ("/v1/mgmt/users?limit=many", "invalid_query", "limit"),
        ("/v1/mgmt/issuers?colour=red", "invalid_query", "colour"),
        (
            "/v1/mgmt/outbound-apps?cursor=%25%25",
            "invalid_cursor",
            "cursor",
        ),
        ("/v1/mgmt/audit?outcome=maybe", "invalid_request", "outcome"),
        ("/v1/mgmt/audit?since=yesterday", "invalid_request", "since"),
        ("/v1/mgmt/audit?kind=all", "invalid_request", "kind"),
        (
            "/v1/mgmt/audit/summary?bucket=1",
            "invalid_request",
            "bucket",
        ),
        (
            "/v1/mgmt/audit/summary?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "invalid_request",
            "since",
        ),
    ] {
        let (status, e) = api.status(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {e}");
        assert_eq!(e["error"], code, "{uri}: {e}");
        assert_eq!(e["details"][0]["parameter"], parameter, "{uri}: {e}");
        assert_eq!(e["details"][0]["message"], e["message"], "{uri}: {e}");
        assert!(e["details"][0].get("path").is_none(), "{uri}: {e}");
    }
}

#[tokio::test]
async fn a_replay_window_or_limit_out_of_range_names_its_field() {
    let api = Api::start().await;
    let (status, e) = api
        .call(
            Method::POST,
            "/v1/mgmt/outbound-apps",
            Some(oauth_app(
                "calendar",
                json!([{"name": "calendar.readonly"}]),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let replay = "/v1/mgmt/outbound-apps/calendar/policies/replay";
    api.refused_at(
        Method::POST,
        replay,
        json!({"policies": [], "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        "invalid_request",
        "since",
    )
    .await;
    api.refused_at(
        Method::POST,
        replay,
        json!({"policies": [], "limit": 0}),
        "invalid_request",
        "limit",
    )
    .await;
}

#[tokio::test]
async fn errors_about_no_field_keep_no_path() {
    let api = Api::start().await;
    // A reference to a role that does not exist is a 409 naming the entity, not a path.
    let (status, e) = api
        .call(
            Method::POST,
            "/v1/mgmt/users",
            Some(json!({"id": "bob", "roles": ["Ghost"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["details"]["entity"], "role", "{e}");
}

#[tokio::test]
async fn a_value_taken_is_a_409_naming_what_collided() {
    let api = Api::start().await;
    let created = api
        .call(
            Method::POST,
            "/v1/mgmt/users",
            Some(json!({
                "id": "ada", "email": "ada@example.com",
                "identities": [{"issuer": "https://idp.example.com", "subject": "ada"}],
            })),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    for (body, entity) in [
        (json!({"id": "ada"}), "user"),
        (
            json!({"id": "bob", "email": "ada@example.com"}),
            "user email",
        ),
        (
            json!({"id": "bob", "identities": [{"issuer": "https://idp.example.com", "subject": "ada"}]}),
            "user identity",
        ),
    ] {
        let (status, e) = api
            .call(Method::POST, "/v1/mgmt/users", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body} {e}");
        assert_eq!(e["error"], "already_exists", "{body} {e}");
        assert_eq!(e["details"], json!({"entity": entity}), "{body} {e}");
        assert_eq!(
            e["message"],
            format!("{entity} already exists"),
            "{body} {e}"
        );
    }
    assert_eq!(
        api.status("/v1/mgmt/users/bob").await.0,
        StatusCode::NOT_FOUND
    );
}
