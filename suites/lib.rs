//! What the reliability suites share: their configuration (`[target]`, `[client]`,
//! `[delivery]` in `reliability.toml`), the fixtures `Target`, `Project` and `Tracer`, and the
//! delivery check.
//!
//! The configuration file is the one the harness resolved (`--config`, `RELIABILITY_CONFIG`,
//! or `reliability.toml` at the workspace root), read through its `RunConfig` fixture.
//!
//! - [`Target`] (session, shared, registered with `shared_fixture!`): the embedded testbed
//!   backend — started once per run by the parent and adopted by every test process, which
//!   reach it through `Project` and `Tracer` — or a remote OTLP endpoint with its query API.
//! - [`Project`] (per test): a unique project (`e2e-reliability-<unix time>-<8 hex>`, also
//!   the spans' `service.name`) with a unique `test_marker`, deleted at teardown.
//! - [`Tracer`] (per test): the client pipeline pointed at the project. A test ends it with
//!   [`Tracer::finish`] (or [`Tracer::measure`] for the figures alone), which shuts the
//!   pipeline down, polls the target until the spans are there (no fixed sleeps), records the
//!   figures and runs every check of [`Delivery::shortfalls`]. Teardown shuts down a pipeline
//!   a test left open.
//! - [`ChaosProxy`] (per test): the testbed's chaos proxy in front of the target, for faults
//!   on the wire (latency, partitions, resets, ...), with a ledger of every connection.

pub mod config;
mod fixtures;
mod proxy;
pub mod sdk;

pub use config::SuiteConfig;
pub use fixtures::{Delivery, DeliveryError, Project, Shortfall, Target, TargetError, Tracer};
pub use proxy::ChaosProxy;
