//! The proxy's two io drivers, and `on_both_drivers!`, which makes one test per driver of a
//! `fn name(driver: Driver)`; the io_uring one is skipped where the kernel refuses io_uring.

use super::skip;

/// Generate one test per io driver from `fn name(driver: Driver)`, in modules `uring` and
/// `epoll`; a case may carry attributes (`#[ignore = "bug: …"]`) for both.
#[macro_export]
macro_rules! on_both_drivers {
    ($( $(#[$attr:meta])* $name:ident ),* $(,)?) => {
        mod uring {
            $(
                $(#[$attr])*
                #[test]
                fn $name() {
                    if $crate::common::driver::uring_missing() {
                        return;
                    }
                    super::$name($crate::common::driver::Driver::Uring)
                }
            )*
        }
        mod epoll {
            $(
                $(#[$attr])*
                #[test]
                fn $name() {
                    super::$name($crate::common::driver::Driver::Epoll)
                }
            )*
        }
    };
}

#[derive(Clone, Copy, Debug)]
pub enum Driver {
    /// `--driver auto`: io_uring where the kernel has it (the proxy logs which it chose).
    Uring,
    /// `--driver legacy`: the epoll fallback.
    Epoll,
}

impl Driver {
    pub fn flag(self) -> &'static str {
        match self {
            Driver::Uring => "auto",
            Driver::Epoll => "legacy",
        }
    }
}

/// True, once the test is skipped (a failure in CI), where io_uring is not available: there
/// `--driver auto` would quietly run the epoll driver a second time.
#[track_caller]
pub fn uring_missing() -> bool {
    let why = if skip::hidden("io_uring") {
        format!("{} lists it", skip::WITHOUT)
    } else if !uring_detected() {
        "the kernel refuses it or lacks an operation the proxy uses (`httpws doctor` says which)"
            .to_owned()
    } else {
        return false;
    };
    skip::unavailable("io_uring", &why);
    true
}

/// The very probe `--driver auto` makes in the proxy, on a thread of its own: opening and
/// closing its ring on the test's thread made that thread's next blocking socket read fail
/// with `EINTR` (1 run in 4 of `browser_safety`'s first io_uring test).
fn uring_detected() -> bool {
    std::thread::spawn(monoio::utils::detect_uring)
        .join()
        .expect("the io_uring probe")
}
