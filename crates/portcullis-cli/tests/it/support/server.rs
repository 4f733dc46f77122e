//! A real Portcullis server in this process (`portcullis serve`'s own start path, bound to an
//! ephemeral port), on SQLite in a temporary directory or on a fresh PostgreSQL database.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis_cli::config::{Config, ServeFlags};
use portcullis_cli::serve::{self, Running};
use portcullis_core::Core;
use reqwest::Method;
use serde_json::{Value, json};

use super::Idp;
use super::pg::FreshDatabase;

/// The storage backend of a test server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in a temporary data directory.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// A running server and a client for it.
pub struct TestServer {
    /// Its base URL.
    pub url: String,
    /// An admin key.
    pub admin_key: String,
    /// Its services (to reach into state a user cannot see, such as the audit queue).
    pub core: Arc<Core>,
    /// The backend.
    pub backend: Backend,
    /// The environment it was configured with (to start more nodes on the same database).
    pub env: HashMap<String, String>,
    /// An HTTP client that does not follow redirects.
    pub http: reqwest::Client,
    /// The cookies Portcullis set in "the user's browser" the helpers play (connect links).
    pub jar: std::sync::Mutex<HashMap<String, String>>,
    running: Option<Running>,
    /// The data directory.
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, if any.
    pub db: Option<Arc<FreshDatabase>>,
}

impl TestServer {
    /// A server on `backend` with the default test configuration.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// A server on `backend`, after `tweak` has changed its environment.
    pub async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Arc::new(FreshDatabase::create().await)),
        };
        let mut env = HashMap::new();
        env.insert("PORTCULLIS_LISTEN".into(), "127.0.0.1:0".into());
        env.insert(
            "PORTCULLIS_DATA_DIR".into(),
            dir.path().display().to_string(),
        );
        env.insert(
            "PORTCULLIS_BOOTSTRAP_ADMIN_KEY".into(),
            format!("test-admin-{}", portcullis_crypto::random_token(24)),
        );
        env.insert(
            "PORTCULLIS_MASTER_KEY".into(),
            portcullis_crypto::envelope::MasterKey::generate("test-1")
                .unwrap()
                .encode()
                .expose()
                .to_owned(),
        );
        env.insert(
            "PORTCULLIS_ALLOWED_RETURN_URLS".into(),
            "http://app.test/".into(),
        );
        if let Some(db) = &db {
            env.insert("PORTCULLIS_DATABASE_URL".into(), db.url.clone());
        }
        tweak(&mut env);
        Self::start_env(backend, env, dir, db).await
    }

    /// Another node on the same database (PostgreSQL), same keys.
    pub async fn another_node(&self) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut env = self.env.clone();
        env.insert(
            "PORTCULLIS_DATA_DIR".into(),
            dir.path().display().to_string(),
        );
        Self::start_env(self.backend, env, dir, self.db.clone()).await
    }

    async fn start_env(
        backend: Backend,
        env: HashMap<String, String>,
        dir: tempfile::TempDir,
        db: Option<Arc<FreshDatabase>>,
    ) -> Self {
        let lookup = |k: &str| env.get(k).cloned();
        let config = Config::load(&ServeFlags::default(), &lookup).unwrap();
        let running = serve::start(config).await.unwrap();
        Self {
            url: format!("http://{}", running.addr),
            admin_key: env["PORTCULLIS_BOOTSTRAP_ADMIN_KEY"].clone(),
            core: running.core.clone(),
            backend,
            env,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: std::sync::Mutex::new(HashMap::new()),
            running: Some(running),
            dir,
            db,
        }
    }

    /// Stops the server and starts it again on the same data (directory or database), after
    /// `tweak` has changed its environment.
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let mut env = std::mem::take(&mut self.env);
        tweak(&mut env);
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_env(self.backend, env, dir, self.db.take()).await
    }

    /// Stops the server and hands back its data (kept until the caller drops it).
    pub async fn stop(mut self) -> (tempfile::TempDir, Option<Arc<FreshDatabase>>) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, self.db.take())
    }

    /// Stops the server gracefully.
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// An admin call; the status and the JSON body (`null` when empty or not JSON).
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.with_key(&self.admin_key, method, path, body).await
    }

    /// A call with the bearer `key` (another admin key, a user's token); the status and the JSON
    /// body (`null` when empty or not JSON).
    pub async fn with_key(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Admin GET.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.admin(Method::GET, path, None).await
    }

    /// Admin POST.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.admin(Method::POST, path, Some(body)).await
    }

    /// Admin PUT.
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.admin(Method::PUT, path, Some(body)).await
    }

    /// Admin DELETE.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.admin(Method::DELETE, path, None).await
    }

    /// Admin POST that must succeed.
    pub async fn must_post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.post(path, body).await;
        assert!(
            (200..300).contains(&status),
            "POST {path} answered {status}: {v}"
        );
        v
    }

    /// Trusts `idp`'s tokens.
    pub async fn trust(&self, idp: &Idp) {
        self.must_post("/v1/mgmt/issuers", idp.registration()).await;
    }

    /// `POST /v1/outbound/apps/{app}/token` with an inbound token: status, body, headers.
    pub async fn fetch(
        &self,
        token: Option<&str>,
        app: &str,
        body: Value,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .post(format!("{}/v1/outbound/apps/{app}/token", self.url))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let v = resp.json().await.unwrap_or(Value::Null);
        (status, v, headers)
    }

    /// Starts a consent flow for the token's user: the connect link is opened and continued in
    /// the helpers' browser; the provider's authorization URL.
    pub async fn connect_url(&self, token: &str, app: &str, body: Value) -> String {
        let link = self.connect_link(token, app, body).await;
        self.open_link(&link).await
    }

    /// The connect link `POST /v1/outbound/apps/{app}/connect` answers (a page of Portcullis).
    pub async fn connect_link(&self, token: &str, app: &str, body: Value) -> String {
        let resp = self
            .http
            .post(format!("{}/v1/outbound/apps/{app}/connect", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "connect answered {status}: {v}");
        v["url"].as_str().unwrap().to_owned()
    }

    /// Plays the user's browser through a consent: the connect link's page ("Continue"), the
    /// provider's authorization endpoint (which redirects with a code at once), then Portcullis's
    /// callback. Returns the callback's status and its `Location` (or page body) — or the status
    /// and page of the first step that did not go on.
    pub async fn consent(&self, link: &str) -> (u16, String) {
        let authorization_url = if self.is_connect_link(link) {
            match self.try_open_link(link).await {
                Ok(url) => url,
                Err(stopped) => return stopped,
            }
        } else {
            link.to_owned()
        };
        let resp = self.http.get(&authorization_url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302, "the provider redirects back");
        let callback = resp.headers()["location"].to_str().unwrap().to_owned();
        self.follow_callback(&callback).await
    }

    /// Where a connect link leads: its page is opened and continued in the helpers' browser,
    /// and the provider's authorization URL returned.
    pub async fn open_link(&self, link: &str) -> String {
        assert!(
            self.is_connect_link(link),
            "a connect link is a page of Portcullis: {link}"
        );
        match self.try_open_link(link).await {
            Ok(url) => url,
            Err((status, page)) => {
                panic!("the link does not lead to the provider: {status} {page}")
            }
        }
    }

    /// Whether `link` is one of Portcullis's connect links.
    pub fn is_connect_link(&self, link: &str) -> bool {
        link.starts_with(&format!("{}/v1/outbound/connect/", self.url))
    }

    /// Sends a request as the helpers' browser: with its cookies, keeping those set.
    pub async fn browse(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let cookies: Vec<String> = self
            .jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = req
            .header("cookie", cookies.join("; "))
            .send()
            .await
            .unwrap();
        let mut jar = self.jar.lock().unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(set.contains("HttpOnly"), "{set}");
            if let Some((k, v)) = set.split(';').next().and_then(|p| p.split_once('=')) {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        resp
    }

    /// The link's page, then "Continue": the provider's authorization URL, or the status and
    /// page where it stopped.
    pub async fn try_open_link(&self, link: &str) -> Result<String, (u16, String)> {
        let page = self.browse(self.http.get(link)).await;
        let status = page.status().as_u16();
        let body = page.text().await.unwrap();
        if status != 200 {
            return Err((status, body));
        }
        let marker = "name=\"csrf\" value=\"";
        let start = body.find(marker).expect("the page has a form") + marker.len();
        let csrf = &body[start..start + body[start..].find('"').unwrap()];
        let resp = self
            .browse(
                self.http
                    .post(link)
                    .form(&[("action", "continue"), ("csrf", csrf)]),
            )
            .await;
        let status = resp.status().as_u16();
        if status != 303 {
            return Err((status, resp.text().await.unwrap()));
        }
        Ok(resp.headers()["location"].to_str().unwrap().to_owned())
    }

    /// GETs a callback URL in the helpers' browser; its status and `Location` (or body).
    pub async fn follow_callback(&self, callback: &str) -> (u16, String) {
        let resp = self.browse(self.http.get(callback)).await;
        let status = resp.status().as_u16();
        match resp.headers().get("location") {
            Some(l) => (status, l.to_str().unwrap().to_owned()),
            None => (status, resp.text().await.unwrap()),
        }
    }

    /// Connects `app` for the token's user with `scopes`, end to end.
    pub async fn connect(&self, token: &str, app: &str, scopes: &[&str]) {
        let url = self
            .connect_url(token, app, json!({ "scopes": scopes }))
            .await;
        let (status, page) = self.consent(&url).await;
        assert_eq!(status, 200, "the consent completes: {page}");
    }

    /// Waits until every queued audit event is written.
    pub async fn flush_audit(&self) {
        self.core.flush_audit().await;
    }
}

/// A connect link continued in a fresh browser of its own (`http` must not follow redirects):
/// the provider's authorization URL and the cookies the browser holds then (the binding cookie
/// among them), or `None` when a step failed.
pub async fn continue_link(http: &reqwest::Client, link: &str) -> Option<(String, Vec<String>)> {
    let mut cookies: Vec<String> = Vec::new();
    let keep = |resp: &reqwest::Response, cookies: &mut Vec<String>| {
        for set in resp.headers().get_all("set-cookie") {
            if let Some(pair) = set.to_str().ok().and_then(|s| s.split(';').next()) {
                cookies.push(pair.to_owned());
            }
        }
    };
    let page = http.get(link).send().await.ok()?;
    keep(&page, &mut cookies);
    let body = page.text().await.ok()?;
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)?
        .split('"')
        .next()?
        .to_owned();
    let go = http
        .post(link)
        .header("cookie", cookies.join("; "))
        .form(&[("action", "continue"), ("csrf", csrf.as_str())])
        .send()
        .await
        .ok()?;
    keep(&go, &mut cookies);
    let url = go.headers().get("location")?.to_str().ok()?.to_owned();
    Some((url, cookies))
}

/// Goes to the provider (which answers at once) and back to the callback with `cookies`: the
/// callback's status.
pub async fn finish_at_provider(
    http: &reqwest::Client,
    provider_url: &str,
    cookies: &[String],
) -> Option<u16> {
    let back = http.get(provider_url).send().await.ok()?;
    let callback = back.headers().get("location")?.to_str().ok()?.to_owned();
    let done = http
        .get(callback)
        .header("cookie", cookies.join("; "))
        .send()
        .await
        .ok()?;
    Some(done.status().as_u16())
}
