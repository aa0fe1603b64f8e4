//! Running helper programs (node, a browser, another httpws) from tests: bounded in time, in
//! their own process group so that whatever they start dies with them, output collected.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The standard output of a command that ran and succeeded; `None` if it cannot be run.
pub fn output_of(command: &mut Command) -> Option<String> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Run `command` in its own process group with its output collected; past `limit`, kill the
/// group (the command and whatever it started) and report failure.
pub fn run_bounded(command: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = collect(&mut child, true);
    let stderr = collect(&mut child, false);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) on the process group of a child we spawned with its own group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = stdout.join().expect("stdout reader");
    out.push_str(&stderr.join().expect("stderr reader"));
    match status {
        Some(status) => (status.success(), out),
        None => (
            false,
            format!("{out}\n(killed after {limit:?}: {command:?} did not finish)"),
        ),
    }
}

fn collect(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<String> {
    let mut pipe: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().expect("stdout piped"))
    } else {
        Box::new(child.stderr.take().expect("stderr piped"))
    };
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
