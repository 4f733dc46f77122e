//! Resource servers (MCP servers) registered by an admin: the audiences of the tokens Portcullis
//! issues, with the scopes they offer; and the RFC 9728 metadata each can serve.

use portcullis_domain::ResourceRecord;

use super::*;

/// The most scopes a resource may offer.
pub const MAX_RESOURCE_SCOPES: usize = 256;
/// The longest canonical resource URI, in characters.
pub const MAX_RESOURCE_URI: usize = 2048;

/// A resource server as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceInput {
    /// Its id, a slug (required on create; on update, the path's).
    #[serde(default)]
    pub id: Option<String>,
    /// Its canonical URI: `https://` (or `http://` on a loopback host outside production), no
    /// fragment, no query. Stored canonical (lower-case scheme and host, no trailing `/` alone).
    pub uri: String,
    /// A display name, 1 to 128 characters.
    pub name: String,
    /// What it is, for people (the consent screen), at most 1,024 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// The scopes it offers (its tools' scopes), with descriptions; the fetch scope
    /// (`outbound.token.fetch`) is always offered and added when absent.
    #[serde(default)]
    pub scopes: Vec<ScopeDef>,
}

/// A resource server as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceView {
    /// Its id.
    pub id: String,
    /// Its canonical URI: the `aud` of the tokens issued for it.
    pub uri: String,
    /// Its name.
    pub name: String,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The scopes it offers.
    pub scopes: Vec<ScopeDef>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl From<&ResourceRecord> for ResourceView {
    fn from(r: &ResourceRecord) -> Self {
        Self {
            id: r.id.clone(),
            uri: r.uri.clone(),
            name: r.name.clone(),
            description: r.description.clone(),
            scopes: r.scopes.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Whether `c` may appear in an OAuth scope token (RFC 6749 §3.3).
pub(super) fn scope_char(c: char) -> bool {
    matches!(c, '\u{21}' | '\u{23}'..='\u{5b}' | '\u{5d}'..='\u{7e}')
}

/// Whether `uri` has the documented shape: `https://` and a DNS host name, or `http://` and
/// `localhost`, `127.0.0.1` or `[::1]`; any TCP port (1 to 5 digits, at most 65535); a path of
/// ASCII letters, digits, URL punctuation (RFC 3986 `pchar`) and percent-escapes; nothing else.
pub(super) fn uri_shape_ok(uri: &str) -> bool {
    let (https, rest) = match (uri.strip_prefix("https://"), uri.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return false,
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority.ends_with(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    if port.is_some_and(|p| {
        p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u16>().is_err()
    }) {
        return false;
    }
    let host_ok = if https {
        let labels: Vec<&str> = host.split('.').collect();
        labels
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            && labels
                .last()
                .is_some_and(|l| l.as_bytes()[0].is_ascii_alphabetic())
    } else {
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
    };
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if i + 2 >= bytes.len() {
                return false;
            }
            if !(bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"._~!$&'()*+,;=:@/-".contains(&b)) {
            return false;
        }
        i += 1;
    }
    host_ok
}

/// The canonical form of a resource URI (RFC 8707 §2, the MCP specification's canonical server
/// URI), or why it is not one (placed at `uri`, the field of a resource server that holds it).
pub fn canonical_resource_uri(uri: &str, production: bool) -> Result<String, ServiceError> {
    let bad =
        |why: &str| ServiceError::invalid_at("invalid_resource_uri", "uri", format!("uri {why}"));
    if uri.is_empty() || uri.chars().count() > MAX_RESOURCE_URI {
        return Err(bad("must be 1 to 2048 characters"));
    }
    let parsed = url::Url::parse(uri).map_err(|_| bad("must be an absolute URI"))?;
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(bad("must not have a fragment"));
    }
    if parsed.query().is_some() {
        return Err(bad("must not have a query"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not hold credentials"));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => return Err(bad("must name a host")),
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback && !production => {}
        "http" => {
            return Err(bad(
                "must use https (http only on a loopback host, outside production)",
            ));
        }
        _ => return Err(bad("must be an https URI")),
    }
    if !uri_shape_ok(uri) {
        return Err(bad(
            "must be a DNS host name (or localhost, 127.0.0.1 or [::1] over http), a port, and a path of ASCII letters, digits, URL punctuation and percent-escapes",
        ));
    }
    let mut canonical = parsed.to_string();
    // `https://mcp.example.com/` and `https://mcp.example.com` name one server: the latter.
    if parsed.path() == "/" {
        canonical.pop();
    }
    Ok(canonical)
}

impl Core {
    fn resource_record(
        &self,
        id: String,
        input: &ResourceInput,
        created_at: Option<Timestamp>,
    ) -> Result<ResourceRecord, ServiceError> {
        check_slug("id", &id)?;
        let uri = canonical_resource_uri(&input.uri, self.settings.production)?;
        check_name("name", &input.name)?;
        check_description("description", input.description.as_deref())?;
        if input.scopes.len() > MAX_RESOURCE_SCOPES {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "scopes",
                format!("at most {MAX_RESOURCE_SCOPES} scopes"),
            ));
        }
        let mut seen = HashSet::new();
        for (i, s) in input.scopes.iter().enumerate() {
            if s.name.is_empty() || s.name.chars().count() > 128 || !s.name.chars().all(scope_char)
            {
                return Err(ServiceError::invalid_at(
                    "invalid_scope",
                    format!("scopes[{i}].name"),
                    "a scope name is 1 to 128 printable ASCII characters, without spaces, quotes or backslashes",
                ));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(ServiceError::invalid_at(
                    "invalid_scope",
                    format!("scopes[{i}].name"),
                    format!("scope {} is listed twice", s.name),
                ));
            }
            check_description(
                &format!("scopes[{i}].description"),
                s.description.as_deref(),
            )?;
        }
        let mut scopes = input.scopes.clone();
        if !seen.contains(self.settings.fetch_scope.as_str()) {
            scopes.push(ScopeDef {
                name: self.settings.fetch_scope.clone(),
                description: Some("Fetch your connected apps' tokens through Portcullis".into()),
            });
        }
        let now = self.clock.now();
        Ok(ResourceRecord {
            id,
            uri,
            name: input.name.clone(),
            description: input.description.clone(),
            scopes,
            created_at: created_at.unwrap_or(now),
            updated_at: now,
        })
    }

    /// Registers a resource server.
    pub async fn create_resource(
        &self,
        input: &ResourceInput,
    ) -> Result<ResourceView, ServiceError> {
        let id = input
            .id
            .clone()
            .ok_or_else(|| ServiceError::invalid_at("invalid_request", "id", "id is required"))?;
        let record = self.resource_record(id, input, None)?;
        self.stores.resources.insert_resource(&record).await?;
        Ok(ResourceView::from(&record))
    }

    /// Reads a resource server.
    pub async fn get_resource(&self, id: &str) -> Result<ResourceView, ServiceError> {
        view_of(self.stores.resources.resource(id).await?, "resource", id)
    }

    /// Lists resource servers.
    pub async fn list_resources(
        &self,
        params: &ListParams,
    ) -> Result<Page<ResourceView>, ServiceError> {
        page_of(
            params,
            async |page| self.stores.resources.resources(page).await,
            |r| r.id.clone(),
        )
        .await
    }

    /// Replaces a resource server.
    pub async fn update_resource(
        &self,
        id: &str,
        input: &ResourceInput,
    ) -> Result<ResourceView, ServiceError> {
        same_id(input.id.as_deref(), id)?;
        let current = self
            .stores
            .resources
            .resource(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("resource", id))?;
        let record = self.resource_record(id.to_owned(), input, Some(current.created_at))?;
        self.stores
            .resources
            .update_resource(&record)
            .await
            .map_err(|e| not_found(e, "resource", id))?;
        Ok(ResourceView::from(&record))
    }

    /// Removes a resource server.
    pub async fn delete_resource(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .resources
            .delete_resource(id)
            .await
            .map_err(|e| not_found(e, "resource", id))
    }

    /// The RFC 9728 protected resource metadata of a resource server: what it (or a proxy in
    /// front of it) serves at its `/.well-known/oauth-protected-resource` path.
    pub async fn resource_metadata(&self, id: &str) -> Result<Value, ServiceError> {
        let r = self
            .stores
            .resources
            .resource(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("resource", id))?;
        let issuer = self.settings.public_url.trim_end_matches('/');
        Ok(serde_json::json!({
            "resource": r.uri,
            "authorization_servers": [issuer],
            "scopes_supported": r.scopes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "bearer_methods_supported": ["header"],
            "resource_name": r.name,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical form, and the shape the OpenAPI document states, refused otherwise.
    #[test]
    fn resource_uris_are_canonical_and_of_the_documented_shape() {
        let ok = |u: &str| canonical_resource_uri(u, false).unwrap();
        assert_eq!(
            ok("https://MCP.Example.com:443/"),
            "https://mcp.example.com"
        );
        assert_eq!(
            ok("https://mcp.example.com/a/%7Eb"),
            "https://mcp.example.com/a/%7Eb"
        );
        assert_eq!(ok("http://127.0.0.1:9000/mcp"), "http://127.0.0.1:9000/mcp");
        assert_eq!(ok("http://[::1]/mcp"), "http://[::1]/mcp");
        for bad in [
            "http://127.0.0.2/mcp",
            "http://127.8817.69.48244914/",
            "https://mcp.example.com:99999/",
            "https://mcp.example.com/é",
            "https://mcp.example.com/a b",
            "https://mcp.example.com/%zz",
            "https://1.2.3.4/",
            "HTTPS://mcp.example.com/",
        ] {
            assert!(canonical_resource_uri(bad, false).is_err(), "{bad}");
        }
        assert!(canonical_resource_uri("http://localhost/mcp", true).is_err());
    }
}
