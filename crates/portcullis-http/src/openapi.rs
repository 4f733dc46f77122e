//! The OpenAPI document served at `/openapi.json`.

/// The OpenAPI document, as JSON.
pub fn openapi_document() -> String {
    String::from("{}")
}
