//! Refinements of the generated document, applied to its JSON.
//!
//! The services' types derive their schemas, but some of their fields hold types of crates
//! that know nothing of OpenAPI (the policy document, scope definitions, tenant memberships,
//! decision explanations) or wire names kept as `&'static str` (an owner, a status). Their derived
//! schema is then only "an object" or "a string"; here each such property is pointed at the
//! precise schema of [`super::schemas`], or given its enumeration. A refinement whose target is
//! gone (a renamed field) is reported by [`apply`], and a test keeps that list empty.
//!
//! The shared error answers are added here too, by rule rather than by hand on each operation:
//! every management call may answer 401, 403 (a key without the scope), 500 and 503; every JSON body 400, 413 and 415.

use serde_json::{Map, Value, json};

/// Applies every refinement; returns the ones whose target does not exist (empty when the
/// document and the refinements agree).
pub(crate) fn apply(doc: &mut Value) -> Vec<String> {
    let mut missed = Vec::new();
    refine_properties(doc, &mut missed);
    refine_items(doc, &mut missed);
    refine_flattened(doc, &mut missed);
    refine_parameters(doc, &mut missed);
    refine_path_ids(doc);
    update_schemas(doc, &mut missed);
    apply_app_schema(doc, &mut missed);
    // RFC 6749 §3.2: unknown parameters are ignored, each sent once like every parameter.
    for form in ["TokenForm", "RevocationForm", "IntrospectionForm"] {
        match doc.pointer_mut(&format!("/components/schemas/{form}")) {
            Some(form) => form["additionalProperties"] = json!({ "type": "string" }),
            None => missed.push(form.into()),
        }
    }
    hoist_descriptions(doc);
    add_shared_responses(doc);
    missed
}

/// The authorization request parameters Portcullis sets itself (an app cannot override them).
const RESERVED_AUTHORIZATION_PARAMS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// The signature algorithms an issuer may list.
const ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// An id chosen by a user: 1 to 64 letters, digits, `-`, `_` and `.`, starting with a letter or
/// digit.
const SLUG: &str = "^[A-Za-z0-9][A-Za-z0-9._-]*$";

/// One or more characters, none a control character.
const NO_CONTROL: &str = r"^[^\u0000-\u001f\u007f-\u009f]+$";

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable_ref(name: &str) -> Value {
    json!({ "oneOf": [{ "type": "null" }, schema_ref(name)] })
}

fn array_of(name: &str) -> Value {
    json!({ "type": "array", "items": schema_ref(name) })
}

fn string_enum(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

/// `(schema, property, replacement)`: the property's schema becomes the replacement; its
/// description stays unless the replacement has one.
fn property_refinements() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("AppInput", "type", schema_ref("AppType")),
        ("AppInput", "scopes", array_of("ScopeDef")),
        (
            "AppInput",
            "tokenEndpointAuthMethod",
            nullable_ref("TokenEndpointAuthMethod"),
        ),
        ("AppInput", "onDeny", nullable_ref("OnDeny")),
        ("AppInput", "denialDetail", nullable_ref("DenialDetail")),
        ("AppView", "type", schema_ref("AppType")),
        (
            "UserInput",
            "tenants",
            json!({ "type": "array", "maxItems": 256, "items": schema_ref("TenantMembership") }),
        ),
        ("UserView", "tenants", array_of("TenantMembership")),
        ("SimulateOutput", "decision", schema_ref("Explanation")),
        (
            "SimulateOutput",
            "rolesSource",
            string_enum(&["directory", "token", "given"]),
        ),
        ("DecisionSummary", "outcome", string_enum(&["allow"])),
        (
            "DecisionSummary",
            "reason",
            string_enum(&["open", "matched"]),
        ),
        (
            "DecisionSummary",
            "allowedScopes",
            schema_ref("AllowedScopes"),
        ),
        (
            "OutboundToken",
            "owner",
            string_enum(&["user", "tenant", "app"]),
        ),
        (
            "ConnectionInfo",
            "owner",
            string_enum(&["user", "tenant", "app"]),
        ),
        ("ConnectionInfo", "type", schema_ref("AppType")),
        (
            "ConnectionInfo",
            "status",
            string_enum(&["active", "consentRequired"]),
        ),
        ("IssuerView", "source", string_enum(&["api", "config"])),
        (
            "AppInput",
            "authorizationParams",
            json!({
                "type": "object",
                "maxProperties": 32,
                "propertyNames": {
                    "minLength": 1,
                    "maxLength": 128,
                    "not": { "enum": RESERVED_AUTHORIZATION_PARAMS },
                },
                "additionalProperties": { "type": "string", "maxLength": 1024 },
            }),
        ),
        (
            "IssuerInput",
            "audiences",
            json!({
                "type": "array",
                "minItems": 1,
                "items": { "type": "string", "minLength": 1, "pattern": NO_CONTROL },
            }),
        ),
        ("ApplyInput", "roles", array_of("RoleInput")),
        (
            "UserInput",
            "identities",
            json!({ "type": "array", "maxItems": 16, "items": schema_ref("Identity") }),
        ),
        ("UserView", "identities", array_of("Identity")),
        ("ApplyInput", "tenants", array_of("TenantInput")),
        ("ApplyInput", "users", array_of("UserInput")),
        ("ApplyInput", "apps", array_of("ApplyApp")),
        (
            "ReencryptionStatus",
            "state",
            string_enum(&["running", "done", "failed"]),
        ),
    ]
}

/// One scope of a request: 1 to 256 characters, none a control character.
fn scope_item() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_CONTROL })
}

/// `(schema, array property, item schema)`: what each item of a list of strings must be.
fn item_refinements() -> Vec<(&'static str, &'static str, Value)> {
    let slug = json!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": SLUG });
    vec![
        ("TokenBody", "scopes", scope_item()),
        ("CheckBody", "scopes", scope_item()),
        ("ConnectRequest", "scopes", scope_item()),
        ("AdminConnectRequest", "scopes", scope_item()),
        ("SimulateInput", "scopes", scope_item()),
        ("ImportToken", "scopes", scope_item()),
        ("AppInput", "defaultScopes", scope_item()),
        ("ClientInput", "allowedApps", slug.clone()),
        (
            "ClientInput",
            "redirectUris",
            json!({ "type": "string", "minLength": 1, "maxLength": 2048 }),
        ),
        (
            "IssuerInput",
            "algorithms",
            json!({ "type": "string", "enum": ALGORITHMS }),
        ),
        (
            "SsoConnectionInput",
            "scopes",
            json!({ "type": "string", "minLength": 1, "maxLength": 128,
                    "pattern": r"^[\u0021\u0023-\u005b\u005d-\u007e]+$" }),
        ),
        (
            "SsoConnectionInput",
            "claims",
            json!({ "type": "string", "minLength": 1, "maxLength": 64,
                    "pattern": "^[A-Za-z0-9_.:-]+$",
                    "not": { "enum": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id",
                                      "scope", "roles", "tenants", "email", "auth_time", "azp",
                                      "nonce", "at_hash", "name"] } }),
        ),
        (
            "ClaimMapping",
            "roles",
            json!({ "type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_CONTROL }),
        ),
    ]
}

fn refine_items(doc: &mut Value, missed: &mut Vec<String>) {
    for (schema, property, item) in item_refinements() {
        let target = object_schema(doc, schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(property));
        let Some(slot) = target else {
            missed.push(format!("{schema}.{property}[]"));
            continue;
        };
        // `T[]` or, for an optional list, `oneOf: [null, T[]]`: the array's `items`, wherever it is.
        let mut arrays = vec![&mut *slot];
        let mut found = false;
        while let Some(s) = arrays.pop() {
            if let Some(items) = s.get_mut("items") {
                *items = item.clone();
                found = true;
            } else if let Some(alts) = s.get_mut("oneOf").and_then(Value::as_array_mut) {
                arrays.extend(alts.iter_mut());
            }
        }
        if !found {
            missed.push(format!("{schema}.{property}[]"));
        }
    }
}

fn refine_properties(doc: &mut Value, missed: &mut Vec<String>) {
    for (schema, property, replacement) in property_refinements() {
        let target = object_schema(doc, schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(property));
        match target {
            Some(slot) => {
                let description = slot.get("description").cloned();
                let mut replacement = replacement;
                if let (Some(d), Some(r)) = (description, replacement.as_object_mut()) {
                    r.entry("description").or_insert(d);
                }
                *slot = replacement;
            }
            None => missed.push(format!("{schema}.{property}")),
        }
    }
}

/// A component schema, or the object part of an `allOf` one (a type with a flattened field).
fn object_schema<'a>(doc: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    let schema = doc.pointer_mut(&format!("/components/schemas/{name}"))?;
    if schema.get("allOf").is_some() {
        return schema
            .get_mut("allOf")?
            .as_array_mut()?
            .iter_mut()
            .find(|part| part.get("properties").is_some());
    }
    Some(schema)
}

/// Types that flatten a foreign type into their object: `(schema, the flattened part's schema)`.
/// The derived `allOf` holds an untyped object for it; it becomes a reference.
fn refine_flattened(doc: &mut Value, missed: &mut Vec<String>) {
    for (schema, flattened) in [("AppView", "AppSettings"), ("PolicyView", "PolicyDocument")] {
        // A strict schema (no other properties, as a request body) is inlined without that rule:
        // in `allOf` it would forbid the view's own fields.
        let strict = doc
            .pointer(&format!(
                "/components/schemas/{flattened}/additionalProperties"
            ))
            .is_some_and(|a| a == &Value::Bool(false));
        let replacement = if strict {
            let mut inline = doc
                .pointer(&format!("/components/schemas/{flattened}"))
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(o) = inline.as_object_mut() {
                o.remove("additionalProperties");
            }
            inline
        } else {
            schema_ref(flattened)
        };
        let part = doc
            .pointer_mut(&format!("/components/schemas/{schema}/allOf"))
            .and_then(Value::as_array_mut)
            .and_then(|parts| {
                parts
                    .iter_mut()
                    .find(|p| p.get("properties").is_none() && p.get("$ref").is_none())
            });
        match part {
            Some(part) => *part = replacement,
            None => missed.push(format!("{schema} (flattened {flattened})")),
        }
    }
}

/// An optional field of a documented type is derived as `oneOf: [null, {$ref, description}]`;
/// its description belongs to the property, where readers and generators look for it.
fn hoist_descriptions(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for schema in schemas.values_mut() {
        let mut objects = vec![&mut *schema];
        let mut properties = Vec::new();
        while let Some(s) = objects.pop() {
            let Some(s) = s.as_object_mut() else { continue };
            for (key, value) in s.iter_mut() {
                match key.as_str() {
                    "properties" => properties.extend(
                        value
                            .as_object_mut()
                            .into_iter()
                            .flat_map(|p| p.values_mut()),
                    ),
                    "allOf" => objects.extend(value.as_array_mut().into_iter().flatten()),
                    _ => {}
                }
            }
        }
        for property in properties {
            let Some(p) = property.as_object_mut() else {
                continue;
            };
            if p.contains_key("description") {
                continue;
            }
            let description = p
                .get_mut("oneOf")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .find_map(|alt| alt.as_object_mut()?.remove("description"));
            if let Some(d) = description {
                p.insert("description".into(), d);
            }
        }
    }
}

/// `(PUT path, create schema, update schema, id property)`: an update's body is the create body
/// whose id is optional: the path names the entity, and a body may repeat the path's id (as a
/// GET-edit-PUT round trip does) but never change it.
const UPDATES: [(&str, &str, &str, &str); 7] = [
    (
        "/v1/mgmt/outbound-apps/{appId}",
        "AppInput",
        "AppUpdate",
        "id",
    ),
    ("/v1/mgmt/users/{userId}", "UserInput", "UserUpdate", "id"),
    (
        "/v1/mgmt/tenants/{tenantId}",
        "TenantInput",
        "TenantUpdate",
        "id",
    ),
    ("/v1/mgmt/roles/{name}", "RoleInput", "RoleUpdate", "name"),
    (
        "/v1/mgmt/clients/{clientId}",
        "ClientInput",
        "ClientUpdate",
        "id",
    ),
    (
        "/v1/mgmt/resources/{resourceId}",
        "ResourceInput",
        "ResourceUpdate",
        "id",
    ),
    (
        "/v1/mgmt/sso-connections/{connectionId}",
        "SsoConnectionInput",
        "SsoConnectionUpdate",
        "id",
    ),
];

fn update_schemas(doc: &mut Value, missed: &mut Vec<String>) {
    for (path, create, update, id) in UPDATES {
        let Some(mut schema) = doc
            .pointer(&format!("/components/schemas/{create}"))
            .cloned()
        else {
            missed.push(format!("{create} (for {update})"));
            continue;
        };
        let property = schema
            .get_mut("properties")
            .and_then(Value::as_object_mut)
            .and_then(|p| p.get_mut(id));
        match property {
            Some(p) => {
                p["description"] = Value::String(format!(
                    "Optional: the path names the entity; when given, `{id}` must be the path's (400 `invalid_request`, `{id} is immutable`, otherwise)."
                ));
            }
            None => missed.push(format!("{create}.{id}")),
        }
        if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| r != id);
        }
        if let Some(d) = schema.get("description").and_then(Value::as_str) {
            schema["description"] = Value::String(format!(
                "{d} The update: the same fields, `{id}` optional and equal to the path's."
            ));
        }
        if let Some(schemas) = doc
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            schemas.insert(update.to_owned(), schema);
        }
        let body = doc.pointer_mut(&format!(
            "/paths/{}/put/requestBody/content/application~1json/schema",
            path.replace('/', "~1")
        ));
        match body {
            Some(b) => *b = schema_ref(update),
            None => missed.push(format!("PUT {path} body")),
        }
    }
}

/// An app of a desired state: the app as `POST /v1/mgmt/outbound-apps` takes it, with its
/// policies.
fn apply_app_schema(doc: &mut Value, missed: &mut Vec<String>) {
    let Some(mut schema) = doc.pointer("/components/schemas/AppInput").cloned() else {
        missed.push("AppInput (for ApplyApp)".into());
        return;
    };
    if let Some(p) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        p.insert(
            "policies".into(),
            json!({
                "type": "array",
                "items": schema_ref("PolicyDocument"),
                "description": "The app's policies, each as `POST .../policies` takes it (names unique on the app); the app's stored policies not listed are deleted.",
            }),
        );
    }
    schema["description"] = json!("An app of a desired state, with its policies.");
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert("ApplyApp".into(), schema);
    }
}

/// Path parameters by name: what an id of each kind may be. A path naming something no id can be
/// is answered 404 by the management API (nothing has that id) and 400 by the token endpoint.
fn refine_path_ids(doc: &mut Value) {
    let slug = json!({ "type": "string", "minLength": 1, "maxLength": 64, "pattern": SLUG });
    let no_control = json!({ "type": "string", "minLength": 1, "pattern": NO_CONTROL });
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            for p in operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if p["in"] != "path" {
                    continue;
                }
                let schema = match p["name"].as_str() {
                    Some("appId" | "tenantId" | "clientId" | "resourceId") => slug.clone(),
                    Some(_) => no_control.clone(),
                    None => continue,
                };
                p["schema"] = schema;
            }
        }
    }
}

/// The audit log's `outcome` filter, derived as a plain string.
fn refine_parameters(doc: &mut Value, missed: &mut Vec<String>) {
    for path in ["/v1/mgmt/audit", "/v1/mgmt/audit/export"] {
        let parameter = doc
            .pointer_mut(&format!(
                "/paths/{}/get/parameters",
                path.replace('/', "~1")
            ))
            .and_then(Value::as_array_mut)
            .and_then(|ps| ps.iter_mut().find(|p| p["name"] == "outcome"));
        match parameter {
            Some(p) => p["schema"] = schema_ref("AuditOutcome"),
            None => missed.push(format!("GET {path} ?outcome")),
        }
    }
}

/// The answers many operations share, as components.
fn shared_responses() -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": schema_ref("Error") } },
        })
    };
    let mut unauthorized =
        error("The admin key is missing, not valid, or expired (`unauthorized`).");
    unauthorized["headers"] = json!({
        "WWW-Authenticate": {
            "description": "`Bearer`: authenticate with an admin key.",
            "schema": { "type": "string" },
        }
    });
    json!({
        "Unauthorized": unauthorized,
        "InsufficientScope": error(
            "The admin key lacks the scope this operation needs (`insufficient_scope`; `details.scope` names it). The operation's `security` lists the scopes that allow it; `admin` allows everything."
        ),
        "BadRequest": error(
            "The request is malformed: the body is not JSON (`invalid_json`) or not of the expected shape, with a wrong type or a missing or unknown field (`invalid_body`); a query parameter is unknown or malformed (`invalid_query`); or a value breaks a rule (`invalid_request`, `invalid_cursor`, ...). `message` says which, for a human; when the value is a field of the body, `details` lists `[{path, message}]` with the field's JSON path (`scopes[1].name`), and when it is a query parameter, `[{parameter, message}]` with its name (`limit`), for a program."
        ),
        "PayloadTooLarge": error("The body is larger than 1 MiB (`payload_too_large`)."),
        "UnsupportedMediaType": error(
            "The body is not sent as JSON: `Content-Type` must be `application/json` (`unsupported_media_type`)."
        ),
        "Unavailable": error(
            "A dependency of the server, such as the database, is unavailable (`unavailable`); retry shortly."
        ),
        "Internal": error(
            "The server failed (`internal`); the details are in its logs, never in the answer."
        ),
        "RateLimited": rate_limited(
            error("The client address or the subject is over its rate limit (`rate_limited`; `details.retryAfter` in seconds)."),
        ),
        "OAuthRateLimited": rate_limited(json!({
            "description": "The client address or the subject is over its rate limit (`error`: `rate_limited`; `retry_after` in seconds).",
            "content": { "application/json": { "schema": schema_ref("OAuthError") } },
        })),
    })
}

fn rate_limited(mut response: Value) -> Value {
    response["headers"] = json!({
        "Retry-After": {
            "description": "Seconds to wait before the next request.",
            "schema": { "type": "integer", "minimum": 1 },
        }
    });
    response
}

fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn add_shared_responses(doc: &mut Value) {
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("responses".into(), shared_responses());
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let management = path.starts_with("/v1/mgmt/");
        let outbound = path.starts_with("/v1/outbound/apps/");
        let limited = path.starts_with("/v1/outbound/");
        let oauth = path.starts_with("/oauth2/");
        for operation in item.values_mut() {
            let json_body = operation
                .pointer("/requestBody/content/application~1json")
                .is_some();
            let query = operation
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let mut add = |status: &str, name: &str| {
                if !responses.contains_key(status) {
                    responses.insert(status.to_owned(), response_ref(name));
                }
            };
            if management {
                add("401", "Unauthorized");
                add("403", "InsufficientScope");
            }
            if json_body || (management && query) {
                add("400", "BadRequest");
            }
            if json_body {
                add("413", "PayloadTooLarge");
                add("415", "UnsupportedMediaType");
            }
            if management || outbound {
                add("500", "Internal");
            }
            if management {
                add("503", "Unavailable");
            }
            if limited {
                add("429", "RateLimited");
            }
            if oauth {
                add("429", "OAuthRateLimited");
            }
            sort_by_status(responses);
        }
    }
}

fn sort_by_status(responses: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    responses.extend(entries);
}
