//! # reliability-load
//!
//! Load, stress and capacity runs against any OTLP/HTTP target (issue #12). **In progress:**
//! this crate holds the parts that everything else stands on, each tested on its own:
//!
//! - [`plan`]: a run described in YAML, read strictly — an unknown key or a bad value is an
//!   error naming the file, line and column and, for a choice, the valid ones;
//! - [`schedule`]: when each iteration of an open-model executor is due
//!   (`constant-arrival-rate`, `ramping-arrival-rate`, `burst`), exact to the iteration, and
//!   [`schedule::simulate`], which plays a schedule against a bounded pool of in-flight
//!   iterations on a virtual clock and counts what could not start on time as *missed* (k6's
//!   dropped iterations), so coordinated omission cannot hide.
//!
//! Not here yet: the generator that runs a plan against a target, the pipelines, GenAI
//! scenarios, figures, reports and the capacity search.

pub mod plan;
pub mod schedule;
