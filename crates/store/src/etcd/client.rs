//! HTTP/1.1 transport to etcd's JSON gateway: endpoint failover, authentication, error mapping.
//!
//! Requests go to the current endpoint; on a failure that says nothing was done (connection
//! refused, no leader) the next endpoint is tried, with a short backoff once every endpoint
//! failed, until the configured timeout. A failure after the request may have been applied
//! (a timeout, a broken connection) is retried only for reads and other idempotent calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::wire::{AuthenticateResponse, GatewayError};
use super::EtcdConfig;
use crate::{Result, StoreError};

type Http = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// gRPC status codes that etcd's errors carry.
const UNAUTHENTICATED: i64 = 16;
const PERMISSION_DENIED: i64 = 7;

pub(crate) struct Client {
    http: Http,
    endpoints: Vec<String>,
    current: AtomicUsize,
    credentials: Option<(String, String)>,
    token: RwLock<Option<String>>,
    pub timeout: Duration,
}

/// How a failed attempt goes on.
pub(crate) enum Next {
    /// Nothing was done: try the next endpoint.
    Retry(StoreError),
    /// The request may have been applied: retry only an idempotent call.
    RetryIfIdempotent(StoreError),
    /// The token expired or is invalid: authenticate again and repeat.
    Reauthenticate(StoreError),
    Fail(StoreError),
}

impl Client {
    pub(crate) fn new(cfg: &EtcdConfig) -> Result<Client> {
        if cfg.endpoints.is_empty() {
            return Err(StoreError::Internal("etcd: no endpoint configured".into()));
        }
        let mut endpoints = Vec::new();
        for ep in &cfg.endpoints {
            let ep = ep.trim_end_matches('/');
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return Err(StoreError::Internal(format!(
                    "etcd endpoint {ep:?} must start with http:// or https://"
                )));
            }
            endpoints.push(ep.to_string());
        }
        let uses_tls = endpoints.iter().any(|e| e.starts_with("https://"));
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.timeout));
        // Finds a member that vanished without closing its connections (watch streams idle).
        http.set_keepalive(Some(Duration::from_secs(15)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(super::tls::client_config(cfg.tls.as_ref(), uses_tls)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let credentials = match (&cfg.user, &cfg.password) {
            (Some(user), password) => Some((user.clone(), password.clone().unwrap_or_default())),
            _ => None,
        };
        Ok(Client {
            http,
            endpoints,
            current: AtomicUsize::new(0),
            credentials,
            token: RwLock::new(None),
            timeout: cfg.timeout,
        })
    }

    /// Calls a unary gateway method and decodes its answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
        idempotent: bool,
    ) -> Result<T> {
        let (endpoint, response) = self.exchange(path, body, idempotent).await?;
        let bytes = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| unavailable(&endpoint, "no complete answer in time"))?
            .map_err(|e| unavailable(&endpoint, &chain(&e)))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Internal(format!("{endpoint}{path}: unexpected answer: {e}")))
    }

    /// Opens a streaming call (a watch); returns the endpoint that answered and the response.
    pub(crate) async fn stream(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(String, Response<Incoming>)> {
        self.exchange(path, body, true).await
    }

    /// Moves on to the next endpoint after `failed` did not work (unless another caller did).
    pub(crate) fn rotate(&self, failed: usize) {
        let next = (failed + 1) % self.endpoints.len();
        let _ = (self.current).compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn current_endpoint(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.endpoints.len()
    }

    /// Sends `body` to `path` and returns a `200 OK` response, failing over between endpoints.
    async fn exchange(
        &self,
        path: &str,
        body: &serde_json::Value,
        idempotent: bool,
    ) -> Result<(String, Response<Incoming>)> {
        let body =
            Bytes::from(serde_json::to_vec(body).map_err(|e| {
                StoreError::Internal(format!("cannot encode an etcd request: {e}"))
            })?);
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(50);
        let mut reauthenticated = false;
        let mut failures = 0;
        loop {
            let index = self.current_endpoint();
            let endpoint = self.endpoints[index].clone();
            let token = self.token.read().unwrap_or_else(|e| e.into_inner()).clone();
            let next = match self
                .attempt(&endpoint, path, body.clone(), token.as_deref(), deadline)
                .await
            {
                Ok(response) if response.status() == StatusCode::OK => {
                    return Ok((endpoint, response))
                }
                Ok(response) => self.classify(&endpoint, response).await,
                Err(next) => next,
            };
            let error = match next {
                Next::Fail(e) => return Err(e),
                // A write on a connection that broke: if the member is gone, it can at most have
                // applied the write without answering (then the retry repeats it), while the
                // common case is a kept-alive connection to a member that just died.
                Next::RetryIfIdempotent(e) if !idempotent && reachable(&endpoint).await => {
                    return Err(e)
                }
                Next::Reauthenticate(e) if reauthenticated || self.credentials.is_none() => {
                    return Err(e)
                }
                Next::Reauthenticate(_) => {
                    reauthenticated = true;
                    // Boxed: authenticating is itself a call through this function.
                    Box::pin(self.authenticate()).await?;
                    continue;
                }
                Next::Retry(e) | Next::RetryIfIdempotent(e) => e,
            };
            self.rotate(index);
            failures += 1;
            if failures % self.endpoints.len() == 0 {
                if Instant::now() + backoff >= deadline {
                    return Err(error);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            } else if Instant::now() >= deadline {
                return Err(error);
            }
        }
    }

    /// One request to one endpoint, up to the response headers.
    async fn attempt(
        &self,
        endpoint: &str,
        path: &str,
        body: Bytes,
        token: Option<&str>,
        deadline: Instant,
    ) -> std::result::Result<Response<Incoming>, Next> {
        let mut request = Request::post(format!("{endpoint}{path}"))
            .header("content-type", "application/json")
            // Watches on a member that lost its leader are cancelled, so we move to another.
            .header("grpc-metadata-hasleader", "true");
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| Next::Fail(StoreError::Internal(format!("{endpoint}{path}: {e}"))))?;
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, self.http.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => Err(Next::Retry(unavailable(endpoint, &chain(&e)))),
            Ok(Err(e)) => Err(Next::RetryIfIdempotent(unavailable(endpoint, &chain(&e)))),
            Err(_) => Err(Next::RetryIfIdempotent(unavailable(
                endpoint,
                &format!("no answer within {:?}", self.timeout),
            ))),
        }
    }

    /// Maps a non-200 answer (`{"error", "message", "code"}`) to what to do next.
    async fn classify(&self, endpoint: &str, response: Response<Incoming>) -> Next {
        let status = response.status();
        let body = tokio::time::timeout(self.timeout, response.into_body().collect()).await;
        let bytes = match body {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => return Next::RetryIfIdempotent(unavailable(endpoint, "answer cut short")),
        };
        match serde_json::from_slice::<GatewayError>(&bytes) {
            Ok(err) if !err.message.is_empty() || !err.error.is_empty() => {
                let message = if err.message.is_empty() {
                    err.error
                } else {
                    err.message
                };
                error_next(endpoint, err.code, &message)
            }
            _ if status.is_server_error() => {
                Next::RetryIfIdempotent(unavailable(endpoint, &format!("HTTP {status}")))
            }
            _ => Next::Fail(StoreError::Internal(format!(
                "{endpoint}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }

    /// Gets a fresh token with the configured user and password (no-op without a user).
    pub(crate) async fn authenticate(&self) -> Result<()> {
        let Some((name, password)) = &self.credentials else {
            return Ok(());
        };
        // Ask without the old token: an invalid token would make etcd refuse this call too.
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = None;
        let body = serde_json::json!({ "name": name, "password": password });
        let answer: AuthenticateResponse = self.call("/v3/auth/authenticate", &body, true).await?;
        if answer.token.is_empty() {
            return Err(StoreError::Auth(
                "etcd accepted the credentials but sent no token (is auth enabled?)".into(),
            ));
        }
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = Some(answer.token);
        Ok(())
    }
}

/// Maps an etcd error (gRPC code and message) to what to do next.
pub(crate) fn error_next(endpoint: &str, code: i64, message: &str) -> Next {
    let m = message.to_ascii_lowercase();
    if m.contains("invalid auth token") || (m.contains("auth token") && code == UNAUTHENTICATED) {
        return Next::Reauthenticate(StoreError::Auth(format!("{endpoint}: {message}")));
    }
    if m.contains("authentication failed") || code == UNAUTHENTICATED || code == PERMISSION_DENIED {
        return Next::Fail(StoreError::Auth(format!("{endpoint}: {message}")));
    }
    if m.contains("user name is empty") {
        // No token sent yet (a lazily connected store): authenticate when credentials exist.
        return Next::Reauthenticate(StoreError::Auth(format!(
            "{endpoint}: etcd requires authentication; configure a user and password"
        )));
    }
    if m.contains("lease not found") {
        return Next::Fail(StoreError::LeaseNotFound(0));
    }
    if m.contains("required revision has been compacted") {
        return Next::Fail(StoreError::Compacted {
            requested: 0,
            compacted: 0,
        });
    }
    // Refused before being proposed: safe to send elsewhere.
    if m.contains("no leader") || m.contains("not capable") || m.contains("too many requests") {
        return Next::Retry(unavailable(endpoint, message));
    }
    if m.contains("timed out") || m.contains("leader changed") || code == 14 || code == 4 {
        return Next::RetryIfIdempotent(unavailable(endpoint, message));
    }
    Next::Fail(StoreError::Internal(format!("{endpoint}: {message}")))
}

/// Whether an etcd error message means the token must be renewed.
pub(crate) fn is_token_error(message: &str) -> bool {
    message.to_ascii_lowercase().contains("invalid auth token")
}

/// Whether a fresh TCP connection to `endpoint`'s host and port succeeds within 300 ms.
async fn reachable(endpoint: &str) -> bool {
    let Ok(uri) = endpoint.parse::<hyper::Uri>() else {
        return true;
    };
    let Some(host) = uri.host() else {
        return true;
    };
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = uri.port_u16().unwrap_or(default_port);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connect = tokio::net::TcpStream::connect((host, port));
    matches!(
        tokio::time::timeout(Duration::from_millis(300), connect).await,
        Ok(Ok(_))
    )
}

pub(crate) fn unavailable(endpoint: &str, what: &str) -> StoreError {
    StoreError::Unavailable(format!("{endpoint}: {what}"))
}

/// An error and its causes, e.g. "client error (Connect): tcp connect error: Connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
