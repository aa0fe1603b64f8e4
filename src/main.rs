//! The `httpws` command: `httpws proxy` runs the relay, `httpws endpoint` the agent, and
//! `httpws demo` both, with a small web service, on loopback.

mod cli;

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, ProxyArgs, demo, doctor, endpoint, proxy, token};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turn transparent huge pages off for this process. The allocator asks the kernel for them
/// on its arenas (`madvise`), and then the first byte touched in a 2 MiB stretch makes all of
/// it resident: an idle connection's few hundred bytes, spread over the arena, cost RSS in
/// 2 MiB steps (bench/RESULTS.md, idle memory: 2.7 KiB per idle connection at 10k with
/// them, about 1 KiB without). A kernel without the option keeps its default; nothing else
/// changes.
fn refuse_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and reads or writes no memory of ours.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn main() -> anyhow::Result<()> {
    refuse_huge_pages();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("--log")?)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: logs piped to a file, journald or a
        // collector must stay plain text (and NO_COLOR turns them off everywhere).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    match cli.command {
        Some(Command::Proxy(args)) => proxy::run(args),
        Some(Command::Endpoint(args)) => endpoint::run(args),
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Doctor(args)) => doctor::run(args),
        Some(Command::HashToken) => token::hash_token(),
        None => proxy::run(ProxyArgs::default()),
    }
}
