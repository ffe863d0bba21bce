//! The admin key and the keyring: from the settings, else generated once and kept in the data
//! folder (readable by the owner only).

use std::io::Write;
use std::path::Path;

/// A value taken from the settings, or read from `<data>/<file>`, or generated and written there.
/// Returns the value and whether it was generated now.
pub fn load_or_generate(
    data: &Path,
    file: &str,
    given: Option<&str>,
) -> Result<(String, bool), String> {
    if let Some(value) = given {
        return Ok((value.to_string(), false));
    }
    let path = data.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let value = random_hex(32)?;
    write_private(&path, &value).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((value, true))
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file that only its owner may read, atomically (temporary file, fsync, rename).
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(value.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, generated) = load_or_generate(dir.path(), "admin.key", None).unwrap();
        assert!(generated);
        assert_eq!(first.len(), 64);
        let (second, generated) = load_or_generate(dir.path(), "admin.key", None).unwrap();
        assert!(!generated);
        assert_eq!(first, second);
        let (given, _) = load_or_generate(dir.path(), "admin.key", Some("k")).unwrap();
        assert_eq!(given, "k");
    }
}
