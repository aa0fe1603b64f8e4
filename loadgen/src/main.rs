//! `loadgen`: the httpws load generator. Its traffic engine is built in its own issue
//! (loadgen, the side-by-side benchmark suite, and tuning/); until then the binary only
//! says so, so that nobody mistakes it for a working harness.

fn main() {
    eprintln!(
        "loadgen: the load generator is not built yet (see the loadgen issue); use bench/idle_rss.sh for idle-memory runs"
    );
    std::process::exit(2);
}
