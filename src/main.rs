//! The `httpws` command: `httpws proxy` runs the relay, `httpws endpoint` the agent, and
//! `httpws demo` both, with a small web service, on loopback.

mod cli;

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, ProxyArgs, demo, doctor, endpoint, proxy, token};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
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
