//! File helpers: atomic writes with the right mode from the first byte, so a
//! key is never briefly world-readable, and a crash never leaves half a file.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::CaError;

/// Creates `dir` (and parents) and makes it 0700; root-owned when we are root.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), CaError> {
    fs::create_dir_all(dir).map_err(CaError::io("create the CA directory", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(CaError::io("restrict permissions of", dir))?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(dir, Some(0), Some(0)).map_err(CaError::io("make root the owner of", dir))?;
    }
    Ok(())
}

/// Writes `contents` to `path` via a temp file in the same directory + rename.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(CaError::io("create", &tmp))?;
        // The umask may have narrowed the mode; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(CaError::io("set permissions of", &tmp))?;
        f.write_all(contents).map_err(CaError::io("write", &tmp))?;
        f.sync_all().map_err(CaError::io("flush", &tmp))?;
        fs::rename(&tmp, path).map_err(CaError::io("replace", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Some(parent) = path.parent() {
        // Make the rename durable; failure here is not worth failing the write.
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

pub(crate) fn read_to_string(path: &Path, action: &'static str) -> Result<String, CaError> {
    fs::read_to_string(path).map_err(CaError::io(action, path))
}
