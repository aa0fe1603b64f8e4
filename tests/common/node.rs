//! Node.js for the JavaScript suites (`clients/js`, `tests/browser`): node on `PATH` and the
//! suite's node modules already installed. Tests never install them: `npm ci` needs the
//! registry, which a test run may not reach; `.ci/run` installs them beforehand.

use std::path::{Path, PathBuf};

use super::{programs, skip};

/// Node, once `package` is installed under `dir/node_modules`; otherwise the test is skipped
/// (`None`: return).
#[track_caller]
pub fn with_modules(dir: &Path, package: &str) -> Option<PathBuf> {
    let node = programs::needed("node")?;
    let installed = dir.join("node_modules").join(package).join("package.json");
    if skip::hidden("node_modules") || !installed.exists() {
        skip::unavailable(
            "node modules",
            &format!(
                "{} is not installed: run `npm ci` in {} (.ci/run does)",
                package,
                dir.display()
            ),
        );
        return None;
    }
    Some(node)
}
