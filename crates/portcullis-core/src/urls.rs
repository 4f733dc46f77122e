//! URL checks for everything Portcullis calls or redirects to, and small HTTP helpers.

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use url::Url;

use crate::{ServiceError, Settings};

/// The most a provider or IdP response may weigh.
pub(crate) const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// [`check_url`] for a URL given in a management request's body as `field`: a refusal names the
/// field in its details (other callers check URLs they were sent by a provider, not a field).
pub(crate) fn check_body_url(
    raw: &str,
    field: &str,
    settings: &Settings,
) -> Result<String, ServiceError> {
    check_url(raw, field, settings).map_err(|e| e.at(field))
}

/// Checks a URL Portcullis will call: absolute, `https` (or `http` on a loopback host, or anywhere
/// with `danger_allow_insecure_http`), no credentials, no fragment. Returns it normalized.
pub fn check_url(raw: &str, field: &str, settings: &Settings) -> Result<String, ServiceError> {
    let url = Url::parse(raw).map_err(|e| {
        ServiceError::invalid(
            "invalid_url",
            format!("{field} is not a valid absolute URL: {e}"),
        )
    })?;
    let internal_ok = !settings.production || settings.danger_allow_private_network;
    match url.scheme() {
        "https" => {}
        "http" if settings.danger_allow_insecure_http => {}
        "http" if is_loopback(&url) && !settings.production => {}
        "http" if settings.production => {
            return Err(ServiceError::invalid(
                "invalid_url",
                format!("{field} must use https in production mode"),
            ));
        }
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
    if !internal_ok {
        let internal = match url.host() {
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.to_ascii_lowercase().ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => is_internal(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_internal(IpAddr::V6(ip)),
            None => true,
        };
        if internal {
            return Err(ServiceError::invalid(
                "invalid_url",
                format!(
                    "{field} names an internal address (loopback, private or link-local), refused in production mode"
                ),
            ));
        }
    }
    Ok(url.to_string())
}

/// Whether `a` and `b` are URLs of the same origin (scheme, host and port).
pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Whether Portcullis must not call `ip` in production: loopback, private (RFC 1918, unique local),
/// link-local, shared (CGNAT), unspecified, multicast, broadcast, documentation and benchmarking
/// ranges, and IPv4 addresses written as IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064
        }
    }
}

/// A DNS resolver that drops internal addresses ([`is_internal`]): in production mode, a name
/// that resolves only to such addresses (or is rebound to one) is not called.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> =
                addrs.filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
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

    #[test]
    fn production_calls_only_public_https_urls() {
        let prod = Settings {
            production: true,
            ..Settings::default()
        };
        for bad in [
            "http://provider.example/token",
            "https://127.0.0.1/token",
            "https://localhost:8443/token",
            "https://api.localhost/token",
            "https://10.1.2.3/token",
            "https://172.16.0.1/token",
            "https://192.168.1.1/token",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/token",
            "https://0.0.0.0/token",
            "https://[::1]/token",
            "https://[fd00::1]/token",
            "https://[fe80::1]/token",
            "https://[::ffff:127.0.0.1]/token",
        ] {
            assert!(check_url(bad, "u", &prod).is_err(), "{bad}");
        }
        for good in [
            "https://provider.example/token",
            "https://8.8.8.8/token",
            "https://[2606:4700::1]/x",
        ] {
            assert!(check_url(good, "u", &prod).is_ok(), "{good}");
        }
        let tests = Settings {
            production: true,
            danger_allow_private_network: true,
            ..Settings::default()
        };
        assert!(check_url("https://127.0.0.1/token", "u", &tests).is_ok());
        assert!(
            check_url("http://127.0.0.1/token", "u", &tests).is_err(),
            "still https"
        );
        assert!(same_origin(
            "https://idp.example/jwks",
            "https://idp.example"
        ));
        assert!(!same_origin(
            "https://keys.example/jwks",
            "https://idp.example"
        ));
        assert!(!same_origin(
            "https://idp.example:8443/jwks",
            "https://idp.example"
        ));
    }

    #[tokio::test]
    async fn the_production_resolver_drops_internal_addresses() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(PublicOnly.resolve(name).await.is_err());
    }
}
