//! The project's benchmarks in one place, so one package answers "how fast is it":
//!
//! - `benches/pipeline.rs`, `otlp.rs`, `harness.rs`: wall time under criterion;
//! - `benches/instructions.rs`: instruction counts of the same hot paths under Valgrind
//!   (gungraun), the tier that stays still on a noisy CI machine;
//! - `benches/ingest.rs` and the `overhead-bench` and `span-figures` binaries: figure programs
//!   that print ratios against a baseline measured in the same run;
//! - the `bench-gate` binary (`ci/bench-gate.sh`): base vs candidate, interleaved, and a
//!   verdict per bench.
//!
//! This library holds the inputs every tier shares ([`inputs`]) and the gate ([`gate`]).

pub mod gate;
pub mod inputs;
