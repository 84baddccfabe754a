//! The output directory of `convert`: what is at the output path (refusing anything that is not a previous
//! checkpoint), and the temporary sibling directory the checkpoint is assembled in, renamed into place only when
//! complete (a previous checkpoint is moved aside first and removed only after the new one is in place).

use super::CHECKPOINT_FILES;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What is at the output path now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Existing {
    Nothing,
    /// An empty directory, or (with `--force`) a previous checkpoint: replaced as a whole.
    Directory,
}

pub(super) fn check_output(src: &Path, out_dir: &Path, force: bool) -> Result<Existing> {
    let meta = match std::fs::symlink_metadata(out_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(Error::io(out_dir, e)),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "convert: output {} exists and is not a directory",
            out_dir.display()
        )));
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(src, out_dir) {
        return Err(Error::Invalid(format!(
            "convert: output {} is the source checkpoint; write to another directory",
            out_dir.display()
        )));
    }
    let mut ours = Vec::new();
    for entry in std::fs::read_dir(out_dir).map_err(|e| Error::io(out_dir, e))? {
        let entry = entry.map_err(|e| Error::io(out_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !CHECKPOINT_FILES.contains(&name.as_str()) {
            return Err(Error::Invalid(format!(
                "convert: output {} holds `{name}`, which is not part of a converted checkpoint; refusing to \
                 replace it (choose a new or empty directory)",
                out_dir.display()
            )));
        }
        ours.push(name);
    }
    if !ours.is_empty() && !force {
        ours.sort();
        return Err(Error::Invalid(format!(
            "convert: output {} already holds a checkpoint ({}); pass --force to replace it",
            out_dir.display(),
            ours.join(", ")
        )));
    }
    Ok(Existing::Directory)
}

/// A directory removed on drop unless committed.
pub(super) struct TempDir {
    path: PathBuf,
    committed: bool,
}

impl TempDir {
    pub(super) fn create(path: PathBuf) -> Result<Self> {
        // A leftover from a killed run of the same pid would be stale: start afresh.
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempDir { path, committed: false })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the finished directory to `dest`. An existing `dest` (empty, or a checkpoint with `--force`) is
    /// first moved aside and removed only after the new one is in place.
    pub(super) fn commit(mut self, dest: &Path, existing: Existing) -> Result<()> {
        sync_dir(&self.path)?;
        match existing {
            Existing::Nothing => std::fs::rename(&self.path, dest).map_err(|e| Error::io(dest, e))?,
            Existing::Directory => {
                let mut old_name = self.path.file_name().expect("named by convert()").to_os_string();
                old_name.push(".old");
                let old = self.path.with_file_name(old_name);
                std::fs::rename(dest, &old).map_err(|e| Error::io(dest, e))?;
                if let Err(e) = std::fs::rename(&self.path, dest) {
                    // Put the previous checkpoint back; the new one is dropped with the temp dir.
                    let _ = std::fs::rename(&old, dest);
                    return Err(Error::io(dest, e));
                }
                std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
            }
        }
        self.committed = true;
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

pub(super) fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = BufWriter::new(File::create(path).map_err(|e| Error::io(path, e))?);
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    let f = f.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}
