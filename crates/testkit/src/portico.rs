//! The real `portico` binary, started in a temporary data folder on ephemeral ports.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::http::{self, Response};

/// A running `portico` process (`up`, `cp` or `dp`). Killed when dropped.
pub struct Portico {
    child: Option<Child>,
    binary: PathBuf,
    args: Vec<String>,
    data: PathBuf,
    envs: Vec<(String, String)>,
    /// Every line the process printed on stdout.
    pub stdout: Vec<String>,
    pub admin: SocketAddr,
    /// The HTTP proxy listener (for `up` and `dp`).
    pub proxy: Option<SocketAddr>,
    /// The HTTPS proxy listener (for `up` and `dp`).
    pub proxy_tls: Option<SocketAddr>,
    /// The status listener (`/status/ready`, for `up` and `dp`).
    pub status: Option<SocketAddr>,
    /// The data-plane node's id (for `up` and `dp`).
    pub node_id: Option<String>,
    pub admin_key: String,
}

impl Portico {
    /// Starts `binary up` with its data in `data`, every listener on 127.0.0.1:0, and waits
    /// until it prints the admin address.
    pub fn up(binary: &Path, data: &Path, envs: &[(&str, &str)]) -> Portico {
        Self::start_role(binary, &["up"], data, envs)
    }

    /// Starts `binary <args>` (e.g. `["dp", "--etcd-endpoints", ep]`) like [`Portico::up`].
    pub fn start_role(binary: &Path, args: &[&str], data: &Path, envs: &[(&str, &str)]) -> Portico {
        let mut p = Portico {
            child: None,
            binary: binary.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            data: data.to_path_buf(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stdout: Vec::new(),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            proxy: None,
            proxy_tls: None,
            status: None,
            node_id: None,
            admin_key: String::new(),
        };
        p.start();
        p
    }

    fn start(&mut self) {
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args)
            .env("PORTICO_DATA", &self.data)
            .env("PORTICO_ADMIN_ADDR", "127.0.0.1:0")
            .env("PORTICO_PROXY_ADDR", "127.0.0.1:0")
            .env("PORTICO_PROXY_TLS_ADDR", "127.0.0.1:0")
            .env("PORTICO_METRICS_ADDR", "127.0.0.1:0")
            .env("PORTICO_PORTAL_ADDR", "127.0.0.1:0")
            .env("PORTICO_STATUS_ADDR", "127.0.0.1:0")
            .current_dir(&self.data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start portico");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        self.stdout.clear();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("portico printed its addresses within 30 s");
            self.stdout.push(line.clone());
            if let Some(key) = line.strip_prefix("admin key: ") {
                self.admin_key = key.split(' ').next().unwrap_or("").to_string();
            }
            if let Some(url) = line.strip_prefix("admin API: http://") {
                let addr = url.trim_end_matches("/apisix/admin");
                self.admin = addr.parse().expect("admin address");
            }
            if let Some(addr) = line.strip_prefix("proxy: http://") {
                self.proxy = addr.parse().ok();
            }
            if let Some(addr) = line.strip_prefix("proxy (TLS): https://") {
                self.proxy_tls = addr.parse().ok();
            }
            if let Some(url) = line.strip_prefix("status: http://") {
                self.status = url.trim_end_matches("/status/ready").parse().ok();
            }
            if let Some(id) = line.strip_prefix("node id: ") {
                self.node_id = Some(id.to_string());
            }
            if line == "ready" {
                break;
            }
        }
        if let Some((_, key)) = self.envs.iter().find(|(k, _)| k == "PORTICO_ADMIN_KEY") {
            self.admin_key = key.clone();
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok().and_then(|s| s.code())
    }

    /// Kills the process with SIGKILL (no chance to clean up).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again with the same data folder and settings.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// An Admin API call with the admin key.
    pub fn admin(&self, method: &str, path: &str, body: &str) -> Response {
        http::request(
            self.admin,
            method,
            path,
            &[("X-API-KEY", self.admin_key.as_str())],
            body.as_bytes(),
        )
        .expect("admin request")
    }
}

impl Drop for Portico {
    fn drop(&mut self) {
        self.kill9();
    }
}
