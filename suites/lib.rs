//! Helpers shared by the reliability suites (`suites/main.rs`, the `reliability` test target).
//!
//! The suites themselves live in the test target, one module per suite; what several suites
//! need goes here so that it is compiled once and can be unit-tested.

use std::path::PathBuf;

/// `reliability.toml` of this workspace (the root package owns the suites).
pub fn config_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reliability.toml")
}
