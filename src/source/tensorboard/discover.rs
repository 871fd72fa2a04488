//! Finding runs: every folder under a path that holds `events.out.tfevents.*` files is one
//! run, named by its path relative to the path given (`.` for the path itself); its files are
//! read in name order (the writer puts the creation time in the name).

use std::path::{Path, PathBuf};

use super::TbError;

/// One run: a folder's event files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFiles {
    /// The run's name: the folder relative to the path searched, `/`-separated (`.` for the
    /// path itself; `None` when the path was a single file).
    pub name: Option<String>,
    /// The folder.
    pub dir: PathBuf,
    /// Its event files, in name order.
    pub files: Vec<PathBuf>,
}

/// Whether a file name is a TensorBoard event file's.
pub(crate) fn is_event_file(name: &str) -> bool {
    name.contains("tfevents")
}

/// The runs at `path`: the file itself, or every folder under it (searched recursively,
/// symlinks not followed) holding event files, in path order.
pub(crate) fn discover(path: &Path) -> Result<Vec<RunFiles>, TbError> {
    let meta = std::fs::metadata(path).map_err(|source| TbError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        return Ok(vec![RunFiles {
            name: None,
            dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            files: vec![path.to_path_buf()],
        }]);
    }
    let mut runs = Vec::new();
    walk(path, path, &mut runs)?;
    runs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(runs)
}

/// The runs under `root`, or a [`TbError::NoEventFiles`] when there are none.
pub(crate) fn discover_some(path: &Path) -> Result<Vec<RunFiles>, TbError> {
    let runs = discover(path)?;
    if runs.is_empty() {
        return Err(TbError::NoEventFiles {
            path: path.to_path_buf(),
        });
    }
    Ok(runs)
}

fn walk(root: &Path, dir: &Path, runs: &mut Vec<RunFiles>) -> Result<(), TbError> {
    let io = |source| TbError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let kind = entry.file_type().map_err(io)?;
        let name = entry.file_name();
        if kind.is_dir() {
            subdirs.push(entry.path());
        } else if kind.is_file() && is_event_file(&name.to_string_lossy()) {
            files.push(entry.path());
        }
    }
    if !files.is_empty() {
        files.sort();
        let rel = dir.strip_prefix(root).unwrap_or(dir);
        let name = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        runs.push(RunFiles {
            name: Some(if name.is_empty() { ".".into() } else { name }),
            dir: dir.to_path_buf(),
            files,
        });
    }
    subdirs.sort();
    for sub in subdirs {
        walk(root, &sub, runs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_with_event_files_is_a_run() {
        let d = tempfile::tempdir().unwrap();
        let touch = |rel: &str| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        };
        touch("events.out.tfevents.1.host");
        touch("lr_0.1/version_0/events.out.tfevents.2.host");
        touch("lr_0.1/version_0/events.out.tfevents.1.host");
        touch("lr_0.1/version_0/hparams.yaml");
        touch("adam/events.out.tfevents.9.host");
        touch("empty/notes.txt");
        let runs = discover(d.path()).unwrap();
        let names: Vec<_> = runs.iter().map(|r| r.name.clone().unwrap()).collect();
        assert_eq!(names, [".", "adam", "lr_0.1/version_0"]);
        let files: Vec<_> = runs[2]
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            ["events.out.tfevents.1.host", "events.out.tfevents.2.host"]
        );
        let one = discover(&runs[1].files[0]).unwrap();
        assert_eq!(one[0].name, None);
        let err = discover_some(&d.path().join("empty"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no TensorBoard event files"), "{err}");
    }
}
