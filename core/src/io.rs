//! Whole-file reads and atomic writes: an output is either complete or absent.

use std::io::Write;
use std::path::Path;

use crate::error::{NmlError, Result};

pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| NmlError::io(path, e))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`,
/// so a crash or a full disk never leaves a half-written output behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| NmlError::io(dir, e))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| NmlError::Invalid(format!("{}: not a file path", path.display())))?;
    // Unique to this process and moment: shards of one study on other machines may write the
    // same file into a shared folder at once, and their process ids can coincide.
    let nanos = web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp =
        dir.join(format!(".{}.tmp{}-{nanos}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(NmlError::io(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("nml-io-{}", std::process::id()));
        let path = dir.join("out.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "temporary left behind: {names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_write_names_the_path() {
        let err = write_atomic(Path::new("/proc/nml-cannot-write/x.bin"), b"x").unwrap_err();
        assert!(err.to_string().contains("/proc/nml-cannot-write"), "{err}");
    }
}
