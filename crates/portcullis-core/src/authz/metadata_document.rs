//! Client ID metadata documents (the MCP specification's preferred way for a client to say who it
//! is): a `client_id` that is an `https` URL names a JSON document the client serves there. It is
//! fetched with guards against server-side request forgery — never a loopback, private or
//! otherwise internal address (the `danger_allow_private_client_metadata` switch lifts this, and
//! allows `http`, for tests), no redirects, a 5-second timeout, at most 8 KiB — and kept as long as
//! its `Cache-Control` allows (one minute to one day; an hour when it says nothing; not at all
//! with `no-store`). Its redirect URIs are the client's; it is a public client.

use std::net::IpAddr;
use std::time::Duration;

use portcullis_domain::{ClientRecord, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};
use crate::Core;
use crate::manage::{MAX_REDIRECT_URIS, check_redirect_uri};

/// The most a metadata document may weigh.
pub const MAX_METADATA_DOCUMENT_BYTES: usize = 8 * 1024;
/// How long fetching one may take.
pub const METADATA_DOCUMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `client_id` URL read.
pub const MAX_CLIENT_ID_URL: usize = 2048;

/// A metadata document, as fetched and checked, and until when it may be used.
#[derive(Debug, Clone)]
pub(crate) struct CachedDocument {
    pub(crate) client: ClientRecord,
    pub(crate) until: Timestamp,
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    client_secret: Option<Value>,
}

/// Whether a `client_id` names a metadata document (rather than a registered client).
pub fn is_metadata_document_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// The HTTP client for metadata documents: no redirects, a short timeout, and (unless the danger
/// switch is on) a resolver that drops internal addresses.
pub(crate) fn metadata_http(allow_private: bool) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder();
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(std::sync::Arc::new(crate::urls::PublicOnly))
    };
    builder
        .timeout(METADATA_DOCUMENT_TIMEOUT)
        .connect_timeout(METADATA_DOCUMENT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// How long a document may be kept, from its `Cache-Control` (`None`: not at all).
fn freshness(cache_control: Option<&str>) -> Option<i64> {
    let Some(cc) = cache_control else {
        return Some(3600);
    };
    let mut max_age = None;
    for directive in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" {
            return None;
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<i64>().ok();
        }
    }
    Some(max_age.unwrap_or(3600).clamp(60, 24 * 3600))
}

impl Core {
    /// Checks that a `client_id` URL may be fetched: `https` (or `http` with the danger switch),
    /// a host that is not an internal address literal, a path, no query, fragment or
    /// credentials, no dot segments.
    fn check_client_id_url(&self, id: &str) -> Result<url::Url, String> {
        if id.len() > MAX_CLIENT_ID_URL {
            return Err(format!(
                "the client_id URL is longer than {MAX_CLIENT_ID_URL} characters"
            ));
        }
        let u = url::Url::parse(id).map_err(|_| "the client_id is not a URL".to_owned())?;
        let allow_private = self.settings.danger_allow_private_client_metadata;
        match u.scheme() {
            "https" => {}
            "http" if allow_private => {}
            _ => return Err("a client_id URL must be https".into()),
        }
        if u.as_str() != id {
            return Err("the client_id URL is not in canonical form".into());
        }
        if u.query().is_some()
            || u.fragment().is_some()
            || !u.username().is_empty()
            || u.password().is_some()
        {
            return Err("a client_id URL has no query, fragment or credentials".into());
        }
        if u.path() == "/" || u.path().split('/').any(|s| s == "." || s == "..") {
            return Err("a client_id URL has a path, without dot segments".into());
        }
        let literal = match u.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                Some(IpAddr::from([127, 0, 0, 1]))
            }
            Some(url::Host::Domain(_)) => None,
            None => return Err("a client_id URL names a host".into()),
        };
        if !allow_private && literal.is_some_and(crate::urls::is_internal) {
            return Err("the client_id URL is at a loopback, private or internal address".into());
        }
        Ok(u)
    }

    /// The client a metadata document describes: from memory while its cache allows, else
    /// fetched and checked. The error says why it cannot be used.
    pub(crate) async fn metadata_client(&self, id: &str) -> Result<ClientRecord, String> {
        let now = self.clock.now();
        if let Some(hit) = self.metadata_documents.get(id)
            && now < hit.until
        {
            return Ok(hit.client);
        }
        let url = self.check_client_id_url(id)?;
        let resp = self
            .metadata_http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the metadata document could not be fetched: {}",
                    crate::urls::describe(&e)
                )
            })?;
        if !resp.status().is_success() {
            return Err(format!(
                "the metadata document's server answered {}",
                resp.status()
            ));
        }
        let cache_control = resp
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_at_most(resp, MAX_METADATA_DOCUMENT_BYTES).await?;
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|e| format!("the metadata document is not valid: {e}"))?;
        let client = self.document_client(id, doc, now)?;
        if let Some(secs) = freshness(cache_control.as_deref()) {
            self.metadata_documents.insert(
                id.to_owned(),
                CachedDocument {
                    client: client.clone(),
                    until: now.add_secs(secs),
                },
            );
        }
        Ok(client)
    }

    fn document_client(
        &self,
        id: &str,
        doc: Document,
        now: Timestamp,
    ) -> Result<ClientRecord, String> {
        if doc.client_id != id {
            return Err("the metadata document's client_id is not its URL".into());
        }
        if doc.client_secret.is_some() {
            return Err("a metadata document must not hold a client_secret".into());
        }
        match doc.token_endpoint_auth_method.as_deref() {
            None | Some("none") => {}
            Some(other) => {
                return Err(format!(
                    "token_endpoint_auth_method {other} is not supported for metadata documents (use none)"
                ));
            }
        }
        if doc.redirect_uris.is_empty() || doc.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(format!(
                "the metadata document must list 1 to {MAX_REDIRECT_URIS} redirect_uris"
            ));
        }
        for r in &doc.redirect_uris {
            check_redirect_uri(r).map_err(|e| e.to_string())?;
        }
        let mut grants = doc
            .grant_types
            .unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.to_owned()]);
        grants.retain(|g| g == GRANT_AUTHORIZATION_CODE || g == GRANT_REFRESH_TOKEN);
        grants.sort();
        grants.dedup();
        if !grants.iter().any(|g| g == GRANT_AUTHORIZATION_CODE) {
            return Err(
                "the metadata document's grant_types must include authorization_code".into(),
            );
        }
        let host = url::Url::parse(id)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let name = match doc.client_name {
            Some(n) if crate::manage::check_name("client_name", &n).is_ok() => n.trim().to_owned(),
            Some(_) => return Err("the metadata document's client_name is not valid".into()),
            None => host,
        };
        let mut m = Map::new();
        m.insert("grantTypes".into(), serde_json::json!(grants));
        m.insert("redirectUris".into(), serde_json::json!(doc.redirect_uris));
        m.insert("tokenEndpointAuthMethod".into(), Value::from("none"));
        m.insert("metadataDocument".into(), Value::Bool(true));
        Ok(ClientRecord {
            id: id.to_owned(),
            name,
            secret_hash: None,
            metadata: m,
            created_at: now,
            updated_at: now,
        })
    }
}

/// Reads a response body of at most `max` bytes.
async fn read_at_most(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let too_large = || format!("the metadata document is larger than {max} bytes");
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        format!(
            "reading the metadata document failed: {}",
            crate::urls::describe(&e)
        )
    })? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_bounds_how_long_a_document_is_kept() {
        assert_eq!(freshness(None), Some(3600));
        assert_eq!(freshness(Some("public, max-age=600")), Some(600));
        assert_eq!(freshness(Some("max-age=1")), Some(60));
        assert_eq!(freshness(Some("max-age=9999999")), Some(24 * 3600));
        assert_eq!(freshness(Some("no-store")), None);
        assert_eq!(freshness(Some("max-age=600, no-cache")), None);
    }
}
