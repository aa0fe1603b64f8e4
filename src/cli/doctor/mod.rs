//! `httpws doctor [--conns N]`: checks this host against what N connections need.
//!
//! Each check prints OK, WARN or FAIL with the value found, the value needed, and (when not
//! OK) the exact command that fixes it, pointing at the files in `tuning/`. The exit status is 0
//! when no check FAILs and 1 otherwise, so the command can gate a start-up script or a systemd
//! `ExecStartPre=`.
//!
//! Everything is read straight from `/proc`, `/sys` and `getrlimit(2)`; nothing is shelled out.
//! A file that is missing or unreadable (containers, other kernels) gives "unknown" and a WARN,
//! never a panic. The sizing assumes the benchmark set-up: the proxy *and* `loadgen` on this
//! host, loadgen connecting over loopback, so system-wide counts (files, epoll watches, socket
//! memory) are needed twice. The evaluation functions (`check_*`) are pure, so they are tested
//! with made-up values; only [`Facts::gather`](facts::Facts::gather) touches the host.
//!
//! # Layout
//!
//! - [`count`]: the `--conns` value.
//! - [`facts`]: everything the checks look at, gathered from the host once; [`procfs`] reads
//!   one value from `/proc` or `/sys`, or says why it is unknown.
//! - [`check`]: one check's outcome, and the outcomes and fixes several checks share.
//! - The checks, each group with what it reads from the host: [`files`] (open-file limits),
//!   [`uring`] (the io_uring probe), [`listen`] (listen queues), [`ports`] (loadgen's local
//!   ports, TIME_WAIT reuse), [`conntrack`], [`memory`] and [`cpus`].
//! - [`report`]: every check in report order, and the report as printed.

mod check;
mod conntrack;
mod count;
mod cpus;
mod facts;
mod files;
mod listen;
mod memory;
mod ports;
mod procfs;
mod report;
mod uring;

use count::parse_count;

/// Connections planned for when `--conns` is not given (the owner's `loadgen --conns 100k`).
pub const DEFAULT_CONNS: &str = "100k";

#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Connections to plan for (plain count, or with a suffix: 100k, 1.5m, 1m).
    #[arg(long, value_name = "N", default_value = DEFAULT_CONNS, value_parser = parse_count)]
    pub conns: u64,
}

/// Gather the host's facts and print every check. Returns when no check FAILed; otherwise
/// flushes the report and exits the process with status 1 (the `httpws` main returns
/// `anyhow::Result<()>`, which has no other way to say "ran fine, the answer is no").
pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    if !report::print(args.conns)? {
        std::process::exit(1);
    }
    Ok(())
}
