//! Just enough of a browser to walk the sign-in, consent and connect pages the way a person
//! would: no automatic redirects, cookies kept by name (every origin here is the same loopback
//! host), hidden form fields read from the page.

use std::collections::HashMap;

/// A page or a redirect.
#[derive(Debug, Clone)]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// Where a redirect goes.
    pub location: Option<String>,
    /// The body.
    pub body: String,
}

impl Page {
    /// A form field's value on the page (`name="..." value="..."`), if there is one.
    pub fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = start + self.body[start..].find('"')?;
        Some(self.body[start..end].replace("&amp;", "&"))
    }

    /// A query parameter of the redirect's location.
    pub fn param(&self, name: &str) -> Option<String> {
        let loc = url::Url::parse(self.location.as_deref()?).ok()?;
        loc.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The page, as an error for an unexpected step.
    pub fn unexpected(&self, step: &str) -> String {
        let body: String = self.body.chars().take(400).collect();
        format!("{step}: answered {} {body}", self.status)
    }
}

/// A browser with its cookies.
#[derive(Debug, Clone)]
pub struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser holding no cookie.
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Result<Page, String> {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = req
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        for set in resp.headers().get_all("set-cookie") {
            let Ok(set) = set.to_str() else { continue };
            if let Some((k, v)) = set.split(';').next().and_then(|c| c.split_once('=')) {
                self.cookies.insert(k.trim().to_owned(), v.to_owned());
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok(Page {
            status,
            location,
            body,
        })
    }

    /// `GET url`.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn get(&mut self, url: &str) -> Result<Page, String> {
        let req = self.http.get(url);
        self.send(req).await
    }

    /// Posts a form to `url`.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Result<Page, String> {
        let req = self.http.post(url).form(form);
        self.send(req).await
    }
}
