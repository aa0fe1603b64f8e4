//! One check's outcome: OK, WARN or FAIL, with the value found, the value needed and the fix;
//! and the outcomes and fixes that several checks share.

/// How a check came out. Ordered by severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub(super) fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub current: String,
    pub needed: String,
    /// Commands (or steps) that fix it; printed only when the status is not OK.
    pub fix: Vec<String>,
}

pub(super) fn ok(name: &'static str, current: String, needed: String) -> Check {
    Check {
        name,
        status: Status::Ok,
        current,
        needed,
        fix: vec![],
    }
}

/// The WARN given for a value that could not be read.
pub(super) fn unknown(name: &'static str, why: &str, needed: String) -> Check {
    Check {
        name,
        status: Status::Warn,
        current: why.to_owned(),
        needed,
        fix: vec!["cannot check from here (a container?): run `httpws doctor` on the host".into()],
    }
}

/// The commands that install the persistent settings from `tuning/`.
pub(super) const SYSCTL_PERSIST: &str =
    "sudo install -m 644 tuning/sysctl.conf /etc/sysctl.d/90-httpws.conf && sudo sysctl --system";

pub(super) fn sysctl_fix(key: &str, value: impl std::fmt::Display) -> Vec<String> {
    vec![
        format!("sudo sysctl -w {key}={value}"),
        format!("persistent: {SYSCTL_PERSIST}"),
    ]
}
