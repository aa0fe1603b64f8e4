//! The endpoint role: the agent (`httpws endpoint`) and the client library. Built in the
//! endpoint issue on top of [`crate::proto`]; nothing here yet.
