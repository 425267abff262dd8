//! # reliability-load
//!
//! Load, stress and capacity runs against any OTLP/HTTP target (issue #12), each part tested
//! on its own:
//!
//! - [`plan`]: a run described in YAML, read strictly — an unknown key or a bad value is an
//!   error naming the file, line and column and, for a choice, the valid ones;
//! - [`schedule`]: when each iteration of an open-model executor is due
//!   (`constant-arrival-rate`, `ramping-arrival-rate`, `burst`), exact to the iteration, and
//!   [`schedule::simulate`], which plays a schedule against a bounded pool of in-flight
//!   iterations on a virtual clock and counts what could not start on time as *missed* (k6's
//!   dropped iterations), so coordinated omission cannot hide;
//! - [`users`]: the closed model — virtual users with a spawn rate, think time and weighted
//!   tasks (the scenarios of the mix);
//! - [`run`]: the generator — the profile played in real time against a pool of workers,
//!   latency from each due time, every iteration placed (started or missed; ended by status);
//! - [`scenario`]: GenAI agent workflows as span trees (four built in, others from YAML);
//! - [`raw`]: the `raw` pipeline — OTLP/HTTP requests with run-unique ids, sent straight;
//! - [`sdk`]: the `sdk` pipeline — the same traces made through the OpenTelemetry SDK (the
//!   testbed's client pipeline, exact accounting, bounded shutdown);
//! - [`threshold`]: k6-style conditions judged at the end;
//! - [`watch`]: the system under test and the generator, sampled every 250 ms against limits
//!   (`resource-usage.csv`);
//! - [`merge`]: `load merge` — the segments of one plan (`--segment i/N`) joined;
//! - [`progress`]: live progress (a bar on a terminal, plain lines in CI logs);
//! - [`report`]: `report.md`, the run's analysis on one page, and [`html`]: the same as a
//!   self-contained `report.html` with the [`graphs`] (plotters: `graphs/*.svg`, `*.png`)
//!   inlined — offered vs achieved, latency per second, responses by status, CPU and RSS
//!   against their limits;
//! - [`push`]: a run's figures to a Prometheus Pushgateway, one group per plan and segment
//!   (`load/deploy/indexed-job.yaml` runs N segments as a Kubernetes Indexed Job);
//! - [`advice`]: drop analysis and recommendations (`recommendations.md`);
//! - [`capacity`]: the capacity search — step up, then bisect — and `load capacity PLAN`;
//! - [`exec`] and the `load run PLAN` command: the embedded testbed or a URL checked
//!   reachable first, and `results/<UTC time>_<plan>/summary.json`.

pub mod advice;
pub mod capacity;
pub mod exec;
pub mod graphs;
pub mod html;
pub mod merge;
pub mod plan;
pub mod progress;
pub mod push;
pub mod raw;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod sdk;
pub mod threshold;
pub mod users;
pub mod watch;
