//! Real etcd servers for tests: one member ([`EtcdServer`]) or a cluster ([`EtcdCluster`]).
//!
//! Each member runs the real `etcd` binary (Debian's `etcd-server`, 3.4) on free loopback ports
//! with its data in a temporary folder. The process is started through a tiny `sh` watchdog that
//! holds a pipe from the test process: when the test process goes away for any reason (even a
//! `SIGKILL`, or a `static` handle that is never dropped) the pipe closes and the watchdog stops
//! etcd, so no test leaves an etcd behind. Signals go to the etcd process id the watchdog reports,
//! never to a process found by name.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::tls::TestCerts;

mod cluster;
pub use cluster::EtcdCluster;

/// How long a member may take to answer `GET /health` after its start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs etcd in the background and prints its pid. When a line arrives on stdin it stops etcd;
/// when stdin closes without the line `keep` (the handle was dropped or the test process died),
/// it also removes the member's files, which a `static` handle would otherwise leave behind.
const WATCHDOG: &str = r#"log="$1"; files="$2"; shift 2
etcd "$@" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read -r command
kill -TERM "$pid" 2>/dev/null
wait "$pid"
[ "$command" = keep ] || rm -rf "$files""#;

/// One etcd member on `127.0.0.1`. Dropping it kills the process and removes its data.
pub struct EtcdServer {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// What the watchdog removes once the member is gone for good.
    files: PathBuf,
    /// Flags after the standard ones (cluster membership, test-specific options).
    extra_args: Vec<String>,
    /// Certificates when clients must use TLS (with client certificates).
    tls: Option<TlsPaths>,
    process: Option<Running>,
    /// Owns the folder of a stand-alone server; cluster members live in the cluster's folder.
    _tmp: Option<tempfile::TempDir>,
}

#[derive(Clone)]
struct TlsPaths {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

struct Running {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

impl EtcdServer {
    /// Starts a one-member cluster and waits until it has a leader and serves requests.
    ///
    /// Panics with a clear message when `etcd` is not installed or does not become ready.
    pub fn start() -> EtcdServer {
        EtcdServer::start_with(&[])
    }

    /// Like [`EtcdServer::start`], with extra command-line flags (e.g. `--auth-token-ttl=1`).
    pub fn start_with(extra: &[&str]) -> EtcdServer {
        EtcdServer::start_inner(extra, None)
    }

    /// Starts a member that serves clients over TLS only (`https://`) and requires a client
    /// certificate signed by the CA of `certs` (`--client-cert-auth`). Peers talk plain HTTP.
    pub fn start_tls(certs: &TestCerts) -> EtcdServer {
        let tls = TlsPaths {
            ca: certs.ca.clone(),
            server_cert: certs.server_cert.clone(),
            server_key: certs.server_key.clone(),
            client_cert: certs.client_cert.clone(),
            client_key: certs.client_key.clone(),
        };
        EtcdServer::start_inner(&[], Some(tls))
    }

    fn start_inner(extra: &[&str], tls: Option<TlsPaths>) -> EtcdServer {
        require_etcd();
        let mut last_log = String::new();
        // A port picked by `free_port` can be taken before etcd binds it; try again then.
        for _ in 0..3 {
            let tmp = tempfile::tempdir().expect("create a temporary folder for etcd");
            let (client_port, peer_port) = (free_port(), free_port());
            let peer = format!("http://127.0.0.1:{peer_port}");
            let mut args: Vec<String> = vec![
                format!("--initial-cluster=n1={peer}"),
                "--initial-cluster-state=new".into(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut server = EtcdServer::new("n1", client_port, peer_port, tmp.path(), args);
            server.files = tmp.path().to_path_buf();
            server._tmp = Some(tmp);
            server.tls = tls.clone();
            server.spawn();
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("etcd did not start after 3 attempts; last log:\n{last_log}");
    }

    fn new(name: &str, client: u16, peer: u16, dir: &Path, extra: Vec<String>) -> EtcdServer {
        EtcdServer {
            name: name.to_string(),
            client_port: client,
            peer_port: peer,
            data_dir: dir.join(format!("{name}.etcd")),
            log_path: dir.join(format!("{name}.log")),
            files: dir.join(format!("{name}.etcd")),
            extra_args: extra,
            tls: None,
            process: None,
            _tmp: None,
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:41234` (`https://` for a TLS member).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The client port on 127.0.0.1.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The member name (`n1`, `n2`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peer URL other members reach this one at.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// The data folder (kept across [`EtcdServer::restart`]).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The etcd process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// Whether the etcd process was started and has not been stopped or killed.
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(|p| process_alive(p.pid))
    }

    /// What etcd wrote to its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills etcd with `SIGKILL` (a crash) and waits until it is gone. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(running) = &self.process {
            signal(running.pid, "-KILL");
        }
        self.reap(true);
    }

    /// Stops etcd with `SIGTERM` (a clean shutdown) and waits until it is gone.
    pub fn stop(&mut self) {
        self.reap(true);
    }

    /// Starts etcd again on the same ports with the same data, and waits until it is ready.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Err(log) = self.wait_ready() {
            panic!("etcd {} did not restart; log:\n{log}", self.name);
        }
    }

    /// Runs `etcdctl` (API v3) against this member with `args`; returns its output.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("etcdctl");
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--cacert={}", tls.ca.display()))
                .arg(format!("--cert={}", tls.client_cert.display()))
                .arg(format!("--key={}", tls.client_key.display()));
        }
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(args)
            .output()
            .expect("run etcdctl (package etcd-client)")
    }

    /// Turns on authentication: creates user `root` with `password` and the `root` role, then
    /// `auth enable`. Afterwards every request needs credentials.
    pub fn enable_auth(&self, password: &str) {
        let user = format!("root:{password}");
        for args in [
            vec!["user", "add", user.as_str()],
            vec!["role", "add", "root"],
            vec!["user", "grant-role", "root", "root"],
            vec!["auth", "enable"],
        ] {
            let out = self.etcdctl(&args);
            assert!(
                out.status.success(),
                "etcdctl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Compacts the history before `revision` (`etcdctl compact`). Use `user` (`name:password`)
    /// when auth is enabled.
    pub fn compact(&self, revision: i64, user: Option<&str>) {
        let rev = revision.to_string();
        let mut args = vec!["compact", rev.as_str()];
        let user_flag = user.map(|u| format!("--user={u}"));
        if let Some(flag) = &user_flag {
            args.push(flag);
        }
        let out = self.etcdctl(&args);
        assert!(
            out.status.success(),
            "etcdctl compact {revision} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = self.peer_url();
        let mut args = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            "--initial-cluster-token=portico-test".to_string(),
        ];
        if let Some(tls) = &self.tls {
            args.extend([
                format!("--cert-file={}", tls.server_cert.display()),
                format!("--key-file={}", tls.server_key.display()),
                format!("--trusted-ca-file={}", tls.ca.display()),
                "--client-cert-auth".to_string(),
            ]);
        }
        args.extend(self.extra_args.iter().cloned());
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("etcd-watchdog")
            .arg(&self.log_path)
            .arg(&self.files)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh to run etcd");
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(out) = watchdog.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let pid = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("etcd watchdog reported no pid: {line:?}"));
        self.process = Some(Running {
            watchdog,
            stdin,
            pid,
        });
    }

    /// Tells the watchdog to stop etcd (with SIGTERM) and waits for both processes; `keep`
    /// keeps the data for a restart.
    fn reap(&mut self, keep: bool) {
        if let Some(mut running) = self.process.take() {
            if let Some(mut stdin) = running.stdin.take() {
                let _ = stdin.write_all(if keep { b"keep\n" } else { b"done\n" });
            }
            let _ = running.watchdog.wait();
        }
    }

    /// Waits until `/health` reports a leader; on failure returns the log.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.healthy() {
                return Ok(());
            }
            if !self.is_running() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let log = self.log();
        self.kill();
        Err(log)
    }
}

impl EtcdServer {
    /// Whether the member answers `/health` with a leader.
    fn healthy(&self) -> bool {
        if self.tls.is_none() {
            return http_get(self.client_port, "/health").is_some_and(|b| b.contains("\"true\""));
        }
        // Over TLS, let etcdctl do the handshake.
        self.is_running() && self.etcdctl(&["endpoint", "health"]).status.success()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(running) = &self.process {
            signal(running.pid, "-KILL");
        }
        self.reap(false);
    }
}

/// Panics with instructions when `etcd` is not on `PATH`.
pub(crate) fn require_etcd() {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("etcd").is_file()));
    assert!(
        found,
        "`etcd` is not on PATH: run the project's test script, which installs Debian's \
         etcd-server and etcd-client packages (or `apt-get install -y etcd-server etcd-client`)"
    );
}

/// Sends `sig` (e.g. `-KILL`) to `pid` with the `kill` program.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "123 (etcd) S ...".
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1; returns the body on a 200 answer.
pub(crate) fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.") && head.get(8..13) == Some(" 200 ")).then(|| body.to_string())
}
