//! The programs some tests drive besides `httpws` (node, chromium, openssl, wrk), found on
//! `PATH` like any other tool, or the test is skipped (see [`skip`](super::skip)).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::skip;

/// Why a program cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    #[error("{name} is not on PATH")]
    NotOnPath { name: String },
    #[error("{var}={} is not an executable file", path.display())]
    NotAtOverride { var: String, path: PathBuf },
    #[error("{} lists it", skip::WITHOUT)]
    Hidden,
}

/// `name` on `PATH`.
pub fn find(name: &str) -> Result<PathBuf, Missing> {
    if skip::hidden(name) {
        return Err(Missing::Hidden);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| executable(candidate))
        .ok_or_else(|| Missing::NotOnPath {
            name: name.to_owned(),
        })
}

/// `name` where the environment variable `var` points, or on `PATH` when it is not set.
pub fn find_overridden(name: &str, var: &str) -> Result<PathBuf, Missing> {
    match std::env::var_os(var) {
        _ if skip::hidden(name) => Err(Missing::Hidden),
        Some(path) if executable(Path::new(&path)) => Ok(PathBuf::from(path)),
        Some(path) => Err(Missing::NotAtOverride {
            var: var.to_owned(),
            path: PathBuf::from(path),
        }),
        None => find(name),
    }
}

/// [`find`], or the test is skipped (`None`: return).
#[track_caller]
pub fn needed(name: &str) -> Option<PathBuf> {
    skipped_unless(name, find(name))
}

/// [`find_overridden`], or the test is skipped (`None`: return).
#[track_caller]
pub fn needed_overridden(name: &str, var: &str) -> Option<PathBuf> {
    skipped_unless(name, find_overridden(name, var))
}

#[track_caller]
fn skipped_unless(name: &str, found: Result<PathBuf, Missing>) -> Option<PathBuf> {
    match found {
        Ok(path) => Some(path),
        Err(why) => {
            skip::unavailable(name, &why.to_string());
            None
        }
    }
}

fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
