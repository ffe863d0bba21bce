//! The roles of the binary: `up` (all in one), `cp` (control plane), `dp` (data-plane node).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_control::manage::{register_control_plane, NodeThresholds, SystemStoreInfo};
use portico_control::{AdminKey, ManageApi, Role};
use portico_gateway::access_log::{AccessLog, AccessLogConfig, Destination};
use portico_gateway::metrics;
use portico_gateway::node::NodeSettings;
use portico_gateway::registration::{self, Drain, RegistrationSettings};
use portico_gateway::status::Readiness;
use portico_gateway::{ClientLimits, Gateway};
use portico_model::{Keyring, Registry};
use portico_snapshot::Snapshot;
use portico_store::embedded::EmbeddedStore;
use portico_store::etcd::{EtcdConfig, EtcdStore, EtcdTls};
use portico_store::{SharedStore, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::Command;
use crate::secrets;
use crate::settings::{AccessLogTarget, Settings};

pub async fn run(command: Command) -> Result<(), String> {
    let (settings, role) = match command {
        Command::Up(args) => (Settings::for_up(&args), Mode::Up),
        Command::Cp(args) => (Settings::for_cp(&args), Mode::Cp),
        Command::Dp(args) => (Settings::for_cp(&args), Mode::Dp),
    };
    let settings = settings.map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&settings.data).map_err(|e| {
        format!(
            "cannot create the data folder {}: {e}",
            settings.data.display()
        )
    })?;
    if role == Mode::Dp && settings.etcd.endpoints.is_empty() {
        return Err("portico dp follows a cluster's etcd: give --etcd-endpoints".into());
    }
    let store = open_store(&settings, role != Mode::Up, role == Mode::Dp).await?;
    let plugins = Arc::new(portico_plugins::registry());
    let keyring = Arc::new(keyring(&settings)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut out = Banner::new(role, &settings);
    let mut tasks = Vec::new();
    // Tasks that run until the process ends; aborted at shutdown.
    let mut background = Vec::new();
    // Flushed once the listeners have drained.
    let mut proxy_log = None;

    if role != Mode::Dp {
        let (api, key_line) =
            admin_api(&settings, store.clone(), plugins.clone(), keyring.clone())?;
        api.ensure_default_cluster(&settings.cluster_prefix)
            .await
            .map_err(|e| format!("cannot create the default cluster: {e}"))?;
        let listener = bind(&settings.admin_addr, "admin").await?;
        let admin_addr = local(&listener)?;
        out.line(&key_line);
        out.line(&format!("admin API: http://{admin_addr}/apisix/admin"));
        out.line(&format!("management API: http://{admin_addr}/api/v1"));
        let id = format!("{}-{}", hostname(), std::process::id());
        let record = serde_json::json!({
            "id": id, "hostname": hostname(), "admin_address": admin_addr.to_string(),
            "version": env!("CARGO_PKG_VERSION"),
        });
        background.push(register_control_plane(store.clone(), id, record));
        tasks.push(tokio::spawn(portico_control::server::serve(
            listener,
            api,
            stopped(stop_rx.clone()),
        )));
    }
    if role != Mode::Cp {
        let access_log = access_log(&settings)?;
        if let Some(signals) = access_log.reopen_on_sigusr1() {
            background.push(signals);
        }
        out.line(&format!(
            "access log: {}",
            match &settings.access_log {
                AccessLogTarget::Off => "off".to_string(),
                AccessLogTarget::Stdout => "stdout".to_string(),
                AccessLogTarget::File(path) => path.display().to_string(),
            }
        ));
        proxy_log = Some(access_log.clone());
        let gateway =
            Gateway::with_access_log(Snapshot::empty(), ClientLimits::default(), access_log);
        let (applied_tx, applied_rx) = watch::channel(0);
        let node = NodeSettings {
            cluster_prefix: settings.cluster_prefix.clone(),
            last_known_good: Some(settings.data.join("last-known-good.json")),
            debounce: Duration::from_millis(5),
        };
        tokio::spawn(portico_gateway::node::follow(
            gateway.clone(),
            store.clone(),
            node,
            plugins.clone(),
            keyring.clone(),
            applied_tx,
        ));
        let mut addresses = Vec::new();
        for (addr, tls, what) in [
            (&settings.proxy_addr, false, "proxy"),
            (&settings.proxy_tls_addr, true, "proxy (TLS)"),
        ] {
            let listener = bind(addr, what).await?;
            let scheme = if tls { "https" } else { "http" };
            let bound = local(&listener)?;
            addresses.push(format!("{scheme}://{bound}"));
            out.line(&format!("{what}: {scheme}://{bound}"));
            tasks.push(tokio::spawn(portico_gateway::server::serve(
                gateway.clone(),
                listener,
                tls,
                stopped(stop_rx.clone()),
            )));
        }
        let metrics = bind(&settings.metrics_addr, "metrics").await?;
        out.line(&format!(
            "metrics: http://{}{}",
            local(&metrics)?,
            metrics::server::EXPORT_URI
        ));
        let exporter = metrics::server::Exporter {
            gateway: gateway.clone(),
            store: Some(store.clone()),
            hostname: hostname(),
        };
        tasks.push(tokio::spawn(metrics::server::serve(
            metrics,
            exporter,
            stopped(stop_rx.clone()),
        )));
        let drain = Drain::default();
        let status = bind(&settings.status_addr, "status").await?;
        out.line(&format!("status: http://{}/status/ready", local(&status)?));
        let readiness = Readiness {
            applied: applied_rx.clone(),
            drain: drain.clone(),
        };
        tasks.push(tokio::spawn(portico_gateway::status::serve(
            status,
            readiness,
            stopped(stop_rx.clone()),
        )));
        let (node_id, _) = secrets::load_or_generate(&settings.data, "node.id", None)?;
        let node_id = format!("{}-{}", hostname(), &node_id[..12.min(node_id.len())]);
        out.line(&format!("node id: {node_id}"));
        let registration = RegistrationSettings {
            cluster_prefix: settings.cluster_prefix.clone(),
            id: node_id,
            hostname: hostname(),
            addresses,
            heartbeat: Duration::from_secs(settings.heartbeat),
            lease_ttl: Duration::from_secs(settings.node_thresholds.2),
        };
        background.push(registration::spawn(
            store.clone(),
            registration,
            applied_rx,
            drain,
        ));
    }
    out.finish();

    shutdown_signal().await;
    let _ = stop_tx.send(true);
    for task in background {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    if let Some(log) = proxy_log {
        let _ = tokio::time::timeout(Duration::from_secs(5), log.flush()).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Which parts of Portico this process runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Up,
    Cp,
    Dp,
}

/// What the process prints on start: one line per fact, stable for scripts and tests.
struct Banner {
    lines: Vec<String>,
}

impl Banner {
    fn new(role: Mode, settings: &Settings) -> Banner {
        let name = match role {
            Mode::Up => "up",
            Mode::Cp => "cp",
            Mode::Dp => "dp",
        };
        Banner {
            lines: vec![
                format!("Portico {} ({name})", env!("CARGO_PKG_VERSION")),
                format!("data folder: {}", settings.data.display()),
                format!("cluster prefix: {}", settings.cluster_prefix),
            ],
        }
    }

    fn line(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }

    fn finish(self) {
        let mut out = std::io::stdout().lock();
        for line in self.lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
}

fn admin_api(
    settings: &Settings,
    store: SharedStore,
    plugins: Arc<Registry>,
    keyring: Arc<Keyring>,
) -> Result<(Arc<ManageApi>, String), String> {
    let (admin_key, generated) =
        secrets::load_or_generate(&settings.data, "admin.key", settings.admin_key.as_deref())?;
    let key_line = if settings.admin_key.is_some() {
        "admin key: from the settings".to_string()
    } else {
        let how = if generated {
            "generated; kept in"
        } else {
            "from"
        };
        format!(
            "admin key: {admin_key} ({how} {})",
            settings.data.join("admin.key").display()
        )
    };
    let mut keys = vec![AdminKey {
        key: admin_key,
        role: Role::Admin,
    }];
    if let Some(viewer) = &settings.viewer_key {
        keys.push(AdminKey {
            key: viewer.clone(),
            role: Role::Viewer,
        });
    }
    let info = SystemStoreInfo {
        etcd_endpoints: settings.etcd.endpoints.clone(),
    };
    let (lost, offline, remove) = settings.node_thresholds;
    let thresholds = NodeThresholds {
        lost_after: Duration::from_secs(lost),
        offline_after: Duration::from_secs(offline),
        remove_after: Duration::from_secs(remove),
    };
    let api = ManageApi::new(store, info, plugins, keyring, keys, thresholds);
    Ok((Arc::new(api), key_line))
}

/// The proxy's access log as the settings say.
fn access_log(settings: &Settings) -> Result<AccessLog, String> {
    let destination = match &settings.access_log {
        AccessLogTarget::Off => Destination::Off,
        AccessLogTarget::Stdout => Destination::Stdout,
        AccessLogTarget::File(path) => Destination::File(path.clone()),
    };
    let config = AccessLogConfig::new(destination, settings.access_log_format);
    AccessLog::start(config).map_err(|e| match &settings.access_log {
        AccessLogTarget::File(path) => {
            format!("cannot open the access log {}: {e}", path.display())
        }
        _ => format!("cannot start the access log: {e}"),
    })
}

/// The keyring from the settings, else the one generated into the data folder.
fn keyring(settings: &Settings) -> Result<Keyring, String> {
    let keys = if settings.keyring.is_empty() {
        vec![secrets::load_or_generate(&settings.data, "keyring", None)?.0]
    } else {
        settings.keyring.clone()
    };
    Keyring::new(keys).map_err(|e| format!("keyring: {e}"))
}

/// The store: etcd when endpoints are configured (`lazy`: start even while it is unreachable),
/// else the embedded store in the data folder.
async fn open_store(
    settings: &Settings,
    may_use_etcd: bool,
    lazy: bool,
) -> Result<SharedStore, String> {
    if may_use_etcd && !settings.etcd.endpoints.is_empty() {
        let etcd = &settings.etcd;
        let tls = match (&etcd.ca, &etcd.cert, &etcd.key) {
            (None, None, None) => None,
            (ca, cert, key) => Some(
                EtcdTls::from_files(ca.as_deref(), cert.as_deref(), key.as_deref())
                    .map_err(|e| format!("etcd TLS material: {e}"))?,
            ),
        };
        let mut config = EtcdConfig::new(etcd.endpoints.clone());
        config.user = etcd.user.clone();
        config.password = etcd.password.clone();
        config.tls = tls;
        let store = match EtcdStore::connect(config.clone()).await {
            Ok(store) => store,
            // A data-plane node starts anyway and serves its last-known-good config until etcd
            // answers; a control plane cannot work without its store.
            Err(StoreError::Unavailable(e)) if lazy => {
                tracing::warn!(
                    "etcd is unreachable ({e}); starting from the last known good config"
                );
                EtcdStore::lazy(config).map_err(|e| format!("etcd: {e}"))?
            }
            Err(e) => return Err(format!("etcd {}: {e}", etcd.endpoints.join(","))),
        };
        return Ok(Arc::new(store));
    }
    let path = settings.data.join("store.db");
    let store = EmbeddedStore::open(&path)
        .map_err(|e| format!("cannot open the store {}: {e}", path.display()))?;
    Ok(Arc::new(store))
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

fn local(listener: &TcpListener) -> Result<SocketAddr, String> {
    listener.local_addr().map_err(|e| e.to_string())
}

/// This machine's host name (`HOSTNAME`, else `/etc/hostname`, else `localhost`).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
