//! Crash-safe file writes: a reader sees the old file or the new one, never a torn one, and
//! after [`atomic_write`] returns the new content survives a power cut.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` via a temporary file in the same directory, fsyncs it, renames it
/// over `path` and fsyncs the directory. Creates the directory (mode 0700) if needed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    create_private_dir(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Fsyncs a directory so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates a directory and its parents, owner-only (state may hold email contents). Each
/// directory it creates is made durable by fsyncing its parent, so a file written into it
/// cannot vanish with it in a power cut. A path through something that is not a directory
/// (`/dev/null/x`) fails with an error naming that component.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(not_a_directory(dir)),
        Err(_) => {}
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_private_dir(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => sync_dir(parent.unwrap_or_else(|| Path::new("."))),
        // Another process created it meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        // Or put a file there.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(not_a_directory(dir)),
        Err(e) => Err(e),
    }
}

fn not_a_directory(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotADirectory,
        format!("{} exists and is not a directory", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("item.json");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_path_through_a_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        for path in [file.join("x"), file.join("x").join("y"), file.clone()] {
            let error = create_private_dir(&path).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::NotADirectory);
            assert_eq!(
                error.to_string(),
                format!("{} exists and is not a directory", file.display()),
                "creating {}",
                path.display()
            );
        }
        let error = create_private_dir(Path::new("/dev/null/x")).unwrap_err();
        assert_eq!(error.to_string(), "/dev/null exists and is not a directory");
        let error = atomic_write(&file.join("item.json"), b"x").unwrap_err();
        assert!(error.to_string().contains("is not a directory"), "{error}");
        // Nested directories that do not exist yet are still created.
        create_private_dir(&dir.path().join("a").join("b")).unwrap();
        assert!(dir.path().join("a").join("b").is_dir());
    }
}
