//! URL checks for everything Portcullis calls or redirects to, and small HTTP helpers.

use serde::de::DeserializeOwned;
use url::Url;

use crate::{ServiceError, Settings};

/// The most a provider or IdP response may weigh.
pub(crate) const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Checks a URL Portcullis will call: absolute, `https` (or `http` on a loopback host, or anywhere
/// with `danger_allow_insecure_http`), no credentials, no fragment. Returns it normalized.
pub fn check_url(raw: &str, field: &str, settings: &Settings) -> Result<String, ServiceError> {
    let url = Url::parse(raw).map_err(|e| {
        ServiceError::invalid(
            "invalid_url",
            format!("{field} is not a valid absolute URL: {e}"),
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) || settings.danger_allow_insecure_http => {}
        "http" => {
            return Err(ServiceError::invalid(
                "invalid_url",
                format!("{field} must use https (plain http is only accepted on loopback hosts)"),
            ));
        }
        other => {
            return Err(ServiceError::invalid(
                "invalid_url",
                format!("{field} must be an https URL, not {other}"),
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ServiceError::invalid(
            "invalid_url",
            format!("{field} must name a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ServiceError::invalid(
            "invalid_url",
            format!("{field} must not carry credentials"),
        ));
    }
    if url.fragment().is_some() {
        return Err(ServiceError::invalid(
            "invalid_url",
            format!("{field} must not have a fragment"),
        ));
    }
    Ok(url.to_string())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Reads a response body, refusing one larger than [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp
        .content_length()
        .is_some_and(|l| l > MAX_RESPONSE_BYTES as u64)
    {
        return Err("the response is too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err("the response is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// GETs a JSON document.
pub(crate) async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let body = read_limited(resp).await?;
    serde_json::from_slice(&body).map_err(|e| format!("{url} sent invalid JSON: {e}"))
}

/// A reqwest error in words, without the URL's query (which may hold secrets).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "the connection failed".into()
    } else {
        let mut e = e.to_string();
        if let Some(i) = e.find('?') {
            e.truncate(i);
        }
        e
    }
}

/// Whether `candidate` is an allowed return URL: same origin as the public URL, or matching an
/// entry of the allow list (an origin, or a prefix ending with `/`).
pub(crate) fn return_url_allowed(candidate: &str, settings: &Settings) -> bool {
    let Ok(url) = Url::parse(candidate) else {
        return false;
    };
    if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() {
        return false;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let origin = url.origin().ascii_serialization();
    let public_origin = Url::parse(&settings.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    if origin == public_origin {
        return true;
    }
    settings.allowed_return_urls.iter().any(|entry| {
        if entry.ends_with('/') {
            url.as_str().starts_with(entry.as_str())
        } else {
            Url::parse(entry).is_ok_and(|e| e.origin().ascii_serialization() == origin)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends as a return URL, it is accepted only on an allowed origin
        /// (never a look-alike host, never userinfo, never another scheme), and nothing panics.
        #[test]
        fn return_urls_never_leave_the_allowed_origins(candidate in "\\PC{0,80}", suffix in "[a-z0-9./?=&#@:%-]{0,40}") {
            let s = Settings {
                public_url: "https://pc.example".into(),
                allowed_return_urls: vec!["https://app.example".into()],
                ..Settings::default()
            };
            for raw in [candidate.clone(), format!("https://app.example{suffix}"), format!("https://pc.example{suffix}")] {
                if return_url_allowed(&raw, &s) {
                    let url = Url::parse(&raw).unwrap();
                    let origin = url.origin().ascii_serialization();
                    prop_assert!(origin == "https://app.example" || origin == "https://pc.example", "{raw}");
                    prop_assert!(url.username().is_empty() && url.password().is_none(), "{raw}");
                }
            }
        }

        /// A URL Portcullis will call is https (or http on loopback), with no credentials or
        /// fragment, whatever the input; nothing panics.
        #[test]
        fn called_urls_are_checked(candidate in "\\PC{0,120}") {
            let s = Settings::default();
            if let Ok(u) = check_url(&candidate, "url", &s) {
                let url = Url::parse(&u).unwrap();
                prop_assert!(url.scheme() == "https" || url.scheme() == "http");
                prop_assert!(url.username().is_empty() && url.password().is_none());
                prop_assert!(url.fragment().is_none());
                if url.scheme() == "http" {
                    prop_assert!(is_loopback(&url), "{u}");
                }
            }
        }
    }

    #[test]
    fn provider_urls() {
        let s = Settings::default();
        assert!(check_url("https://p.example/token", "u", &s).is_ok());
        assert!(check_url("http://127.0.0.1:9/token", "u", &s).is_ok());
        assert!(check_url("http://localhost:9/token", "u", &s).is_ok());
        assert!(check_url("http://p.example/token", "u", &s).is_err());
        assert!(check_url("ftp://p.example/token", "u", &s).is_err());
        assert!(check_url("https://u:p@p.example/token", "u", &s).is_err());
        assert!(check_url("https://p.example/token#x", "u", &s).is_err());
        assert!(check_url("/token", "u", &s).is_err());
    }

    #[test]
    fn return_urls() {
        let s = Settings {
            public_url: "https://pc.example".into(),
            allowed_return_urls: vec![
                "https://app.example".into(),
                "https://other.example/mcp/".into(),
            ],
            ..Settings::default()
        };
        assert!(return_url_allowed("https://pc.example/done", &s));
        assert!(return_url_allowed("https://app.example/anything?x=1", &s));
        assert!(return_url_allowed("https://other.example/mcp/done", &s));
        assert!(!return_url_allowed("https://other.example/elsewhere", &s));
        assert!(!return_url_allowed("https://evil.example/", &s));
        assert!(!return_url_allowed("https://app.example.evil.example/", &s));
        assert!(!return_url_allowed("javascript:alert(1)", &s));
        assert!(!return_url_allowed("https://user@app.example/", &s));
    }
}
