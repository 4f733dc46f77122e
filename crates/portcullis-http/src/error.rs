//! The one error type of the HTTP edge: one `status()` per variant, a stable `code`, and one
//! documented JSON shape: `{"error": "<code>", "message": "...", "details": ...}`. Internal details
//! are logged, never returned.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use portcullis_core::ServiceError;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, in a sentence.
    pub message: String,
    /// Structured details.
    pub details: Option<Value>,
    /// Extra top-level members (e.g. `connectUrl`, `decision`).
    pub extra: serde_json::Map<String, Value>,
    /// A `WWW-Authenticate` challenge.
    pub challenge: Option<String>,
    /// `Retry-After`, in seconds (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            extra: serde_json::Map::new(),
            challenge: None,
            retry_after: None,
        }
    }

    /// A 429 `rate_limited`, with `Retry-After`.
    pub fn rate_limited(what: &str, retry_after: std::time::Duration) -> Self {
        let secs = portcullis_core::limits::retry_after_secs(retry_after);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this {what}; retry in {secs} s"),
        )
        .with_details(serde_json::json!({"retryAfter": secs}));
        e.retry_after = Some(secs);
        e
    }

    /// A 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a top-level member.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid {
                code,
                message,
                details,
            } => Self {
                details,
                ..Self::bad_request(code, message)
            },
            ServiceError::NotFound { entity, id } => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                if id.is_empty() {
                    format!("{entity} not found")
                } else {
                    format!("{entity} {id} not found")
                },
            )
            .with_details(json!({"entity": entity, "id": id})),
            e @ ServiceError::AlreadyExists { entity } => {
                Self::new(StatusCode::CONFLICT, "already_exists", e.to_string())
                    .with_details(json!({ "entity": entity }))
            }
            ServiceError::Conflict { code, message } => {
                Self::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::UnknownReference { entity, id } => Self::new(
                StatusCode::CONFLICT,
                "unknown_reference",
                if id.is_empty() {
                    format!("a referenced {entity} does not exist")
                } else {
                    format!("{entity} {id} does not exist")
                },
            )
            .with_details(json!({"entity": entity, "id": id})),
            ServiceError::Unauthorized(message) => Self {
                challenge: Some("Bearer".into()),
                ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            },
            ServiceError::Forbidden(message) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            ServiceError::MissingScope(scope) => Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this operation needs an admin key with the scope {scope}"),
            )
            .with_details(json!({ "scope": scope })),
            ServiceError::Unavailable(message) => {
                tracing::warn!(error = %message, "a dependency is unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a dependency of the server is unavailable; try again shortly",
                )
            }
            ServiceError::Internal(message) => {
                tracing::error!(error = %message, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed; the details are in its logs",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), Value::String(self.code.into()));
        body.insert("message".into(), Value::String(self.message));
        if let Some(d) = self.details {
            body.insert("details".into(), d);
        }
        body.extend(self.extra);
        let mut resp = (self.status, Json(Value::Object(body))).into_response();
        if let Some(c) = self.challenge
            && let Ok(v) = HeaderValue::from_str(&c)
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// A JSON body whose rejections use the documented error shape: wrong content type → 415,
/// too large → 413, malformed JSON → 400 `invalid_json`, wrong types or unknown fields → 400
/// `invalid_body`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Two steps, so that every well-formed JSON is told apart from malformed JSON: first the
        // syntax (any JSON value), then the shape (an object of the expected fields and types),
        // read from the bytes again so that duplicate fields are still caught.
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json"
                    || (essence.starts_with("application/") && essence.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(r) => return Err(json_rejection(JsonRejection::BytesRejection(r))),
        };
        // One parse on the way that succeeds; on failure a second look tells malformed JSON
        // (`invalid_json`) from JSON of the wrong shape (`invalid_body`).
        let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) if is_object => Ok(Self(v)),
            Ok(_) => Err(not_an_object()),
            Err(e) => {
                if let Err(syntax) = serde_json::from_slice::<Value>(&bytes) {
                    Err(ApiError::bad_request(
                        "invalid_json",
                        format!("the body is not valid JSON: {syntax}"),
                    ))
                } else if !is_object {
                    Err(not_an_object())
                } else {
                    // Again, now tracking where: the error path alone pays for it.
                    let (path, why) = portcullis_core::from_json::<T, _>(
                        &mut serde_json::Deserializer::from_slice(&bytes),
                    )
                    .err()
                    .unwrap_or_else(|| (String::new(), e.to_string()));
                    Err(shape_error(&path, &why))
                }
            }
        }
    }
}

/// A body of the wrong shape: `invalid_body`, naming the part at fault (`details: [{path,
/// message}]`) unless it is the body itself.
fn shape_error(path: &str, why: &str) -> ApiError {
    if path.is_empty() {
        return ApiError::bad_request(
            "invalid_body",
            format!("the body does not have the expected shape: {why}"),
        );
    }
    ServiceError::invalid_at(
        "invalid_body",
        path,
        format!("the body does not have the expected shape: {path}: {why}"),
    )
    .into()
}

fn not_an_object() -> ApiError {
    ApiError::bad_request("invalid_body", "the body must be a JSON object")
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "invalid_body",
            format!(
                "the body does not have the expected shape: {}",
                e.body_text()
            ),
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is too large",
            )
        }
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// Path parameters whose rejections use the documented error shape.
#[derive(Debug, Clone)]
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // No id Portcullis stores contains a control character (they are refused on the way in),
        // so a path naming one names nothing: 404, before any lookup.
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await
            && raw.iter().any(|(_, v)| v.chars().any(char::is_control))
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "nothing has this id",
            ));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(e) => Err(path_rejection(e)),
        }
    }
}

fn path_rejection(e: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path", e.body_text())
}

/// Query parameters whose rejections use the documented error shape.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    let message = e.body_text();
    match named_parameter(&e) {
        Some(name) => ServiceError::invalid_param("invalid_query", name, message).into(),
        None => ApiError::bad_request("invalid_query", message),
    }
}

/// The query parameter a rejection is about (a wrong type, an unknown name), when the query
/// string's reader says which.
fn named_parameter(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut error = Some(e);
    while let Some(e) = error {
        if let Some(at) =
            e.downcast_ref::<serde_path_to_error::Error<serde_urlencoded::de::Error>>()
        {
            let path = at.path().to_string();
            return (path != ".").then_some(path);
        }
        error = e.source();
    }
    None
}
