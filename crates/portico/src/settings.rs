//! Resolved settings: flag, then environment (both through clap), then `portico.yaml`, then
//! the default.

use std::path::{Path, PathBuf};

use portico_gateway::access_log::Format;
use serde::Deserialize;

use crate::cli::{CommonArgs, CpArgs};

/// What went wrong while reading the settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// `portico.yaml`. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    admin_key: Option<String>,
    viewer_key: Option<String>,
    admin_addr: Option<String>,
    proxy_addr: Option<String>,
    proxy_tls_addr: Option<String>,
    metrics_addr: Option<String>,
    portal_addr: Option<String>,
    status_addr: Option<String>,
    heartbeat: Option<u64>,
    node_lost_after: Option<u64>,
    node_offline_after: Option<u64>,
    node_remove_after: Option<u64>,
    keyring: Option<Vec<String>>,
    cluster_prefix: Option<String>,
    access_log: Option<String>,
    access_log_format: Option<String>,
    etcd: Option<EtcdFileConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EtcdFileConfig {
    endpoints: Option<Vec<String>>,
    user: Option<String>,
    password: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// Every setting, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data: PathBuf,
    pub admin_key: Option<String>,
    pub viewer_key: Option<String>,
    pub admin_addr: String,
    pub proxy_addr: String,
    pub proxy_tls_addr: String,
    pub metrics_addr: String,
    /// Reserved for the developer portal's listener (documented as such in the README); no
    /// listener opens on it in this build.
    #[allow(dead_code)]
    pub portal_addr: String,
    pub status_addr: String,
    /// Seconds between heartbeats of a data-plane node.
    pub heartbeat: u64,
    /// Node state thresholds in seconds: lost, offline, forgotten.
    pub node_thresholds: (u64, u64, u64),
    pub keyring: Vec<String>,
    /// The key prefix of the cluster served (`/portico/clusters/default`).
    pub cluster_prefix: String,
    /// Where the proxy's access log goes.
    pub access_log: AccessLogTarget,
    pub access_log_format: Format,
    pub etcd: EtcdSettings,
}

/// `access_log`: a file, standard output, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(PathBuf),
}

/// How to reach etcd; `endpoints` empty means "use the embedded store".
#[derive(Debug, Clone, Default)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Settings {
    /// Resolves the settings of `portico up`.
    pub fn for_up(args: &CommonArgs) -> Result<Settings, SettingsError> {
        Self::resolve(args, &CpArgs::default())
    }

    /// Resolves the settings of the roles that may use etcd.
    pub fn for_cp(args: &CpArgs) -> Result<Settings, SettingsError> {
        Self::resolve(&args.common, args)
    }

    fn resolve(args: &CommonArgs, store: &CpArgs) -> Result<Settings, SettingsError> {
        let file = load_file(args.config.as_deref())?;
        let pick = |flag: &Option<String>, file: &Option<String>, default: &str| {
            flag.clone()
                .or_else(|| file.clone())
                .unwrap_or_else(|| default.to_string())
        };
        let etcd_file = file.etcd.unwrap_or_default();
        let data = args
            .data
            .clone()
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from("./portico-data"));
        let access_log = match args.access_log.clone().or(file.access_log).as_deref() {
            None => AccessLogTarget::File(data.join("access.log")),
            Some("off") => AccessLogTarget::Off,
            Some("stdout") => AccessLogTarget::Stdout,
            Some("") => {
                return Err(SettingsError::Invalid(
                    "the access log must be a path, `stdout` or `off`".into(),
                ))
            }
            Some(path) => AccessLogTarget::File(PathBuf::from(path)),
        };
        let access_log_format = match args
            .access_log_format
            .clone()
            .or(file.access_log_format)
            .as_deref()
        {
            None | Some("default") => Format::Default,
            Some("json") => Format::Json,
            Some(other) => {
                return Err(SettingsError::Invalid(format!(
                    "the access log format must be `default` or `json`, got {other:?}"
                )))
            }
        };
        let settings = Settings {
            data,
            admin_key: args.admin_key.clone().or(file.admin_key),
            viewer_key: args.viewer_key.clone().or(file.viewer_key),
            admin_addr: pick(&args.admin_addr, &file.admin_addr, "127.0.0.1:9180"),
            proxy_addr: pick(&args.proxy_addr, &file.proxy_addr, "0.0.0.0:9080"),
            proxy_tls_addr: pick(&args.proxy_tls_addr, &file.proxy_tls_addr, "0.0.0.0:9443"),
            metrics_addr: pick(&args.metrics_addr, &file.metrics_addr, "127.0.0.1:9091"),
            portal_addr: pick(&args.portal_addr, &file.portal_addr, "0.0.0.0:9380"),
            status_addr: pick(&args.status_addr, &file.status_addr, "127.0.0.1:7085"),
            heartbeat: args.heartbeat.or(file.heartbeat).unwrap_or(5),
            node_thresholds: (
                args.node_lost_after.or(file.node_lost_after).unwrap_or(30),
                args.node_offline_after
                    .or(file.node_offline_after)
                    .unwrap_or(7200),
                args.node_remove_after
                    .or(file.node_remove_after)
                    .unwrap_or(604_800),
            ),
            keyring: if args.keyring.is_empty() {
                file.keyring.unwrap_or_default()
            } else {
                args.keyring.clone()
            },
            cluster_prefix: store
                .cluster_prefix
                .clone()
                .or(file.cluster_prefix)
                .unwrap_or_else(|| "/portico/clusters/default".to_string())
                .trim_end_matches('/')
                .to_string(),
            access_log,
            access_log_format,
            etcd: EtcdSettings {
                endpoints: if store.etcd_endpoints.is_empty() {
                    etcd_file.endpoints.unwrap_or_default()
                } else {
                    store.etcd_endpoints.clone()
                },
                user: store.etcd_user.clone().or(etcd_file.user),
                password: store.etcd_password.clone().or(etcd_file.password),
                ca: store.etcd_ca.clone().or(etcd_file.ca),
                cert: store.etcd_cert.clone().or(etcd_file.cert),
                key: store.etcd_key.clone().or(etcd_file.key),
            },
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        for (name, value) in [
            ("admin key", &self.admin_key),
            ("viewer key", &self.viewer_key),
        ] {
            if value.as_deref().is_some_and(str::is_empty) {
                return Err(SettingsError::Invalid(format!(
                    "the {name} must not be empty"
                )));
            }
        }
        if self.admin_key.is_some() && self.admin_key == self.viewer_key {
            return Err(SettingsError::Invalid(
                "the admin key and the viewer key must differ".into(),
            ));
        }
        if !self.cluster_prefix.starts_with('/') || self.cluster_prefix.len() < 2 {
            return Err(SettingsError::Invalid(format!(
                "the cluster prefix must start with '/' and name a folder, got {:?}",
                self.cluster_prefix
            )));
        }
        let (lost, offline, remove) = self.node_thresholds;
        if self.heartbeat == 0 || !(lost < offline && offline < remove) {
            return Err(SettingsError::Invalid(format!(
                "node timing: the heartbeat must be positive and lost ({lost} s) < offline ({offline} s) < remove ({remove} s)"
            )));
        }
        if self.keyring.iter().any(String::is_empty) {
            return Err(SettingsError::Invalid(
                "keyring entries must not be empty".into(),
            ));
        }
        Ok(())
    }
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, SettingsError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let default = PathBuf::from("portico.yaml");
            if !default.exists() {
                return Ok(FileConfig::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| SettingsError::Read {
        path: path.clone(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(&text).map_err(|e| SettingsError::Parse {
        path,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("portico.yaml");
        std::fs::write(
            &file,
            "admin_addr: 127.0.0.1:1111\nproxy_addr: 127.0.0.1:2222\n",
        )
        .unwrap();
        let args = CommonArgs {
            config: Some(file),
            admin_addr: Some("127.0.0.1:3333".into()),
            ..Default::default()
        };
        let s = Settings::for_up(&args).unwrap();
        assert_eq!(s.admin_addr, "127.0.0.1:3333");
        assert_eq!(s.proxy_addr, "127.0.0.1:2222");
        assert_eq!(s.metrics_addr, "127.0.0.1:9091");
        assert_eq!(s.data, PathBuf::from("./portico-data"));
    }

    #[test]
    fn the_access_log_defaults_to_the_data_folder() {
        let args = CommonArgs {
            data: Some("/tmp/pd".into()),
            ..Default::default()
        };
        let s = Settings::for_up(&args).unwrap();
        assert_eq!(
            s.access_log,
            AccessLogTarget::File(PathBuf::from("/tmp/pd/access.log"))
        );
        assert_eq!(s.access_log_format, Format::Default);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("portico.yaml");
        std::fs::write(&file, "access_log: stdout\naccess_log_format: json\n").unwrap();
        let args = CommonArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let s = Settings::for_up(&args).unwrap();
        assert_eq!(s.access_log, AccessLogTarget::Stdout);
        assert_eq!(s.access_log_format, Format::Json);
        let args = CommonArgs {
            config: Some(file),
            access_log: Some("off".into()),
            access_log_format: Some("xml".into()),
            ..Default::default()
        };
        let err = Settings::for_up(&args).unwrap_err().to_string();
        assert!(err.contains("`default` or `json`"), "{err}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("portico.yaml");
        std::fs::write(&file, "admin_adr: 127.0.0.1:1111\n").unwrap();
        let args = CommonArgs {
            config: Some(file),
            ..Default::default()
        };
        let err = Settings::for_up(&args).unwrap_err().to_string();
        assert!(err.contains("unknown field `admin_adr`"), "{err}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let args = CommonArgs {
            config: Some("/nonexistent/portico.yaml".into()),
            ..Default::default()
        };
        assert!(Settings::for_up(&args).is_err());
    }
}
