//! What the reliability suites share: their configuration (`[target]`, `[client]`,
//! `[delivery]` in `reliability.toml`), the fixtures `Target`, `Project` and `Tracer`, and the
//! delivery check.
//!
//! The configuration file is the one the harness resolved (`--config`, `RELIABILITY_CONFIG`,
//! or `reliability.toml` at the workspace root), read through its `RunConfig` fixture.
//!
//! - [`Target`] (session, shared): the embedded testbed backend — started once per run by the
//!   parent and handed to every test process — or a remote OTLP endpoint with its query API.
//! - [`Project`] (per test): a unique project (`e2e-reliability-<unix time>-<8 hex>`, also
//!   the spans' `service.name`) with a unique `test_marker`, deleted at teardown.
//! - [`Tracer`] (per test): the client pipeline pointed at the project. A test ends it with
//!   [`Tracer::finish`], which shuts the pipeline down, checks the accounting identity, polls
//!   the target until the spans are there (no fixed sleeps), checks the delivery ratio against
//!   the thresholds and records the figures. Teardown shuts down a pipeline a test left open.

pub mod config;
mod fixtures;

pub use config::SuiteConfig;
pub use fixtures::{Delivery, DeliveryError, Project, Shortfall, Target, TargetError, Tracer};
