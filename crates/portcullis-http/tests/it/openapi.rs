//! The OpenAPI document against the router it describes.
//!
//! - The document is OpenAPI 3.1, every `$ref` resolves, every operation is described and has a
//!   response schema.
//! - The document and the router agree both ways: the routes of the source (every `.route(...)`
//!   call) are exactly the documented operations, each of them is served (it does not fall
//!   through to the 404/405 fallbacks), and every method a documented path does not document
//!   answers 405.
//! - Real answers match the document: a scenario calls every operation with real services (a
//!   temporary SQLite store, a JWKS-publishing IdP and an OAuth provider stand-in on loopback),
//!   and every answer's status, media type, headers and body are checked against the documented
//!   response, objects closed (a property the schema does not declare is an error, so a field
//!   added to a type without the documentation noticing fails here).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use portcullis_core::{Core, Settings};
use portcullis_crypto::jws::{Algorithm, SigningKey};
use portcullis_http::{AppState, MetricsRenderer};
use serde_json::{Value, json};

// ----- The document on its own ---------------------------------------------------------------

fn document() -> Value {
    serde_json::from_str(&portcullis_http::openapi_document())
        .expect("the OpenAPI document is valid JSON")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of the document: `(METHOD, path template, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            assert!(
                METHODS.contains(&method.as_str()),
                "{path}: unknown key {method}"
            );
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

/// Resolves a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("a local $ref");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("{r} resolves")),
            )
        }
        None => value,
    }
}

fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.insert(v.as_str().expect("a $ref is a string").to_owned());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_complete() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert_eq!(doc["info"]["title"], "Portcullis");
    assert!(doc["info"]["version"].is_string());

    // Every reference resolves.
    let mut refs = BTreeSet::new();
    collect_refs(&doc, &mut refs);
    for r in &refs {
        assert!(
            doc.pointer(r.trim_start_matches('#')).is_some(),
            "{r} does not resolve"
        );
    }

    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| {
            assert!(t["description"].as_str().is_some_and(|d| d.ends_with('.')));
            t["name"].as_str().expect("a tag name")
        })
        .collect();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes["adminKey"]["scheme"], "bearer");
    assert_eq!(schemes["inboundToken"]["scheme"], "bearer");
    assert_eq!(schemes["inboundToken"]["bearerFormat"], "JWT");
    assert_eq!(schemes["clientBasic"]["scheme"], "basic");

    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        let id = op["operationId"].as_str().expect("an operationId");
        assert!(
            ids.insert(id.to_owned()),
            "{at}: operationId {id} is not unique"
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{at}: no summary"
        );
        assert!(
            op["description"].as_str().is_some_and(|d| d.ends_with('.')),
            "{at}: no description in full sentences"
        );
        let op_tags = op["tags"].as_array().expect("tags");
        assert!(!op_tags.is_empty(), "{at}: no tag");
        for t in op_tags {
            assert!(
                tags.contains(t.as_str().unwrap()),
                "{at}: undeclared tag {t}"
            );
        }

        // Path parameters: exactly the template's.
        let template: BTreeSet<String> = path_params(&path);
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| resolve(&doc, p))
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true, "{at}: a path parameter is required");
                        p["name"].as_str().unwrap().to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(template, declared, "{at}: path parameters");
        for p in op["parameters"].as_array().into_iter().flatten() {
            let p = resolve(&doc, p);
            assert!(
                p["schema"].is_object(),
                "{at}: parameter {} has no schema",
                p["name"]
            );
            assert!(
                p["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{at}: parameter {} has no description",
                p["name"]
            );
        }

        // Security: management with an admin key, the outbound surface with the user's token.
        let security = op["security"].clone();
        if path.starts_with("/v1/mgmt/") {
            // One admin-key requirement per scope that allows the operation (`read` first for a
            // read), each naming one known scope.
            let known = [
                "read",
                "apps",
                "policies",
                "vault",
                "directory",
                "issuers",
                "clients",
                "audit",
                "keys",
                "admin",
            ];
            let requirements = security.as_array().cloned().unwrap_or_default();
            // `apply` lists every scope its content may need.
            let most = if path == "/v1/mgmt/apply" { 4 } else { 2 };
            assert!((1..=most).contains(&requirements.len()), "{at}: {security}");
            for r in &requirements {
                let scopes = r["adminKey"].as_array().cloned().unwrap_or_default();
                assert!(
                    r.as_object().is_some_and(|o| o.len() == 1)
                        && scopes.len() == 1
                        && known.contains(&scopes[0].as_str().unwrap_or("")),
                    "{at}: {security}"
                );
            }
            if requirements.len() == 2 {
                assert_eq!(requirements[0], json!({ "adminKey": ["read"] }), "{at}");
            }
        } else if path.starts_with("/v1/outbound/apps/") {
            assert_eq!(security, json!([{ "inboundToken": [] }]), "{at}");
        } else if ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"].contains(&path.as_str())
        {
            assert_eq!(security, json!([{ "clientBasic": [] }, {}]), "{at}");
        } else if path == "/oauth2/userinfo" {
            assert_eq!(security, json!([{ "accessToken": [] }]), "{at}");
        } else if path == "/oauth2/register" {
            assert_eq!(security, json!([{}, { "registrationToken": [] }]), "{at}");
        } else {
            assert!(
                security.is_null(),
                "{at}: open endpoints need no credential"
            );
        }

        // A JSON body has a schema.
        if let Some(body) = op.get("requestBody") {
            let content = body["content"].as_object().expect("request content");
            assert!(!content.is_empty(), "{at}: empty request content");
            for (media, c) in content {
                assert!(
                    c["schema"].is_object(),
                    "{at}: request {media} has no schema"
                );
            }
        }

        // Every answer is described, and every answer with a body has a schema; a success
        // answer is documented, and so is every error status.
        let responses = op["responses"].as_object().expect("responses");
        // (A redirect is the success of an operation that only redirects.)
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.starts_with('3')),
            "{at}: no success answer"
        );
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| d.ends_with('.')),
                "{at} {status}: no description"
            );
            match response.get("content").and_then(Value::as_object) {
                Some(content) => {
                    assert!(!content.is_empty(), "{at} {status}: empty content");
                    for (media, c) in content {
                        assert!(c["schema"].is_object(), "{at} {status} {media}: no schema");
                    }
                }
                None => assert!(
                    status == "204" || status.starts_with('3'),
                    "{at} {status}: no response schema"
                ),
            }
        }
        if path.starts_with("/v1/mgmt/") {
            for status in ["401", "500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{at}: {status} is not documented"
                );
            }
        }
        if op
            .pointer("/requestBody/content/application~1json")
            .is_some()
        {
            for status in ["400", "413", "415"] {
                assert!(
                    responses.contains_key(status),
                    "{at}: {status} is not documented"
                );
            }
        }
    }
}

/// The policy document's schema, precisely (what administrators write most).
#[test]
fn the_policy_document_is_described_precisely() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let policy = &schemas["PolicyDocument"];
    assert_eq!(
        policy["required"],
        json!(["name", "conditions", "scopes"]),
        "{policy}"
    );
    let condition = &schemas["Condition"];
    assert_eq!(
        condition["required"],
        json!(["source", "operator", "value"])
    );
    assert_eq!(schemas["Source"]["enum"], json!(["userRoles", "jwtClaims"]));
    assert_eq!(
        schemas["Operator"]["enum"],
        json!(["equals", "notEquals", "in", "notIn", "contains"])
    );
    assert_eq!(schemas["Mode"]["enum"], json!(["enforce", "shadow"]));
    let scopes = schemas["Scopes"]["oneOf"]
        .as_array()
        .expect("Scopes is a oneOf");
    assert_eq!(scopes[0]["enum"], json!(["all"]));
    assert_eq!(scopes[1]["type"], "array");
    let value = schemas["ConditionValue"]["oneOf"]
        .as_array()
        .expect("ConditionValue is a oneOf");
    assert_eq!(value[0]["$ref"], "#/components/schemas/Scalar");
    assert_eq!(value[1]["items"]["$ref"], "#/components/schemas/Scalar");

    // Bodies and answers use it.
    let create = &doc["paths"]["/v1/mgmt/outbound-apps/{appId}/policies"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/PolicyDocument"
    );
    // A view is the document (inlined: the document forbids other fields, the view adds its
    // own) and the stored policy's fields.
    let view = &schemas["PolicyView"]["allOf"];
    assert!(
        view.as_array().unwrap().iter().any(|p| {
            p["$ref"] == "#/components/schemas/PolicyDocument"
                || (p["properties"] == policy["properties"] && p["required"] == policy["required"])
        }),
        "{view}"
    );

    // The shared error shape is one component; the outbound errors add `connectUrl` and
    // `decision`.
    assert_eq!(schemas["Error"]["required"], json!(["error", "message"]));
    assert!(schemas["Error"]["properties"]["details"].is_object());
    let outbound = &schemas["OutboundError"]["properties"];
    assert_eq!(
        outbound["decision"]["oneOf"][1]["$ref"],
        "#/components/schemas/Explanation"
    );
    assert!(outbound["connectUrl"].is_object());
}

// ----- The document against the router -------------------------------------------------------

fn path_params(template: &str) -> BTreeSet<String> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// A path template with its parameters' names erased (`/a/{}/b`): the router names them in
/// snake case, the document in camel case.
fn shape(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The routes the router serves, read from its source: every `.route("<path>", <methods>)`
/// call, under `/v1/mgmt` for the management modules. Returns `(METHOD, shape)`.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(
        lib.contains(r#".nest("/v1/mgmt", mgmt::routes())"#),
        "the management routes are no longer nested under /v1/mgmt: update this test"
    );
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let prefix = if file.starts_with(src.join("mgmt")) {
            "/v1/mgmt"
        } else {
            ""
        };
        for (method, path) in parse_routes(&text) {
            routes.insert((method, shape(&format!("{prefix}{path}"))));
        }
    }
    routes
}

/// The `(METHOD, path)` pairs of the `.route(...)` calls of one source file.
fn parse_routes(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        // The call's arguments, up to its closing parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(k, _)| k)
            .expect("a closed .route( call");
        let args = &rest[..end];
        let open = args.find('"').expect("a route path literal");
        let close = open + 1 + args[open + 1..].find('"').expect("a closed literal");
        let path = &args[open + 1..close];
        let methods = &args[close + 1..];
        let mut found = 0;
        let bytes = methods.as_bytes();
        let mut k = 0;
        while k < bytes.len() {
            if bytes[k].is_ascii_alphabetic() || bytes[k] == b'_' {
                let start = k;
                while k < bytes.len() && (bytes[k].is_ascii_alphanumeric() || bytes[k] == b'_') {
                    k += 1;
                }
                let ident = &methods[start..k];
                let called = methods[k..].trim_start().starts_with('(');
                if called && ["get", "post", "put", "delete", "patch"].contains(&ident) {
                    out.push((ident.to_uppercase(), path.to_owned()));
                    found += 1;
                }
            } else {
                k += 1;
            }
        }
        assert!(found > 0, "no method found in .route({args})");
        rest = &rest[end..];
    }
    out
}

#[test]
fn routes_are_read_from_source() {
    let text = r#"Router::new()
        .route("/a/{id}", get(get_a).put(update_a).delete(delete_a))
        .route("/b", axum::routing::delete(delete_b))
        .route_layer(x)
        .route(
            "/c",
            post(post_c),
        )"#;
    assert_eq!(
        parse_routes(text),
        [
            ("GET", "/a/{id}"),
            ("PUT", "/a/{id}"),
            ("DELETE", "/a/{id}"),
            ("DELETE", "/b"),
            ("POST", "/c"),
        ]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
}

/// Whether an answer is one of the router's fallbacks (no route, or no such method on it).
fn is_fallback(status: StatusCode, body: &Value) -> bool {
    (status == StatusCode::NOT_FOUND && body["message"] == "no such endpoint")
        || (status == StatusCode::METHOD_NOT_ALLOWED && body["error"] == "method_not_allowed")
}

#[tokio::test]
async fn the_document_and_the_router_agree() {
    let h = Harness::start().await;
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, shape(&p)))
        .collect();
    let served = routes_in_source();

    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "documented but not routed: {unserved:?}"
    );

    // Each route answers for itself (whatever the answer: without credentials or a body, most
    // are 4xx), never through the fallbacks.
    for (method, path) in &served {
        let uri = path.replace("{}", "probe");
        let (status, _, body) = h.raw(method, &uri, None, None).await;
        assert!(
            !is_fallback(status, &body),
            "{method} {uri} is not served: {status} {body}"
        );
    }

    // Every method a documented path does not document is refused, so that no route hides
    // behind a documented path.
    let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (method, path) in &documented {
        paths
            .entry(path.clone())
            .or_default()
            .insert(method.clone());
    }
    for (path, methods) in paths {
        let uri = path.replace("{}", "probe");
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if methods.contains(method) {
                continue;
            }
            let (status, _, body) = h.raw(method, &uri, None, None).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")),
                "{method} {uri} is served but not documented"
            );
        }
    }
}

// ----- A JSON Schema check (the subset the document uses) -------------------------------------

struct Checker<'a> {
    doc: &'a Value,
}

impl Checker<'_> {
    fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", true, &mut errors);
        errors
    }

    /// Checks `value` against `schema`; `closed` when an object may hold only the properties the
    /// schema declares (it is off inside `allOf`, where the parts declare the properties
    /// together).
    fn check(&self, schema: &Value, value: &Value, at: &str, closed: bool, errs: &mut Vec<String>) {
        if schema.get("$ref").is_some() {
            let target = resolve(self.doc, schema);
            return self.check(target, value, at, closed, errs);
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for p in parts {
                self.check(p, value, at, false, errs);
            }
            if closed && let Some(obj) = value.as_object() {
                let declared = self.declared(schema);
                for k in obj.keys() {
                    if !declared.contains(k) {
                        errs.push(format!("{at}: property {k} is not documented"));
                    }
                }
            }
        }
        if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = alts
                .iter()
                .filter(|a| {
                    let mut e = Vec::new();
                    self.check(a, value, at, closed, &mut e);
                    e.is_empty()
                })
                .count();
            if matching != 1 {
                errs.push(format!(
                    "{at}: {value} matches {matching} of oneOf {alts:?}"
                ));
                if matching == 0 {
                    for a in alts {
                        self.check(a, value, &format!("{at} (oneOf)"), closed, errs);
                    }
                }
            }
        }
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let ok = types.iter().any(|t| match *t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                _ => false,
            });
            if !ok {
                errs.push(format!("{at}: {value} is not of type {t}"));
                return;
            }
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array)
            && !e.contains(value)
        {
            errs.push(format!("{at}: {value} is not one of {e:?}"));
        }
        match value {
            Value::String(s) => {
                let n = s.chars().count();
                if schema["minLength"].as_u64().is_some_and(|m| (n as u64) < m) {
                    errs.push(format!("{at}: {s:?} is too short"));
                }
                if schema["maxLength"].as_u64().is_some_and(|m| (n as u64) > m) {
                    errs.push(format!("{at}: {s:?} is too long"));
                }
                match schema["format"].as_str() {
                    Some("date-time") if !is_date_time(s) => {
                        errs.push(format!("{at}: {s:?} is not a date-time"));
                    }
                    Some("uri") if url::Url::parse(s).is_err() => {
                        errs.push(format!("{at}: {s:?} is not a URI"));
                    }
                    _ => {}
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap();
                if schema["minimum"].as_f64().is_some_and(|m| x < m) {
                    errs.push(format!("{at}: {x} is below the minimum"));
                }
                if schema["maximum"].as_f64().is_some_and(|m| x > m) {
                    errs.push(format!("{at}: {x} is above the maximum"));
                }
            }
            Value::Array(items) => {
                if let Some(s) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(s, item, &format!("{at}[{i}]"), true, errs);
                    }
                }
                let n = items.len() as u64;
                if schema["minItems"].as_u64().is_some_and(|m| n < m) {
                    errs.push(format!("{at}: too few items"));
                }
                if schema["maxItems"].as_u64().is_some_and(|m| n > m) {
                    errs.push(format!("{at}: too many items"));
                }
            }
            Value::Object(obj) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                for r in schema["required"].as_array().into_iter().flatten() {
                    let r = r.as_str().unwrap();
                    if !obj.contains_key(r) {
                        errs.push(format!("{at}: required property {r} is missing"));
                    }
                }
                for (k, v) in obj {
                    let at = format!("{at}.{k}");
                    match (
                        properties.and_then(|p| p.get(k)),
                        schema.get("additionalProperties"),
                    ) {
                        (Some(s), _) => self.check(s, v, &at, true, errs),
                        (None, Some(Value::Bool(false))) => {
                            errs.push(format!("{at}: not allowed (additionalProperties)"));
                        }
                        (None, Some(s @ Value::Object(_))) => self.check(s, v, &at, true, errs),
                        (None, _) if closed && properties.is_some() => {
                            errs.push(format!("{at}: property is not documented"));
                        }
                        (None, _) => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// The properties an object schema declares, through `$ref` and `allOf`.
    fn declared(&self, schema: &Value) -> BTreeSet<String> {
        let schema = resolve(self.doc, schema);
        let mut out: BTreeSet<String> = schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            out.extend(self.declared(part));
        }
        out
    }
}

/// An RFC 3339 date-time, as `Timestamp` writes them (`2026-01-02T03:04:05.678Z`).
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && (s.ends_with('Z') || s.ends_with('z') || s[19..].contains(['+', '-']))
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit))
}

#[test]
fn the_checker_catches_what_it_should() {
    let doc = document();
    let c = Checker { doc: &doc };
    let error = json!({ "$ref": "#/components/schemas/Error" });
    assert!(
        c.errors(&error, &json!({"error": "x", "message": "y"}))
            .is_empty()
    );
    assert!(
        !c.errors(&error, &json!({"error": "x"})).is_empty(),
        "required"
    );
    assert!(
        !c.errors(&error, &json!({"error": 1, "message": "y"}))
            .is_empty(),
        "type"
    );
    assert!(
        !c.errors(&error, &json!({"error": "x", "message": "y", "extra": 1}))
            .is_empty(),
        "an undocumented property"
    );
    let scopes = json!({ "$ref": "#/components/schemas/Scopes" });
    assert!(c.errors(&scopes, &json!("all")).is_empty());
    assert!(c.errors(&scopes, &json!(["a", "b"])).is_empty());
    assert!(!c.errors(&scopes, &json!("some")).is_empty(), "enum");
    assert!(!c.errors(&scopes, &json!([])).is_empty(), "minItems");
    // allOf: the parts' properties together, and nothing else.
    let new_client = json!({ "$ref": "#/components/schemas/NewClient" });
    let client = json!({
        "id": "c", "name": "n", "grantTypes": [], "redirectUris": [],
        "tokenEndpointAuthMethod": "client_secret_basic",
        "createdAt": "2026-01-02T03:04:05.678Z", "updatedAt": "2026-01-02T03:04:05Z",
        "clientSecret": "s",
    });
    assert!(
        c.errors(&new_client, &client).is_empty(),
        "{:?}",
        c.errors(&new_client, &client)
    );
    let mut extra = client.clone();
    extra["secretHash"] = json!("h");
    assert!(!c.errors(&new_client, &extra).is_empty());
    let mut bad_time = client;
    bad_time["createdAt"] = json!("yesterday");
    assert!(!c.errors(&new_client, &bad_time).is_empty());
}

// ----- Real answers against the document ------------------------------------------------------

/// A loopback stand-in for the IdP (its JWKS) and for an OAuth provider (token and revocation
/// endpoints that always succeed).
struct Mock {
    url: String,
    key: SigningKey,
    tokens: Arc<AtomicUsize>,
    /// The id_token the next code exchange answers with (as an OpenID provider).
    id_token: Arc<std::sync::Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mock {
    async fn start() -> Self {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwks = json!({ "keys": [serde_json::to_value(key.public_jwk()).unwrap()] });
        let tokens = Arc::new(AtomicUsize::new(0));
        let issued = tokens.clone();
        let id_token = Arc::new(std::sync::Mutex::new(None::<String>));
        let next_id_token = id_token.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let discovery = json!({
            "issuer": url,
            "authorization_endpoint": format!("{url}/authorize"),
            "token_endpoint": format!("{url}/token"),
            "jwks_uri": format!("{url}/jwks.json"),
        });
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let d = discovery.clone();
                    async move { axum::Json(d) }
                }),
            )
            .route(
                "/jwks.json",
                axum::routing::get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            )
            .route(
                "/token",
                axum::routing::post(move || {
                    let n = issued.fetch_add(1, Ordering::SeqCst);
                    let id_token = next_id_token.lock().unwrap().take();
                    async move {
                        let mut answer = json!({
                            "access_token": format!("provider-at-{n}"),
                            "token_type": "Bearer",
                            "expires_in": 3600,
                            "refresh_token": format!("provider-rt-{n}"),
                        });
                        if let Some(t) = id_token {
                            answer["id_token"] = json!(t);
                        }
                        axum::Json(answer)
                    }
                }),
            )
            .route("/revoke", axum::routing::post(|| async { StatusCode::OK }));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            key,
            tokens,
            id_token,
            task,
        }
    }

    /// An inbound token for `sub` with extra claims.
    fn token(&self, sub: &str, extra: Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({
            "iss": self.url,
            "aud": "https://mcp.example.test",
            "sub": sub,
            "iat": now,
            "exp": now + 300,
            "scope": "openid outbound.token.fetch",
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.key.sign_jwt(&claims, Some("at+jwt")).unwrap()
    }
}

/// The router on real services and a temporary SQLite store.
struct Harness {
    router: Router,
    core: Arc<Core>,
    admin: String,
    _dir: tempfile::TempDir,
}

/// A request body.
#[derive(Clone)]
enum Payload {
    Json(Value),
    Form(String),
    /// A browser's form: the form and its `Cookie` header.
    Browser(String, String),
    /// A browser's request without a body: its `Cookie` header.
    Cookie(String),
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            public_url: "http://portcullis.test".into(),
            allowed_return_urls: vec!["http://app.test/".into()],
            ..Settings::default()
        };
        let (core, admin) = crate::core_on_sqlite(dir.path(), settings, "test-1").await;
        let metrics: MetricsRenderer = Arc::new(|| "# no metrics yet\n".to_owned());
        let router = portcullis_http::router(AppState {
            core: core.clone(),
            metrics: Some(metrics),
        });
        Self {
            router,
            core,
            admin,
            _dir: dir,
        }
    }

    /// Sends a request; returns the status, the headers and the body (JSON when it parses, else
    /// a string).
    async fn raw(
        &self,
        method: &str,
        uri: &str,
        auth: Option<&str>,
        body: Option<Payload>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let body = match body {
            Some(Payload::Json(v)) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            Some(Payload::Form(f)) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f)
            }
            Some(Payload::Browser(f, cookie)) => {
                req = req
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, cookie);
                Body::from(f)
            }
            Some(Payload::Cookie(cookie)) => {
                req = req.header(header::COOKIE, cookie);
                Body::empty()
            }
            None => Body::empty(),
        };
        let (status, headers, bytes) = crate::send(&self.router, req.body(body).unwrap()).await;
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, value)
    }
}

/// Calls the API and checks every answer against the document, recording which operations
/// answered with which statuses.
struct Scenario {
    h: Harness,
    mock: Mock,
    doc: Value,
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl Scenario {
    /// The operation a concrete request is for: the template with the most literal segments
    /// matching.
    fn template(&self, method: &str, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        operations(&self.doc)
            .into_iter()
            .filter(|(m, _, _)| m == method)
            .filter_map(|(_, t, _)| {
                let ts: Vec<&str> = t.split('/').collect();
                let fits = ts.len() == segments.len()
                    && ts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t.starts_with('{') || t == s);
                let literal = ts.iter().filter(|t| !t.starts_with('{')).count();
                fits.then_some((literal, t))
            })
            .max()
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
    }

    /// Sends a request and checks the answer against the documented response of its status.
    async fn call(
        &mut self,
        method: &str,
        uri: &str,
        auth: Option<&str>,
        body: Option<Payload>,
        expected: u16,
    ) -> (HeaderMap, Value) {
        let path = uri.split('?').next().unwrap();
        let template = self.template(method, path);
        let op = self.doc["paths"][&template][method.to_lowercase()].clone();
        if (200..400).contains(&expected) {
            self.check_request(&op, method, uri, body.as_ref());
        }
        let (status, headers, value) = self.h.raw(method, uri, auth, body).await;
        assert_eq!(status.as_u16(), expected, "{method} {uri}: {value}");
        let at = format!("{method} {uri} -> {status}");
        // Every answer of the API is kept by no cache: many carry a secret or a capability.
        if path.starts_with("/v1/") || path.starts_with("/oauth2/") {
            assert_eq!(
                headers
                    .get(header::CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok()),
                Some("no-store"),
                "{at}"
            );
        }
        let response = op["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| panic!("{at}: this status is not documented"));
        let response = resolve(&self.doc, response);
        for name in response["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|h| h.0)
        {
            assert!(
                headers.contains_key(name.as_str()),
                "{at}: no {name} header"
            );
        }
        match response.get("content").and_then(Value::as_object) {
            None => assert!(
                value == Value::String(String::new()),
                "{at}: a body where none is documented: {value}"
            ),
            Some(content) => {
                let media = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap()
                    .trim()
                    .to_owned();
                let (_, documented) = content
                    .iter()
                    .find(|(m, _)| m.split(';').next().unwrap().trim() == media)
                    .unwrap_or_else(|| panic!("{at}: media type {media} is not documented"));
                let schema = &documented["schema"];
                let checker = Checker { doc: &self.doc };
                let values: Vec<Value> = if media == "application/x-ndjson" {
                    value
                        .as_str()
                        .unwrap()
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect()
                } else if media.starts_with("text/") {
                    vec![match &value {
                        Value::String(_) => value.clone(),
                        other => Value::String(other.to_string()),
                    }]
                } else {
                    vec![value.clone()]
                };
                for v in &values {
                    let errors = checker.errors(schema, v);
                    assert!(errors.is_empty(), "{at}: {errors:#?}\n{v:#}");
                }
            }
        }
        self.seen
            .entry((method.to_owned(), template))
            .or_default()
            .insert(status.as_u16());
        (headers, value)
    }

    /// Checks that a request the server accepts is one the document describes: its query
    /// parameters are documented, and its JSON body matches the documented body.
    fn check_request(&self, op: &Value, method: &str, uri: &str, body: Option<&Payload>) {
        let at = format!("{method} {uri}");
        let documented: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let url = url::Url::parse(&format!("http://x{uri}")).unwrap();
        for (name, _) in url.query_pairs() {
            assert!(
                documented.contains(name.as_ref()),
                "{at}: query parameter {name} is not documented"
            );
        }
        if let Some(Payload::Json(body)) = body {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{at}: no JSON body is documented");
            let errors = Checker { doc: &self.doc }.errors(schema, body);
            assert!(
                errors.is_empty(),
                "{at}: the request body {errors:#?}\n{body:#}"
            );
        }
    }

    /// A connect link's page, then "Continue", as one browser: the provider's authorization URL
    /// and the browser's `Cookie` header (the flow's binding among them).
    async fn continue_link(&mut self, link: &str) -> (String, String) {
        let path = link[link.find("/v1/outbound/connect/").unwrap()..].to_owned();
        let set_cookies = |h: &HeaderMap| -> Vec<String> {
            h.get_all(header::SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
                .collect()
        };
        let (headers, page) = self.call("GET", &path, None, None, 200).await;
        let mut cookies = set_cookies(&headers);
        let html = page.as_str().unwrap();
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        let csrf = &html[start..start + html[start..].find('"').unwrap()];
        let (headers, _) = self
            .call(
                "POST",
                &path,
                None,
                Some(Payload::Browser(
                    format!("action=continue&csrf={csrf}"),
                    cookies.join("; "),
                )),
                303,
            )
            .await;
        cookies.extend(set_cookies(&headers));
        (
            headers[header::LOCATION].to_str().unwrap().to_owned(),
            cookies.join("; "),
        )
    }

    async fn admin(
        &mut self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let auth = format!("Bearer {}", self.h.admin);
        self.call(method, uri, Some(&auth), body.map(Payload::Json), expected)
            .await
            .1
    }

    async fn user(
        &mut self,
        uri: &str,
        token: &str,
        body: Value,
        expected: u16,
    ) -> (HeaderMap, Value) {
        let auth = format!("Bearer {token}");
        self.call(
            "POST",
            uri,
            Some(&auth),
            Some(Payload::Json(body)),
            expected,
        )
        .await
    }

    /// Checks `value` against a component schema.
    fn conforms(&self, schema: &str, value: &Value) {
        let errors = Checker { doc: &self.doc }.errors(
            &json!({ "$ref": format!("#/components/schemas/{schema}") }),
            value,
        );
        assert!(errors.is_empty(), "{schema}: {errors:#?}\n{value:#}");
    }
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{url} has no {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_documented() {
    let mock = Mock::start().await;
    let mut s = Scenario {
        h: Harness::start().await,
        mock,
        doc: document(),
        seen: BTreeMap::new(),
    };
    let m = s.mock.url.clone();

    // Operations.
    s.call("GET", "/healthz", None, None, 200).await;
    s.call("GET", "/readyz", None, None, 200).await;
    s.call("GET", "/metrics", None, None, 200).await;
    s.call("GET", "/openapi.json", None, None, 200).await;

    // The console: its static files, and the session an admin key is exchanged for.
    s.call("GET", "/console", None, None, 200).await;
    s.call("GET", "/console/app.js", None, None, 200).await;
    s.call("GET", "/console/console.css", None, None, 200).await;
    s.call("GET", "/console/ui.js", None, None, 200).await;
    s.call(
        "POST",
        "/console/session",
        None,
        Some(Payload::Json(json!({ "adminKey": "pca_wrong" }))),
        401,
    )
    .await;
    s.call("GET", "/console/session", None, None, 401).await;
    let admin = s.h.admin.clone();
    let (headers, session) = s
        .call(
            "POST",
            "/console/session",
            None,
            Some(Payload::Json(json!({ "adminKey": admin }))),
            200,
        )
        .await;
    assert!(session["csrfToken"].is_string(), "{session}");
    let console_cookie = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    s.call(
        "GET",
        "/console/session",
        None,
        Some(Payload::Cookie(console_cookie.clone())),
        200,
    )
    .await;
    s.call(
        "DELETE",
        "/console/session",
        None,
        Some(Payload::Cookie(console_cookie)),
        204,
    )
    .await;

    // Management needs an admin key.
    s.call("GET", "/v1/mgmt/outbound-apps", None, None, 401)
        .await;
    s.call(
        "GET",
        "/v1/mgmt/outbound-apps",
        Some("Bearer pca_wrong"),
        None,
        401,
    )
    .await;

    // Apps.
    let oauth_app = json!({
        "id": "gh", "name": "GitHub", "type": "oauth",
        "clientId": "portcullis", "clientSecret": "provider-secret",
        "authorizationUrl": format!("{m}/authorize"), "tokenUrl": format!("{m}/token"),
        "revocationUrl": format!("{m}/revoke"),
        "scopes": [{"name": "repo", "description": "Repositories"}, {"name": "read:user"}],
        "defaultScopes": ["read:user"],
        "authorizationParams": {"allow_signup": "false"},
    });
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps",
        Some(oauth_app.clone()),
        201,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps",
        Some(oauth_app.clone()),
        409,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps",
        Some(json!({"id": "keys", "name": "Key service", "type": "apiKey"})),
        201,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps",
        Some(json!({"id": "x", "name": "X", "type": "apiKey", "bogus": 1})),
        400,
    )
    .await;
    let auth = format!("Bearer {}", s.h.admin);
    s.call("POST", "/v1/mgmt/outbound-apps", Some(&auth), None, 415)
        .await;
    let page = s
        .admin("GET", "/v1/mgmt/outbound-apps?limit=1", None, 200)
        .await;
    let cursor = page["nextCursor"].as_str().expect("a next page").to_owned();
    let page = s
        .admin(
            "GET",
            &format!("/v1/mgmt/outbound-apps?limit=1&cursor={cursor}"),
            None,
            200,
        )
        .await;
    assert!(page.get("nextCursor").is_none());
    s.admin("GET", "/v1/mgmt/outbound-apps?limit=0", None, 400)
        .await;
    s.admin("GET", "/v1/mgmt/outbound-apps?bogus=1", None, 400)
        .await;
    s.admin("GET", "/v1/mgmt/outbound-apps/gh", None, 200).await;
    s.admin("GET", "/v1/mgmt/outbound-apps/nope", None, 404)
        .await;
    let mut renamed = oauth_app.clone();
    renamed["name"] = json!("GitHub.com");
    renamed.as_object_mut().unwrap().remove("clientSecret");
    s.admin("PUT", "/v1/mgmt/outbound-apps/gh", Some(renamed), 200)
        .await;

    // Policies: engineers of acme may have every scope of gh; a shadow policy observes.
    let engineers = json!({
        "name": "Engineers",
        "description": "Engineers of Acme read repositories.",
        "conditions": [
            {"source": "userRoles", "operator": "contains", "value": "eng"},
            {"source": "jwtClaims", "claim": "org_id", "operator": "in", "value": ["acme", "beta"]},
        ],
        "scopes": ["repo", "read:user"],
    });
    let policy = s
        .admin(
            "POST",
            "/v1/mgmt/outbound-apps/gh/policies",
            Some(engineers.clone()),
            201,
        )
        .await;
    let policy_id = policy["id"].as_str().unwrap().to_owned();
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps/gh/policies",
        Some(json!({"name": "Everyone", "conditions": [], "scopes": "all", "mode": "shadow"})),
        201,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps/gh/policies",
        Some(engineers.clone()),
        409,
    )
    .await;
    let invalid = s
        .admin(
            "POST",
            "/v1/mgmt/outbound-apps/gh/policies",
            Some(json!({
                "name": "",
                "conditions": [{"source": "userRoles", "operator": "like", "value": 1}],
                "scopes": ["nope"],
                "extra": true,
            })),
            400,
        )
        .await;
    assert_eq!(invalid["error"], "invalid_policy");
    s.conforms(
        "PolicyProblem",
        &invalid["details"].as_array().expect("problems")[0],
    );
    for problem in invalid["details"].as_array().unwrap() {
        s.conforms("PolicyProblem", problem);
    }
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps/nope/policies",
        Some(engineers.clone()),
        404,
    )
    .await;
    s.admin("GET", "/v1/mgmt/outbound-apps/gh/policies", None, 200)
        .await;
    let pol = format!("/v1/mgmt/outbound-apps/gh/policies/{policy_id}");
    s.admin("GET", &pol, None, 200).await;
    s.admin(
        "GET",
        "/v1/mgmt/outbound-apps/gh/policies/pol_nope",
        None,
        404,
    )
    .await;
    s.admin("PUT", &pol, Some(engineers.clone()), 200).await;
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps/keys/policies",
        Some(json!({"name": "Engineers", "conditions": [{"source": "userRoles", "operator": "equals", "value": "eng"}], "scopes": "all"})),
        201,
    )
    .await;

    // The directory.
    s.admin(
        "POST",
        "/v1/mgmt/roles",
        Some(json!({"name": "eng", "description": "Engineers"})),
        201,
    )
    .await;
    s.admin("POST", "/v1/mgmt/roles", Some(json!({"name": "eng"})), 409)
        .await;
    s.admin("GET", "/v1/mgmt/roles", None, 200).await;
    s.admin("GET", "/v1/mgmt/roles/eng", None, 200).await;
    s.admin(
        "PUT",
        "/v1/mgmt/roles/eng",
        Some(json!({"description": "Engineering"})),
        200,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/tenants",
        Some(json!({"id": "acme", "name": "Acme", "attributes": {"tier": "gold"}})),
        201,
    )
    .await;
    s.admin("GET", "/v1/mgmt/tenants", None, 200).await;
    s.admin("GET", "/v1/mgmt/tenants/acme", None, 200).await;
    s.admin(
        "PUT",
        "/v1/mgmt/tenants/acme",
        Some(json!({"name": "Acme Inc."})),
        200,
    )
    .await;
    s.admin("GET", "/v1/mgmt/tenants/nope", None, 404).await;
    let alice = json!({
        "id": "alice", "email": "alice@example.com", "name": "Alice",
        "identities": [{"issuer": m, "subject": "alice"}],
        "roles": ["eng"], "tenants": [{"tenantId": "acme", "roles": ["eng"]}],
    });
    s.admin("POST", "/v1/mgmt/users", Some(alice.clone()), 201)
        .await;
    s.admin("GET", "/v1/mgmt/users", None, 200).await;
    s.admin("GET", "/v1/mgmt/users/alice", None, 200).await;
    s.admin("PUT", "/v1/mgmt/users/alice", Some(alice.clone()), 200)
        .await;
    s.admin("GET", "/v1/mgmt/users/nope", None, 404).await;
    s.admin("DELETE", "/v1/mgmt/roles/eng", None, 409).await;

    // Trust the IdP; register a client for token exchange.
    let issuer = s
        .admin(
            "POST",
            "/v1/mgmt/issuers",
            Some(json!({
                "issuer": m, "jwksUrl": format!("{m}/jwks.json"),
                "audiences": ["https://mcp.example.test"], "algorithms": ["ES256"],
                "rolesClaim": "roles", "tenantClaim": "org_id",
            })),
            201,
        )
        .await;
    let issuer_id = issuer["id"].as_str().unwrap().to_owned();
    s.admin("GET", "/v1/mgmt/issuers", None, 200).await;
    let iss = format!("/v1/mgmt/issuers/{issuer_id}");
    s.admin("GET", &iss, None, 200).await;
    s.admin(
        "PUT",
        &iss,
        Some(json!({
            "issuer": m, "jwksUrl": format!("{m}/jwks.json"),
            "audiences": ["https://mcp.example.test"], "algorithms": ["ES256"],
            "rolesClaim": "roles", "tenantClaim": "org_id", "clockSkewSeconds": 30,
        })),
        200,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/clients",
        Some(json!({"id": "mcp", "name": "MCP server"})),
        201,
    )
    .await;
    s.admin("GET", "/v1/mgmt/clients", None, 200).await;
    s.admin("GET", "/v1/mgmt/clients/mcp", None, 200).await;
    s.admin(
        "PUT",
        "/v1/mgmt/clients/mcp",
        Some(json!({"name": "MCP server", "allowedApps": ["gh", "keys"]})),
        200,
    )
    .await;
    let rotated = s
        .admin("POST", "/v1/mgmt/clients/mcp/secret", None, 201)
        .await;
    let client_secret = rotated["clientSecret"].as_str().unwrap().to_owned();
    s.admin("POST", "/v1/mgmt/clients/nope/secret", None, 404)
        .await;

    // Admin keys and data keys.
    let key = s
        .admin(
            "POST",
            "/v1/mgmt/admin-keys",
            Some(json!({"name": "ci", "scopes": ["read"]})),
            201,
        )
        .await;
    s.admin(
        "POST",
        "/v1/mgmt/admin-keys",
        Some(json!({"name": "old", "scopes": ["read"], "expiresAt": "2001-01-01T00:00:00Z"})),
        400,
    )
    .await;
    s.admin("GET", "/v1/mgmt/admin-keys", None, 200).await;
    let own = s.admin("GET", "/v1/mgmt/admin-keys", None, 200).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "bootstrap")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.admin("DELETE", &format!("/v1/mgmt/admin-keys/{own}"), None, 409)
        .await;
    s.admin(
        "DELETE",
        &format!("/v1/mgmt/admin-keys/{}", key["id"].as_str().unwrap()),
        None,
        204,
    )
    .await;
    s.admin("DELETE", "/v1/mgmt/admin-keys/ak_nope", None, 404)
        .await;
    s.admin("GET", "/v1/mgmt/keys", None, 200).await;
    s.admin("POST", "/v1/mgmt/keys/rotate", None, 200).await;
    // The token-signing keys: a rotation keeps the old key published.
    let keys = s.admin("GET", "/v1/mgmt/signing-keys", None, 200).await;
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    let keys = s
        .admin("POST", "/v1/mgmt/signing-keys/rotate", None, 200)
        .await;
    assert_eq!(keys[0]["state"], "retired", "{keys}");
    assert_eq!(keys[1]["state"], "active", "{keys}");
    let (_, jwks) = s
        .call("GET", "/.well-known/jwks.json", None, None, 200)
        .await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "{jwks}");
    s.call(
        "GET",
        "/.well-known/oauth-authorization-server",
        None,
        None,
        200,
    )
    .await;
    s.call("GET", "/.well-known/openid-configuration", None, None, 200)
        .await;

    // Resource servers.
    let crm = json!({
        "id": "crm", "uri": "https://CRM.example.com/mcp", "name": "CRM tools",
        "scopes": [{"name": "crm.read", "description": "Read the CRM"}],
    });
    s.admin("POST", "/v1/mgmt/resources", Some(crm.clone()), 201)
        .await;
    s.admin("POST", "/v1/mgmt/resources", Some(crm.clone()), 409)
        .await;
    let mut bad = crm.clone();
    bad["id"] = json!("other");
    bad["uri"] = json!("https://crm.example.com/mcp#frag");
    s.admin("POST", "/v1/mgmt/resources", Some(bad), 400).await;
    let listed = s.admin("GET", "/v1/mgmt/resources", None, 200).await;
    assert_eq!(listed["items"][0]["uri"], "https://crm.example.com/mcp");
    s.admin("GET", "/v1/mgmt/resources/crm", None, 200).await;
    s.admin("GET", "/v1/mgmt/resources/nope", None, 404).await;
    let mut renamed = crm.clone();
    renamed["name"] = json!("CRM");
    s.admin("PUT", "/v1/mgmt/resources/crm", Some(renamed), 200)
        .await;
    let prm = s
        .admin("GET", "/v1/mgmt/resources/crm/metadata", None, 200)
        .await;
    assert_eq!(prm["resource"], "https://crm.example.com/mcp");
    s.admin("DELETE", "/v1/mgmt/resources/crm", None, 204).await;
    s.admin("DELETE", "/v1/mgmt/resources/crm", None, 404).await;

    // Portcullis as an authorization server: a user signs in and consents through the pages, a
    // public client redeems the code, refreshes, revokes; a confidential one introspects.
    s.admin(
        "POST",
        "/v1/mgmt/resources",
        Some(
            json!({"id": "notes", "uri": "https://notes.example.com/mcp", "name": "Notes",
                    "scopes": [{"name": "notes.read"}]}),
        ),
        201,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/users",
        Some(json!({"id": "ada", "email": "ada@example.com"})),
        201,
    )
    .await;
    s.admin(
        "PUT",
        "/v1/mgmt/users/ada/password",
        Some(json!({"password": "correct horse"})),
        204,
    )
    .await;
    s.admin(
        "PUT",
        "/v1/mgmt/users/ada/password",
        Some(json!({"password": "short"})),
        400,
    )
    .await;
    s.admin(
        "PUT",
        "/v1/mgmt/users/nobody/password",
        Some(json!({"password": "correct horse"})),
        404,
    )
    .await;
    let public = s
        .admin(
            "POST",
            "/v1/mgmt/clients",
            Some(
                json!({"id": "notes-app", "name": "Notes app", "tokenEndpointAuthMethod": "none",
                        "redirectUris": ["http://127.0.0.1/cb"]}),
            ),
            201,
        )
        .await;
    assert!(public.get("clientSecret").is_none(), "{public}");
    s.admin("POST", "/v1/mgmt/clients/notes-app/secret", None, 409)
        .await;
    let verifier = portcullis_crypto::pkce::new_verifier();
    let challenge = portcullis_crypto::pkce::challenge_s256(verifier.expose());
    let authorize = format!(
        "/oauth2/authorize?response_type=code&client_id=notes-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb\
         &state=st&code_challenge={challenge}&code_challenge_method=S256\
         &resource=https%3A%2F%2Fnotes.example.com%2Fmcp"
    );
    let (headers, page) = s.call("GET", &authorize, None, None, 200).await;
    let csrf_cookie = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let field = |page: &Value, name: &str| {
        let html = page.as_str().unwrap();
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).unwrap() + marker.len();
        let end = start + html[start..].find('"').unwrap();
        url::form_urlencoded::byte_serialize(&html.as_bytes()[start..end]).collect::<String>()
    };
    let sign_in = format!(
        "action=sign_in&login=ada&password=correct+horse&request={}&csrf={}",
        field(&page, "request"),
        field(&page, "csrf")
    );
    let (headers, consent) = s
        .call(
            "POST",
            "/oauth2/authorize",
            None,
            Some(Payload::Browser(sign_in, csrf_cookie.clone())),
            200,
        )
        .await;
    let session_cookie = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let allow = format!(
        "action=allow&remember=1&request={}&csrf={}",
        field(&consent, "request"),
        field(&consent, "csrf")
    );
    let (headers, _) = s
        .call(
            "POST",
            "/oauth2/authorize",
            None,
            Some(Payload::Browser(
                allow,
                format!("{csrf_cookie}; {session_cookie}"),
            )),
            303,
        )
        .await;
    let back = headers[header::LOCATION].to_str().unwrap().to_owned();
    let code = query_param(&back, "code");
    s.call("GET", "/oauth2/authorize?client_id=ghost", None, None, 400)
        .await;
    s.call(
        "POST",
        "/oauth2/authorize",
        None,
        Some(Payload::Form("action=deny".into())),
        403,
    )
    .await;
    let (_, tokens) = s
        .call(
            "POST",
            "/oauth2/token",
            None,
            Some(Payload::Form(format!(
                "grant_type=authorization_code&client_id=notes-app&code={code}\
                 &redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&code_verifier={}",
                verifier.expose()
            ))),
            200,
        )
        .await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (_, refreshed) = s
        .call(
            "POST",
            "/oauth2/token",
            None,
            Some(Payload::Form(format!(
                "grant_type=refresh_token&client_id=notes-app&refresh_token={refresh}"
            ))),
            200,
        )
        .await;
    s.call(
        "GET",
        "/oauth2/userinfo",
        Some(&format!("Bearer {access}")),
        None,
        200,
    )
    .await;
    s.call("GET", "/oauth2/userinfo", Some("Bearer nope"), None, 401)
        .await;
    let gateway = s
        .admin(
            "POST",
            "/v1/mgmt/clients",
            Some(json!({"id": "gateway", "name": "Gateway", "grantTypes": ["client_credentials"]})),
            201,
        )
        .await;
    let gateway_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "gateway:{}",
            gateway["clientSecret"].as_str().unwrap()
        ))
    );
    let (_, active) = s
        .call(
            "POST",
            "/oauth2/introspect",
            Some(&gateway_basic),
            Some(Payload::Form(format!("token={access}"))),
            200,
        )
        .await;
    assert_eq!(active["active"], true, "{active}");
    s.call(
        "POST",
        "/oauth2/introspect",
        None,
        Some(Payload::Form(format!("token={access}&client_id=notes-app"))),
        401,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/revoke",
        None,
        Some(Payload::Form(format!(
            "token={}&client_id=notes-app",
            refreshed["refresh_token"].as_str().unwrap()
        ))),
        200,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/revoke",
        None,
        Some(Payload::Form("token=x".into())),
        401,
    )
    .await;
    // The user's own page: signed in by the session cookie, a consent revoked.
    let csrf_value = csrf_cookie["portcullis_csrf=".len()..].to_owned();
    let (_, page) = s.call("GET", "/oauth2/consents", None, None, 200).await;
    assert!(page.as_str().unwrap().contains("Sign in"), "{page}");
    s.call(
        "POST",
        "/oauth2/consents",
        None,
        Some(Payload::Browser(
            format!("action=sign_in&login=ada&password=correct+horse&csrf={csrf_value}"),
            csrf_cookie.clone(),
        )),
        303,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/consents",
        None,
        Some(Payload::Browser(
            format!("action=revoke&client_id=nobody&csrf={csrf_value}"),
            format!("{csrf_cookie}; {session_cookie}"),
        )),
        303,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/consents",
        None,
        Some(Payload::Form("action=revoke".into())),
        403,
    )
    .await;
    // The console's sign-in page for users: ada holds no admin role (403), then does (303).
    s.call("GET", "/console/sign-in", None, None, 200).await;
    let console_sign_in = Payload::Browser(
        format!("action=sign_in&login=ada&password=correct+horse&csrf={csrf_value}"),
        csrf_cookie.clone(),
    );
    s.call(
        "POST",
        "/console/sign-in",
        None,
        Some(console_sign_in.clone()),
        403,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/roles",
        Some(json!({"name": "portcullis.read"})),
        201,
    )
    .await;
    s.admin(
        "PUT",
        "/v1/mgmt/users/ada",
        Some(json!({"id": "ada", "email": "ada@example.com", "roles": ["portcullis.read"]})),
        200,
    )
    .await;
    s.call("POST", "/console/sign-in", None, Some(console_sign_in), 303)
        .await;
    s.admin("GET", "/v1/mgmt/users/ada/consents", None, 200)
        .await;
    s.admin("GET", "/v1/mgmt/users/nobody/consents", None, 404)
        .await;
    s.admin(
        "DELETE",
        "/v1/mgmt/users/ada/consents?clientId=notes-app",
        None,
        204,
    )
    .await;
    // Single sign-on through the stand-in IdP (its discovery document, keys and token endpoint):
    // started from the consents page's sign-in form, completed at the callback.
    let corp = json!({"id": "corp", "name": "Corp SSO", "issuer": m, "clientId": "portcullis",
                      "clientSecret": "sso-secret",
                      "mappings": [{"claim": "groups", "value": "g-eng", "roles": ["eng"]}]});
    s.admin("POST", "/v1/mgmt/sso-connections", Some(corp.clone()), 201)
        .await;
    s.admin("POST", "/v1/mgmt/sso-connections", Some(corp.clone()), 409)
        .await;
    s.admin(
        "POST",
        "/v1/mgmt/sso-connections",
        Some(json!({"id": "bad", "name": "Bad", "issuer": "ftp://idp.example", "clientId": "c"})),
        400,
    )
    .await;
    s.admin("GET", "/v1/mgmt/sso-connections", None, 200).await;
    s.admin("GET", "/v1/mgmt/sso-connections/corp", None, 200)
        .await;
    s.admin("GET", "/v1/mgmt/sso-connections/nope", None, 404)
        .await;
    let mut corp_update = corp.clone();
    corp_update.as_object_mut().unwrap().remove("clientSecret");
    s.admin(
        "PUT",
        "/v1/mgmt/sso-connections/corp",
        Some(corp_update),
        200,
    )
    .await;
    let (_, page) = s.call("GET", "/oauth2/consents", None, None, 200).await;
    assert!(
        page.as_str().unwrap().contains("Sign in with Corp SSO"),
        "{page}"
    );
    let (to_idp, _) = s
        .call(
            "POST",
            "/oauth2/sso/start",
            None,
            Some(Payload::Browser(
                format!("connection=corp&return=%2Foauth2%2Fconsents&csrf={csrf_value}"),
                csrf_cookie.clone(),
            )),
            303,
        )
        .await;
    let idp_url = to_idp[header::LOCATION].to_str().unwrap().to_owned();
    let flow_cookie = to_idp[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let id_token = s
        .mock
        .key
        .sign_jwt(
            &json!({"iss": m, "aud": "portcullis", "sub": "corp-user", "iat": now, "exp": now + 300,
                    "nonce": query_param(&idp_url, "nonce"), "groups": []}),
            None,
        )
        .unwrap();
    *s.mock.id_token.lock().unwrap() = Some(id_token);
    let (signed_in, _) = s
        .call(
            "GET",
            &format!(
                "/oauth2/sso/callback?code=c1&state={}",
                query_param(&idp_url, "state")
            ),
            None,
            Some(Payload::Cookie(flow_cookie)),
            303,
        )
        .await;
    assert_eq!(signed_in[header::LOCATION], "/oauth2/consents");
    s.call(
        "GET",
        "/oauth2/sso/callback?code=c1&state=forged",
        None,
        None,
        400,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/sso/start",
        None,
        Some(Payload::Browser(
            format!("connection=nope&return=%2Foauth2%2Fconsents&csrf={csrf_value}"),
            csrf_cookie.clone(),
        )),
        404,
    )
    .await;
    s.admin("DELETE", "/v1/mgmt/sso-connections/corp", None, 204)
        .await;
    s.admin("DELETE", "/v1/mgmt/sso-connections/corp", None, 404)
        .await;
    s.call(
        "POST",
        "/oauth2/register",
        None,
        Some(Payload::Json(
            json!({"redirect_uris": ["https://app.example.com/cb"], "client_name": "App"}),
        )),
        201,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/register",
        None,
        Some(Payload::Json(
            json!({"redirect_uris": ["ftp://app.example.com/cb"]}),
        )),
        400,
    )
    .await;

    // Connections: an API key for alice, an imported OAuth grant for bob (a subject of the IdP
    // who is not in the directory).
    let bob = portcullis_core::external_principal(&m, "bob");
    let api_key = s
        .admin(
            "POST",
            "/v1/mgmt/outbound-apps/keys/api-keys",
            Some(json!({"apiKey": "alice-key", "userId": "alice"})),
            201,
        )
        .await;
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps/gh/api-keys",
        Some(json!({"apiKey": "k"})),
        409,
    )
    .await;
    let imported = s
        .admin(
            "POST",
            "/v1/mgmt/outbound-apps/gh/tokens",
            Some(json!({"tokens": [{
                "userId": bob, "accessToken": "imported-at", "refreshToken": "imported-rt",
                "expiresAt": "2099-01-01T00:00:00Z", "scopes": ["repo", "read:user"],
            }]})),
            201,
        )
        .await;
    let bob_connection = imported["items"][0]["id"].as_str().unwrap().to_owned();
    s.admin("GET", "/v1/mgmt/outbound-apps/gh/connections", None, 200)
        .await;
    s.admin(
        "GET",
        &format!("/v1/mgmt/users/{bob}/connections"),
        None,
        200,
    )
    .await;
    let conn = format!("/v1/mgmt/connections/{bob_connection}");
    s.admin("GET", &conn, None, 200).await;
    s.admin("GET", "/v1/mgmt/connections/con_nope", None, 404)
        .await;
    s.admin("POST", &format!("{conn}/refresh"), None, 200).await;
    let key_connection = api_key["id"].as_str().unwrap();
    s.admin(
        "POST",
        &format!("/v1/mgmt/connections/{key_connection}/refresh"),
        None,
        409,
    )
    .await;
    let link = s
        .admin(
            "POST",
            "/v1/mgmt/outbound-apps/gh/connect",
            Some(json!({"tenantId": "acme", "scopes": ["repo"]})),
            200,
        )
        .await;
    let (provider_url, _) = s.continue_link(link["url"].as_str().unwrap()).await;
    assert!(provider_url.starts_with(&format!("{m}/authorize")));
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps/gh/connect",
        Some(json!({})),
        400,
    )
    .await;

    // The token endpoint.
    let alice_token = s.mock.token("alice", json!({"org_id": "acme"}));
    let bob_token = s
        .mock
        .token("bob", json!({"org_id": "acme", "roles": ["eng"]}));
    let carol_token = s.mock.token("carol", json!({"org_id": "acme"}));
    let (headers, granted) = s
        .user("/v1/outbound/apps/keys/token", &alice_token, json!({}), 200)
        .await;
    assert_eq!(granted["token"]["apiKey"], "alice-key");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let (_, granted) = s
        .user(
            "/v1/outbound/apps/gh/token",
            &bob_token,
            json!({"scopes": ["repo"], "forceRefresh": false}),
            200,
        )
        .await;
    assert!(granted["token"]["accessToken"].is_string());
    // The check: the same decisions, no credential.
    let (_, checked) = s
        .user(
            "/v1/outbound/apps/gh/check",
            &bob_token,
            json!({"scopes": ["repo"]}),
            200,
        )
        .await;
    assert_eq!(checked["scopes"], granted["token"]["scopes"], "{checked}");
    assert!(checked.get("token").is_none());
    let (_, refused) = s
        .user(
            "/v1/outbound/apps/gh/check",
            &carol_token,
            json!({"scopes": ["repo"]}),
            403,
        )
        .await;
    assert_eq!(refused["error"], "access_denied");
    s.user(
        "/v1/outbound/apps/gh/check",
        &alice_token,
        json!({"scopes": ["repo"]}),
        404,
    )
    .await;
    let (_, denied) = s
        .user(
            "/v1/outbound/apps/gh/token",
            &carol_token,
            json!({"scopes": ["repo"]}),
            403,
        )
        .await;
    assert_eq!(denied["error"], "access_denied");
    assert!(denied["decision"]["shadow"].is_object(), "{denied}");
    assert!(
        denied["decision"]["policies"][0]["failedCondition"].is_object(),
        "{denied}"
    );
    let (_, missing) = s
        .user(
            "/v1/outbound/apps/gh/token",
            &alice_token,
            json!({"scopes": ["repo"]}),
            404,
        )
        .await;
    assert_eq!(missing["error"], "not_connected");
    // The connect link is a page of Portcullis that leads to the provider once continued.
    let link = missing["connectUrl"].as_str().unwrap().to_owned();
    let (provider_url, _) = s.continue_link(&link).await;
    assert!(provider_url.contains("/authorize?"));
    // ... once: opened in another browser, it is gone.
    let path = &link[link.find("/v1/outbound/connect/").unwrap()..];
    s.call("GET", path, None, None, 410).await;
    s.call("GET", "/v1/outbound/connect/not-a-ticket", None, None, 404)
        .await;
    s.user("/v1/outbound/apps/nope/token", &alice_token, json!({}), 404)
        .await;
    s.user(
        "/v1/outbound/apps/gh/token",
        &alice_token,
        json!({"scopes": ["nope"]}),
        400,
    )
    .await;
    s.user(
        "/v1/outbound/apps/gh/token",
        &alice_token,
        json!({"scope": "repo"}),
        400,
    )
    .await;
    let unscoped = s.mock.token("alice", json!({"scope": "openid"}));
    s.user("/v1/outbound/apps/gh/token", &unscoped, json!({}), 403)
        .await;
    s.user("/v1/outbound/apps/gh/token", "not-a-jwt", json!({}), 401)
        .await;
    s.call(
        "POST",
        "/v1/outbound/apps/gh/token",
        None,
        Some(Payload::Json(json!({}))),
        401,
    )
    .await;
    let t = format!("Bearer {alice_token}");
    s.call("POST", "/v1/outbound/apps/gh/token", Some(&t), None, 415)
        .await;

    // Connecting: back to the return URL, or a page.
    let (_, link) = s
        .user(
            "/v1/outbound/apps/gh/connect",
            &alice_token,
            json!({"scopes": ["repo"], "returnUrl": "http://app.test/done"}),
            200,
        )
        .await;
    let (provider_url, browser) = s.continue_link(link["url"].as_str().unwrap()).await;
    let state = query_param(&provider_url, "state");
    let (headers, _) = s
        .call(
            "GET",
            &format!("/v1/outbound/callback/gh?state={state}&code=the-code"),
            None,
            Some(Payload::Cookie(browser)),
            303,
        )
        .await;
    let location = headers[header::LOCATION].to_str().unwrap();
    assert_eq!(query_param(location, "connected"), "gh");
    let (_, link) = s
        .user("/v1/outbound/apps/gh/connect", &alice_token, json!({}), 200)
        .await;
    let (provider_url, browser) = s.continue_link(link["url"].as_str().unwrap()).await;
    let state = query_param(&provider_url, "state");
    // Another browser (without the flow's binding) is refused; the flow stays.
    s.call(
        "GET",
        &format!("/v1/outbound/callback/gh?state={state}&code=the-code"),
        None,
        None,
        403,
    )
    .await;
    s.call(
        "GET",
        &format!("/v1/outbound/callback/gh?state={state}&code=the-code"),
        None,
        Some(Payload::Cookie(browser.clone())),
        200,
    )
    .await;
    s.call(
        "GET",
        &format!("/v1/outbound/callback/gh?state={state}&code=the-code"),
        None,
        Some(Payload::Cookie(browser)),
        404,
    )
    .await;
    // An app that keeps the shared callback.
    let mut shared = oauth_app.clone();
    shared["sharedCallback"] = json!(true);
    s.admin("PUT", "/v1/mgmt/outbound-apps/gh", Some(shared), 200)
        .await;
    let (_, link) = s
        .user("/v1/outbound/apps/gh/connect", &alice_token, json!({}), 200)
        .await;
    let (provider_url, browser) = s.continue_link(link["url"].as_str().unwrap()).await;
    let state = query_param(&provider_url, "state");
    s.call(
        "GET",
        &format!("/v1/outbound/callback?state={state}&code=the-code"),
        None,
        Some(Payload::Cookie(browser)),
        200,
    )
    .await;
    s.call(
        "GET",
        "/v1/outbound/callback?error=access_denied",
        None,
        None,
        400,
    )
    .await;
    s.user(
        "/v1/outbound/apps/keys/connect",
        &alice_token,
        json!({}),
        400,
    )
    .await;
    s.user(
        "/v1/outbound/apps/gh/connect",
        &alice_token,
        json!({"returnUrl": "https://evil.test/"}),
        400,
    )
    .await;
    s.user("/v1/outbound/apps/gh/connect", "not-a-jwt", json!({}), 401)
        .await;
    s.user(
        "/v1/outbound/apps/nope/connect",
        &alice_token,
        json!({}),
        404,
    )
    .await;
    s.user(
        "/v1/outbound/apps/gh/connect",
        &alice_token,
        json!({"tenantId": "beta"}),
        403,
    )
    .await;

    // Token exchange.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("mcp:{client_secret}"))
    );
    let exchange = |token: &str, app: &str| {
        Payload::Form(format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &subject_token={token}\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &audience={app}"
        ))
    };
    let (_, exchanged) = s
        .call(
            "POST",
            "/oauth2/token",
            Some(&basic),
            Some(exchange(&alice_token, "keys")),
            200,
        )
        .await;
    assert_eq!(exchanged["access_token"], "alice-key");
    s.call(
        "POST",
        "/oauth2/token",
        Some(&basic),
        Some(exchange(&bob_token, "gh")),
        200,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/token",
        Some(&basic),
        Some(exchange(&carol_token, "gh")),
        403,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/token",
        Some(&basic),
        Some(exchange("not-a-jwt", "gh")),
        400,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/token",
        Some("Basic bWNwOndyb25n"),
        Some(exchange(&alice_token, "keys")),
        401,
    )
    .await;
    s.call(
        "POST",
        "/oauth2/token",
        Some(&basic),
        Some(Payload::Form("grant_type=password".into())),
        400,
    )
    .await;

    // Policy as code: a dry run, a real apply, and a state with a problem.
    let state = json!({"roles": [{"name": "Auditor", "description": "reads the log"}]});
    let mut dry = state.clone();
    dry["dryRun"] = json!(true);
    let planned = s.admin("POST", "/v1/mgmt/apply", Some(dry), 200).await;
    assert_eq!(planned["changes"][0]["action"], "create", "{planned}");
    s.admin("POST", "/v1/mgmt/apply", Some(state), 200).await;
    s.admin(
        "POST",
        "/v1/mgmt/apply",
        Some(json!({"roles": [{"name": " Auditor "}]})),
        400,
    )
    .await;

    // The audit log, and the simulator.
    s.h.core.flush_audit().await;
    let events = s.admin("GET", "/v1/mgmt/audit?limit=1000", None, 200).await;
    assert!(events["items"].as_array().unwrap().len() >= 9, "{events}");
    // Requests refused before a decision are counted, not recorded one by one.
    let rejected = s
        .admin(
            "GET",
            "/v1/mgmt/audit/rejected?since=2000-01-01T00:00:00Z",
            None,
            200,
        )
        .await;
    assert!(
        !rejected["items"].as_array().unwrap().is_empty(),
        "{rejected}"
    );
    s.admin("GET", "/v1/mgmt/audit/rejected?limit=0", None, 400)
        .await;
    // The summary a dashboard charts: every bucket of the window, its decisions counted.
    let summary = s
        .admin("GET", "/v1/mgmt/audit/summary?bucket=600", None, 200)
        .await;
    let buckets = summary["buckets"].as_array().unwrap();
    // A day of 10-minute buckets: 145, or 144 when now falls on a boundary.
    assert!(matches!(buckets.len(), 144 | 145), "{summary}");
    let counted: u64 = buckets
        .iter()
        .flat_map(|b| b["outcomes"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(counted >= 9, "{summary}");
    assert!(!summary["apps"].as_array().unwrap().is_empty(), "{summary}");
    s.admin("GET", "/v1/mgmt/audit/summary?bucket=60", None, 400)
        .await;
    s.admin(
        "GET",
        "/v1/mgmt/audit/summary?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z",
        None,
        400,
    )
    .await;
    s.admin(
        "GET",
        "/v1/mgmt/audit?appId=gh&outcome=denied&since=2000-01-01T00:00:00Z",
        None,
        200,
    )
    .await;
    s.admin("GET", "/v1/mgmt/audit?outcome=maybe", None, 400)
        .await;
    let export = s.admin("GET", "/v1/mgmt/audit/export", None, 200).await;
    assert!(export.as_str().unwrap().lines().count() >= 9);
    s.admin("GET", "/v1/mgmt/audit/export?since=yesterday", None, 400)
        .await;
    let simulated = s
        .admin(
            "POST",
            "/v1/mgmt/decisions/simulate",
            Some(json!({"appId": "gh", "subject": {"userId": "alice", "claims": {"org_id": "acme"}}, "scopes": ["repo"]})),
            200,
        )
        .await;
    assert_eq!(simulated["decision"]["outcome"], "allow");
    s.admin(
        "POST",
        "/v1/mgmt/decisions/simulate",
        Some(json!({"appId": "gh", "token": carol_token, "scopes": ["repo"]})),
        200,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/decisions/simulate",
        Some(json!({"appId": "gh"})),
        400,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/decisions/simulate",
        Some(json!({"appId": "nope", "subject": {}})),
        404,
    )
    .await;
    let replayed = s
        .admin(
            "POST",
            "/v1/mgmt/outbound-apps/gh/policies/replay",
            Some(json!({"policies": [], "limit": 5})),
            200,
        )
        .await;
    assert_eq!(replayed["complete"], true, "{replayed}");
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps/gh/policies/replay",
        Some(json!({"policies": [7]})),
        400,
    )
    .await;
    s.admin(
        "POST",
        "/v1/mgmt/outbound-apps/nope/policies/replay",
        Some(json!({"policies": []})),
        404,
    )
    .await;

    // Revocation and deletion.
    let report = s.admin("DELETE", &conn, None, 200).await;
    assert_eq!(report["providerRevoked"], true, "{report}");
    s.admin("DELETE", &conn, None, 404).await;
    s.admin("DELETE", "/v1/mgmt/users/alice/connections", None, 200)
        .await;
    s.admin("DELETE", &pol, None, 204).await;
    s.admin("DELETE", &pol, None, 404).await;
    s.admin("DELETE", "/v1/mgmt/outbound-apps/keys", None, 204)
        .await;
    s.admin("DELETE", "/v1/mgmt/outbound-apps/keys", None, 404)
        .await;
    s.admin("DELETE", "/v1/mgmt/users/alice", None, 204).await;
    s.admin("DELETE", "/v1/mgmt/roles/eng", None, 204).await;
    s.admin("DELETE", "/v1/mgmt/tenants/acme", None, 204).await;
    s.admin("DELETE", &iss, None, 204).await;
    s.admin("DELETE", &iss, None, 404).await;
    s.admin("DELETE", "/v1/mgmt/clients/mcp", None, 204).await;
    s.admin("DELETE", "/v1/mgmt/clients/mcp", None, 404).await;
    assert!(
        s.mock.tokens.load(Ordering::SeqCst) >= 3,
        "the provider was called"
    );

    // Every operation answered at least once with a documented success.
    let missing: Vec<String> = operations(&s.doc)
        .into_iter()
        .filter(|(m, p, _)| {
            !s.seen
                .get(&(m.clone(), p.clone()))
                .is_some_and(|statuses| statuses.iter().any(|st| (200..400).contains(st)))
        })
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect();
    assert!(
        missing.is_empty(),
        "operations never answered with success: {missing:#?}"
    );
}
