//! Real Redis servers for tests: one server ([`RedisServer`], optionally with a password or TLS),
//! a cluster of masters ([`RedisCluster`]), or a master, a replica and a sentinel
//! ([`RedisSentinel`]).
//!
//! Each server runs Debian's `redis-server` (7.0) on free loopback ports with its files in a
//! temporary folder and no persistence. As for etcd, the process is started through a tiny `sh`
//! watchdog that holds a pipe from the test process: when the test process goes away for any
//! reason the pipe closes and the watchdog stops Redis. Signals go to the process id the
//! watchdog reports, never to a process found by name.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::tls::TestCerts;

/// How long a server may take to answer `PING`, and a cluster to report `cluster_state:ok`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs redis-server in the background and prints its pid; stops it when a line arrives on
/// stdin or stdin closes.
const WATCHDOG: &str = r#"log="$1"; shift
redis-server "$@" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read -r command
kill -TERM "$pid" 2>/dev/null
wait "$pid""#;

/// One `redis-server` on `127.0.0.1`. Dropping it kills the process and removes its folder.
pub struct RedisServer {
    port: u16,
    /// The TLS port when started with [`RedisServer::start_tls`].
    tls_port: Option<u16>,
    password: Option<String>,
    dir: PathBuf,
    /// A configuration file, passed first (a sentinel needs one it can rewrite).
    config_file: Option<PathBuf>,
    args: Vec<String>,
    process: Option<Running>,
    _tmp: Option<tempfile::TempDir>,
}

struct Running {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

impl RedisServer {
    /// Starts a server without password and waits until it answers `PING`.
    ///
    /// Panics with a clear message when `redis-server` is not installed or does not start.
    pub fn start() -> RedisServer {
        RedisServer::start_inner(&[], None, None)
    }

    /// Starts a server that requires `password` (`--requirepass`) for the `default` user.
    pub fn start_with_password(password: &str) -> RedisServer {
        RedisServer::start_inner(&["--requirepass", password], Some(password), None)
    }

    /// Starts a server with extra command-line flags (e.g. `["--user", "..."]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        RedisServer::start_inner(extra, None, None)
    }

    /// Starts a server that also serves TLS (certificate of `certs` for `127.0.0.1`, no client
    /// certificate required) on [`RedisServer::tls_port`]; the plain port stays open.
    pub fn start_tls(certs: &TestCerts) -> RedisServer {
        RedisServer::start_inner(&[], None, Some(certs))
    }

    fn start_inner(extra: &[&str], password: Option<&str>, tls: Option<&TestCerts>) -> RedisServer {
        require_redis();
        let mut last_log = String::new();
        // A port picked by `free_port` can be taken before Redis binds it; try again then.
        for _ in 0..3 {
            let tmp = tempfile::tempdir().expect("create a temporary folder for redis");
            let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            let tls_port = tls.map(|certs| {
                let port = free_port();
                args.extend([
                    "--tls-port".to_string(),
                    port.to_string(),
                    "--tls-cert-file".to_string(),
                    certs.server_cert.display().to_string(),
                    "--tls-key-file".to_string(),
                    certs.server_key.display().to_string(),
                    "--tls-ca-cert-file".to_string(),
                    certs.ca.display().to_string(),
                    "--tls-auth-clients".to_string(),
                    "no".to_string(),
                ]);
                port
            });
            let mut server = RedisServer::new(free_port(), tmp.path(), args);
            server.tls_port = tls_port;
            server.password = password.map(str::to_string);
            server._tmp = Some(tmp);
            server.spawn();
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("redis-server did not start after 3 attempts; last log:\n{last_log}");
    }

    fn new(port: u16, dir: &Path, args: Vec<String>) -> RedisServer {
        RedisServer {
            port,
            tls_port: None,
            password: None,
            dir: dir.to_path_buf(),
            config_file: None,
            args,
            process: None,
            _tmp: None,
        }
    }

    /// The plain TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, for a server started with [`RedisServer::start_tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid)
    }

    /// What Redis wrote to its log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("redis-{}.log", self.port))
    }

    /// Runs `redis-cli` against this server (with its password) and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-p").arg(self.port.to_string());
        if let Some(password) = &self.password {
            cmd.env("REDISCLI_AUTH", password);
        }
        cmd.args(args).output().expect("run redis-cli")
    }

    /// Runs `redis-cli` and returns its trimmed stdout, panicking when it fails.
    pub fn cli_text(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `redis-cli`; its trimmed stdout when it succeeded without an error reply, `None`
    /// otherwise (for polling a server whose state is changing).
    pub fn cli_try(&self, args: &[&str]) -> Option<String> {
        let out = self.cli(args);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let refused = ["ERR", "NOGOODSLAVE", "INPROG", "LOADING", "(error)"]
            .iter()
            .any(|e| text.starts_with(e));
        (out.status.success() && !refused).then_some(text)
    }

    /// Stops Redis with `SIGTERM` and waits until it is gone. No-op when not running.
    pub fn stop(&mut self) {
        if let Some(mut running) = self.process.take() {
            if let Some(mut stdin) = running.stdin.take() {
                let _ = stdin.write_all(b"stop\n");
            }
            let _ = running.watchdog.wait();
        }
    }

    /// Kills Redis with `SIGKILL` (a crash) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(running) = &self.process {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(running.pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        self.stop();
    }

    /// Starts Redis again on the same ports (with an empty dataset: nothing is persisted) and
    /// waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        if let Err(log) = self.wait_ready() {
            panic!(
                "redis-server on port {} did not restart; log:\n{log}",
                self.port
            );
        }
    }

    fn spawn(&mut self) {
        let mut args: Vec<String> = self
            .config_file
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        args.extend([
            "--port".to_string(),
            self.port.to_string(),
            "--bind".to_string(),
            "127.0.0.1".to_string(),
            "--dir".to_string(),
            self.dir.display().to_string(),
            "--save".to_string(),
            String::new(),
            "--appendonly".to_string(),
            "no".to_string(),
            "--daemonize".to_string(),
            "no".to_string(),
        ]);
        args.extend(self.args.iter().cloned());
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("redis-watchdog")
            .arg(self.log_path())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh to run redis-server");
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(out) = watchdog.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let pid = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("redis watchdog reported no pid: {line:?}"));
        self.process = Some(Running {
            watchdog,
            stdin,
            pid,
        });
    }

    /// Whether the server answers `PING` (`-NOAUTH` counts: it is up).
    pub fn answers(&self) -> bool {
        ping(self.port)
    }

    /// Waits until the server answers `PING`; on failure kills it and returns the log.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.answers() {
                return Ok(());
            }
            if !self.pid().is_some_and(process_alive) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log();
        self.kill();
        Err(log)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of `redis-server --cluster-enabled yes` masters on loopback, slots spread evenly
/// by `redis-cli --cluster create`.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    _tmp: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts `masters` (at least 3) masters without replicas and waits until every node
    /// reports `cluster_state:ok`.
    pub fn start(masters: usize) -> RedisCluster {
        require_redis();
        let tmp = tempfile::tempdir().expect("create a temporary folder for the redis cluster");
        let mut nodes: Vec<RedisServer> = (0..masters)
            .map(|i| {
                let dir = tmp.path().join(format!("n{i}"));
                std::fs::create_dir_all(&dir).expect("node folder");
                let args = vec![
                    "--cluster-enabled".to_string(),
                    "yes".to_string(),
                    "--cluster-port".to_string(),
                    free_port().to_string(),
                    "--cluster-config-file".to_string(),
                    dir.join("nodes.conf").display().to_string(),
                    "--cluster-node-timeout".to_string(),
                    "5000".to_string(),
                ];
                RedisServer::new(free_port(), &dir, args)
            })
            .collect();
        for node in &mut nodes {
            node.spawn();
            if let Err(log) = node.wait_ready() {
                panic!("redis cluster node did not start; log:\n{log}");
            }
        }
        let addrs: Vec<String> = nodes.iter().map(RedisServer::addr).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes, _tmp: tmp };
        let deadline = Instant::now() + READY_TIMEOUT;
        while !cluster.nodes.iter().all(|n| {
            n.cli_text(&["cluster", "info"])
                .contains("cluster_state:ok")
        }) {
            assert!(Instant::now() < deadline, "redis cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `127.0.0.1:<port>` of every node, in node order.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// Node `i` (0-based).
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// Node `i` (0-based), to stop or kill it.
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// The index of the node serving `key`'s slot, as `CLUSTER KEYSLOT` and `CLUSTER SLOTS`
    /// report it.
    pub fn node_of(&self, key: &str) -> usize {
        let slot: u16 = self.nodes[0]
            .cli_text(&["cluster", "keyslot", key])
            .parse()
            .expect("keyslot");
        self.nodes
            .iter()
            .position(|n| {
                let myself = n.cli_text(&["cluster", "myid"]);
                n.cli_text(&["cluster", "nodes"]).lines().any(|line| {
                    line.starts_with(&myself) && line.split(' ').skip(8).any(|r| covers(r, slot))
                })
            })
            .expect("a node serves the slot")
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// A master, one replica of it, and one sentinel monitoring the master as `mymaster`
/// (quorum 1), each a [`RedisServer`].
pub struct RedisSentinel {
    /// The master at start (a replica after [`RedisSentinel::failover`]).
    pub first: RedisServer,
    /// The replica at start (the master after [`RedisSentinel::failover`]).
    pub second: RedisServer,
    /// The sentinel.
    pub sentinel: RedisServer,
    _tmp: tempfile::TempDir,
}

/// The master name the sentinel monitors.
pub const SENTINEL_MASTER: &str = "mymaster";

impl RedisSentinel {
    /// Starts the three servers; `password` protects the master and the replica,
    /// `sentinel_password` the sentinel. Waits until the sentinel knows the replica.
    pub fn start(password: Option<&str>, sentinel_password: Option<&str>) -> RedisSentinel {
        require_redis();
        let tmp = tempfile::tempdir().expect("create a temporary folder for redis sentinel");
        let data_args = |replica_of: Option<u16>| {
            let mut args = Vec::new();
            if let Some(pw) = password {
                args.extend(["--requirepass", pw, "--masterauth", pw].map(str::to_string));
            }
            if let Some(port) = replica_of {
                args.extend([
                    "--replicaof".to_string(),
                    "127.0.0.1".to_string(),
                    port.to_string(),
                ]);
            }
            args
        };
        let start = |name: &str, args: Vec<String>, config: Option<PathBuf>, pw: Option<&str>| {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).expect("server folder");
            let mut server = RedisServer::new(free_port(), &dir, args);
            server.config_file = config;
            server.password = pw.map(str::to_string);
            server.spawn();
            if let Err(log) = server.wait_ready() {
                panic!("redis {name} did not start; log:\n{log}");
            }
            server
        };
        let first = start("first", data_args(None), None, password);
        let second = start("second", data_args(Some(first.port)), None, password);
        let config = tmp.path().join("sentinel.conf");
        let mut text = format!(
            "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
             sentinel failover-timeout {SENTINEL_MASTER} 10000\n",
            first.port
        );
        if let Some(pw) = password {
            text.push_str(&format!("sentinel auth-pass {SENTINEL_MASTER} {pw}\n"));
        }
        if let Some(pw) = sentinel_password {
            text.push_str(&format!("requirepass {pw}\n"));
        }
        std::fs::write(&config, text).expect("write sentinel.conf");
        let sentinel = start(
            "sentinel",
            vec!["--sentinel".to_string()],
            Some(config),
            sentinel_password,
        );
        let group = RedisSentinel {
            first,
            second,
            sentinel,
            _tmp: tmp,
        };
        let replica = group.second.port.to_string();
        group.wait("the sentinel to know the replica", || {
            let out = group
                .sentinel
                .cli(&["sentinel", "replicas", SENTINEL_MASTER]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains(&replica) && !text.contains("s_down") && !text.contains("disconnected")
        });
        group
    }

    fn wait(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `[{host, port}]` of the sentinel, as `redis_sentinels` takes it.
    pub fn sentinels(&self) -> serde_json::Value {
        serde_json::json!([{"host": "127.0.0.1", "port": self.sentinel.port}])
    }

    /// The master's port as the sentinel reports it now (0 while it cannot say).
    pub fn master_port(&self) -> u16 {
        let out = self
            .sentinel
            .cli_try(&["sentinel", "get-master-addr-by-name", SENTINEL_MASTER])
            .unwrap_or_default();
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Makes the replica the master (`SENTINEL FAILOVER`) and waits until the sentinel reports
    /// it and it accepts writes. Every step is polled: servers answer errors while roles change.
    pub fn failover(&self) {
        let target = self.second.port;
        let current = self.master_port();
        let new = if current == target {
            self.first.port
        } else {
            target
        };
        let replication = |node: &RedisServer, want: &str| {
            node.cli_try(&["info", "replication"])
                .is_some_and(|t| t.contains(want))
        };
        let (node, old) = if new == self.first.port {
            (&self.first, &self.second)
        } else {
            (&self.second, &self.first)
        };
        // Wait for the replica to be in sync, or the sentinel refuses to promote it.
        self.wait("a replica in sync", || {
            replication(node, "master_link_status:up")
        });
        // The sentinel may not count the replica as good yet (NOGOODSLAVE): ask again.
        self.wait("the failover to start", || {
            self.master_port() == new
                || self
                    .sentinel
                    .cli_try(&["sentinel", "failover", SENTINEL_MASTER])
                    .is_some()
        });
        self.wait("the failover", || self.master_port() == new);
        self.wait("the new master", || replication(node, "role:master"));
        self.wait("the old master to become a replica", || {
            replication(old, "role:slave")
        });
    }
}

/// Whether a `CLUSTER NODES` slot field (`5`, `0-5460`) covers `slot`.
fn covers(field: &str, slot: u16) -> bool {
    let (a, b) = field.split_once('-').unwrap_or((field, field));
    match (a.parse::<u16>(), b.parse::<u16>()) {
        (Ok(a), Ok(b)) => (a..=b).contains(&slot),
        _ => false,
    }
}

/// Panics with instructions when `redis-server` is not on `PATH`.
fn require_redis() {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    });
    assert!(
        found,
        "`redis-server` is not on PATH: run the project's test script, which installs Debian's \
         redis-server package (or `apt-get install -y redis-server`)"
    );
}

/// Whether something on `127.0.0.1:port` answers an inline `PING` like Redis does.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

/// Whether `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
