//! A tiny HTTP backend whose behaviour a test switches at run time.
//!
//! `GET /status` is the health probe path: it answers [`Backend::set_probe_status`] (200 by
//! default) and is counted apart. Paths below `/slow` wait for [`Backend::release_slow`] before
//! answering. Every other request answers [`Backend::set_fail_status`] (200 when 0) with the
//! backend's name as the body. [`Backend::stop`] closes the listener and every connection, so
//! connections are refused until [`Backend::restart`]. [`Backend::start_tls`] starts one that
//! speaks TLS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

struct State {
    probe_status: AtomicU16,
    fail_status: AtomicU16,
    hits: AtomicUsize,
    probes: AtomicUsize,
    slow_arrived: AtomicUsize,
    slow_gate: Semaphore,
}

/// One backend on 127.0.0.1.
pub struct Backend {
    name: String,
    addr: SocketAddr,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Backend {
    /// Starts a backend answering `name`.
    pub async fn start(name: &str) -> Backend {
        Backend::start_with(name, None).await
    }

    /// Starts a backend answering `name` over TLS with `certs`' server certificate.
    pub async fn start_tls(name: &str, certs: &portico_testkit::TestCerts) -> Backend {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.server_cert)
            .expect("read certificate")
            .map(|c| c.expect("certificate"))
            .collect();
        let key = PrivateKeyDer::from_pem_file(&certs.server_key).expect("read key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        Backend::start_with(name, Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(name: &str, tls: Option<TlsAcceptor>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let state = Arc::new(State {
            probe_status: AtomicU16::new(200),
            fail_status: AtomicU16::new(0),
            hits: AtomicUsize::new(0),
            probes: AtomicUsize::new(0),
            slow_arrived: AtomicUsize::new(0),
            slow_gate: Semaphore::new(0),
        });
        let task = tokio::spawn(accept(
            listener,
            tls.clone(),
            name.to_string(),
            state.clone(),
        ));
        Backend {
            name: name.to_string(),
            addr,
            state,
            tls,
            task: Mutex::new(Some(task)),
        }
    }

    /// `127.0.0.1:port`, as an upstream node key.
    pub fn node(&self) -> String {
        self.addr.to_string()
    }

    /// Its name (the body of its answers).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the probe path answers from now on.
    pub fn set_probe_status(&self, status: u16) {
        self.state.probe_status.store(status, Ordering::SeqCst);
    }

    /// What proxied requests get from now on; 0 for 200.
    pub fn set_fail_status(&self, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
    }

    /// Proxied requests received (probe path and `/slow` aside).
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Probes received.
    pub fn probes(&self) -> usize {
        self.state.probes.load(Ordering::SeqCst)
    }

    /// Requests below `/slow` received so far (answered or waiting).
    pub fn slow_arrived(&self) -> usize {
        self.state.slow_arrived.load(Ordering::SeqCst)
    }

    /// Lets `n` waiting (or future) `/slow` requests answer.
    pub fn release_slow(&self, n: usize) {
        self.state.slow_gate.add_permits(n);
    }

    /// Closes the listener and all connections: connecting is refused from now on.
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().expect("lock").take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        self.stop();
        let listener = TcpListener::bind(self.addr).await.expect("rebind backend");
        let (tls, name, state) = (self.tls.clone(), self.name.clone(), self.state.clone());
        let task = tokio::spawn(accept(listener, tls, name, state));
        *self.task.lock().expect("lock") = Some(task);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections; aborting this task drops the listener and every connection with it.
async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, name: String, state: Arc<State>) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (name, state, tls) = (name.clone(), state.clone(), tls.clone());
        let service = service_fn(move |req| answer(req, name.clone(), state.clone()));
        let http = hyper::server::conn::http1::Builder::new();
        conns.spawn(async move {
            let _ = match tls {
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                    Err(_) => return,
                },
                None => http.serve_connection(TokioIo::new(stream), service).await,
            };
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn answer(
    req: http::Request<Incoming>,
    name: String,
    state: Arc<State>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let status = if path == "/status" {
        state.probes.fetch_add(1, Ordering::SeqCst);
        state.probe_status.load(Ordering::SeqCst)
    } else if path.starts_with("/slow") {
        state.slow_arrived.fetch_add(1, Ordering::SeqCst);
        if let Ok(permit) = state.slow_gate.acquire().await {
            permit.forget();
        }
        200
    } else {
        state.hits.fetch_add(1, Ordering::SeqCst);
        match state.fail_status.load(Ordering::SeqCst) {
            0 => 200,
            status => status,
        }
    };
    let mut resp = http::Response::new(Full::new(Bytes::from(name)));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    Ok(resp)
}
