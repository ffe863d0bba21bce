//! The last-known-good copy of a node's config: the cluster's objects as JSON,
//! `{"revision": R, "items": {"<key below the prefix>": {"mod_revision": M, "value": {...}}}}`.
//!
//! Writes happen on a blocking thread, never on the request path or the follow loop: one writer
//! task takes the newest config handed to it, so at most one write is in flight and a burst of
//! changes costs one write per write time (latest wins), and writes are at least
//! [`MIN_INTERVAL`] apart, so a steady stream of changes to a big table does not keep a core busy
//! serialising it. Each write goes to a temporary file that is synced and renamed over the copy,
//! so a crash leaves the old copy or the new one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portico_snapshot::{Config, Item};
use serde_json::{json, Value};
use tokio::sync::watch;

/// Shortest time between two writes of the copy.
pub(super) const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The config at one revision, shared with the follow loop without copying.
type Saved = Option<(i64, Arc<Config>)>;

/// Hands configs to the writer task; dropping it lets the task finish the newest write and end.
pub(super) struct LkgWriter {
    latest: watch::Sender<Saved>,
    written: watch::Receiver<i64>,
}

impl LkgWriter {
    /// Starts the writer task for `path`.
    pub(super) fn spawn(path: PathBuf) -> LkgWriter {
        let (latest, mut pending) = watch::channel::<Saved>(None);
        let (written_tx, written) = watch::channel(0);
        tokio::spawn(async move {
            let mut last_write: Option<tokio::time::Instant> = None;
            while pending.changed().await.is_ok() {
                if let Some(last) = last_write {
                    // Changes arriving meanwhile replace the pending config; the newest is written.
                    tokio::time::sleep_until(last + MIN_INTERVAL).await;
                }
                last_write = Some(tokio::time::Instant::now());
                let Some((revision, config)) = pending.borrow_and_update().clone() else {
                    continue;
                };
                let path = path.clone();
                let write = tokio::task::spawn_blocking(move || write(&path, revision, &config));
                if let Ok(true) = write.await {
                    written_tx.send_replace(revision);
                }
            }
        });
        LkgWriter { latest, written }
    }

    /// Asks for `config` at `revision` to be written; replaces any config not written yet.
    pub(super) fn save(&self, revision: i64, config: Arc<Config>) {
        self.latest.send_replace(Some((revision, config)));
    }

    /// The revision of the last copy written.
    #[cfg(test)]
    pub(super) fn written(&self) -> watch::Receiver<i64> {
        self.written.clone()
    }
}

impl std::fmt::Debug for LkgWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LkgWriter")
            .field("written", &*self.written.borrow())
            .finish_non_exhaustive()
    }
}

/// Writes the copy; returns whether it was written.
fn write(path: &Path, revision: i64, config: &Config) -> bool {
    let items: serde_json::Map<String, Value> = config
        .iter()
        .map(|(k, item)| {
            let entry = json!({"mod_revision": item.mod_revision, "value": item.value});
            (k.clone(), entry)
        })
        .collect();
    let doc = json!({"revision": revision, "items": items});
    let tmp = path.with_extension("tmp");
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer(&mut file, &doc)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    match result {
        Ok(()) => true,
        Err(e) => {
            let shown = path.display();
            tracing::warn!("cannot write the last-known-good config {shown}: {e}");
            false
        }
    }
}

/// Reads the copy at `path`: `None` when it is missing or unreadable (logged).
pub(super) fn read(path: &Path) -> Option<(i64, Config)> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                "cannot read the last-known-good config {}: {e}",
                path.display()
            );
            return None;
        }
    };
    let parsed = serde_json::from_slice::<Value>(&text).ok().and_then(|doc| {
        let revision = doc.get("revision")?.as_i64()?;
        let items = doc.get("items")?.as_object()?;
        let config = items.iter().filter_map(|(k, v)| {
            let item = Item {
                mod_revision: v.get("mod_revision")?.as_i64()?,
                value: v.get("value")?.clone(),
            };
            Some((k.clone(), item))
        });
        Some((revision, config.collect()))
    });
    if parsed.is_none() {
        tracing::warn!(
            "the last-known-good config {} is unreadable",
            path.display()
        );
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(n: i64) -> Arc<Config> {
        let item = Item {
            mod_revision: n,
            value: json!({"uri": format!("/r{n}")}),
        };
        Arc::new(Config::from([(format!("ws/default/routes/{n}"), item)]))
    }

    #[tokio::test]
    async fn a_burst_of_saves_ends_with_the_newest_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/lkg.json");
        let writer = LkgWriter::spawn(path.clone());
        let mut written = writer.written();
        for n in 1..=200 {
            writer.save(n, config(n));
        }
        let wait = written.wait_for(|&r| r == 200);
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .expect("the newest copy is written in time")
            .expect("writer alive");
        let (revision, read_back) = read(&path).expect("copy readable");
        assert_eq!(revision, 200);
        assert_eq!(read_back.len(), 1);
        assert!(read_back.contains_key("ws/default/routes/200"));
        assert!(
            !path.with_extension("tmp").exists(),
            "no temporary file left"
        );
    }

    #[test]
    fn a_missing_or_broken_copy_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lkg.json");
        assert!(read(&path).is_none());
        std::fs::write(&path, b"{\"revision\": 3, \"items\": [").expect("write");
        assert!(read(&path).is_none());
    }
}
