//! The store file: an 8-byte magic, then records `[u32 len][u32 crc32][payload]` (little-endian).
//!
//! Every append is followed by `fdatasync` before the write is acknowledged. A crash can leave a
//! torn record at the end; opening stops at the first record whose length or checksum does not
//! hold and truncates the file there. A compaction writes a new file whose first record is a
//! snapshot, syncs it, renames it over the old one and syncs the folder, so the store is always
//! exactly one complete file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::codec::Record;
use crate::{Result, StoreError};

/// Identifies a Portico store file (format 1).
const MAGIC: &[u8; 8] = b"PORTICO1";
/// Larger lengths can only come from a torn or corrupt header.
const MAX_RECORD: usize = 1 << 30;
const HEADER: usize = 8;

/// The open store file, positioned for appends.
pub(crate) struct LogFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl LogFile {
    /// Opens (or creates) the file at `path` and reads every complete record, truncating a torn
    /// tail. Fails on a file that is not a store file or holds a record it cannot understand.
    pub(crate) fn open(path: &Path) -> Result<(LogFile, Vec<Record>)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "create folder", e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_error(path, "open", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error(path, "read", e))?;
        let mut log = LogFile {
            file,
            path: path.to_path_buf(),
            len: bytes.len() as u64,
        };
        if bytes.len() < MAGIC.len() {
            if !MAGIC.starts_with(&bytes) {
                return Err(not_a_store(path));
            }
            // New file, or a crash while it was being created.
            log.truncate(0)?;
            log.write(MAGIC)?;
            sync_dir(path)?;
            return Ok((log, Vec::new()));
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(not_a_store(path));
        }
        let (records, end) = parse_records(path, &bytes)?;
        if end < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                offset = end,
                dropped_bytes = bytes.len() - end,
                "store file ends with a torn or corrupt record; truncating it"
            );
            log.truncate(end as u64)?;
        }
        Ok((log, records))
    }

    /// Appends one record and syncs it to disk.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<()> {
        let framed = frame(payload)?;
        self.write(&framed)
    }

    /// The file's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Replaces the file with one holding only `snapshot` (an encoded snapshot record). On
    /// failure, the flag tells whether the old file was already replaced (then the state of the
    /// folder is uncertain and writing must stop); otherwise the old file is still in use.
    pub(crate) fn rewrite(
        &mut self,
        snapshot: &[u8],
    ) -> std::result::Result<(), (bool, StoreError)> {
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(".compacting");
        let tmp = PathBuf::from(tmp_name);
        let written = frame(snapshot).and_then(|framed| {
            let mut out = File::create(&tmp).map_err(|e| io_error(&tmp, "create", e))?;
            out.write_all(MAGIC)
                .and_then(|()| out.write_all(&framed))
                .and_then(|()| out.sync_all())
                .map_err(|e| io_error(&tmp, "write", e))?;
            std::fs::rename(&tmp, &self.path).map_err(|e| io_error(&self.path, "replace", e))?;
            Ok((MAGIC.len() + framed.len()) as u64)
        });
        let len = match written {
            Ok(len) => len,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err((false, e));
            }
        };
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| (true, io_error(&self.path, "reopen", e)))?;
        self.len = len;
        sync_dir(&self.path).map_err(|e| (true, e))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_error(&self.path, "append", e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io_error(&self.path, "truncate", e))?;
        self.len = len;
        Ok(())
    }
}

/// Parses records after the magic; returns them with the offset where the valid part ends.
fn parse_records(path: &Path, bytes: &[u8]) -> Result<(Vec<Record>, usize)> {
    let mut records = Vec::new();
    let mut pos = MAGIC.len();
    while bytes.len() - pos >= HEADER {
        let len = u32_at(bytes, pos) as usize;
        let crc = u32_at(bytes, pos + 4);
        let start = pos + HEADER;
        if len > MAX_RECORD || bytes.len() - start < len {
            break;
        }
        let payload = &bytes[start..start + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        // A record with a valid checksum that cannot be decoded is not a torn write: refuse
        // to guess rather than throw data away.
        let record = Record::decode(payload).map_err(|e| {
            StoreError::Internal(format!(
                "{}: record at offset {pos} cannot be read: {e}",
                path.display()
            ))
        })?;
        records.push(record);
        pos = start + len;
    }
    Ok((records, pos))
}

fn frame(payload: &[u8]) -> Result<Vec<u8>> {
    if payload.len() > MAX_RECORD {
        return Err(StoreError::Internal(format!(
            "record of {} bytes is larger than the limit of {MAX_RECORD}",
            payload.len()
        )));
    }
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

fn u32_at(bytes: &[u8], pos: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[pos..pos + 4]);
    u32::from_le_bytes(b)
}

/// Makes a create or rename in the folder of `path` durable.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "sync folder", e))
}

fn not_a_store(path: &Path) -> StoreError {
    StoreError::Internal(format!(
        "{} is not a Portico store file (wrong magic bytes)",
        path.display()
    ))
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Internal(format!("{}: {what}: {e}", path.display()))
}
