//! Python 3 with a package, for tests whose independent client is a Python library (the
//! `websockets` package as a WebSocket peer): found on `PATH` and able to import the package,
//! or the test is skipped (see [`skip`](super::skip)).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{programs, skip};

/// `python3` if it can import `package`; otherwise the test is skipped (`None`: return).
#[track_caller]
pub fn with_package(package: &str) -> Option<PathBuf> {
    let python = programs::needed("python3")?;
    let what = format!("the Python package {package}");
    if skip::hidden(package) {
        skip::unavailable(&what, &format!("{} lists it", skip::WITHOUT));
        return None;
    }
    let imports = Command::new(&python)
        .args(["-c", &format!("import {package}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !imports {
        skip::unavailable(&what, &format!("`pip install {package}` installs it"));
        return None;
    }
    Some(python)
}
