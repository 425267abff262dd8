//! The regression gate: base vs candidate, bench by bench, in two tiers.
//!
//! - **wall** (criterion): each bench runs on base and candidate in alternating order, in
//!   several short rounds; a round's change and its 95% confidence interval come from
//!   criterion's own comparison of the two saved baselines. A bench **regressed** when the
//!   majority of rounds are slower by more than its threshold *and* significant (the interval
//!   lies above zero). Rounds keep one noisy moment of a shared machine from failing the gate.
//! - **instructions** (gungraun under Valgrind): one run per side; counts are deterministic,
//!   so a bench regressed when its instruction count grew by more than its threshold.
//!
//! [`config`] reads `[benches]` of `reliability.toml`; [`verdict`] is the pure comparison;
//! [`render`] makes the table, `bench.json` and the Prometheus text.

pub mod config;
pub mod render;
pub mod target;
pub mod verdict;

/// Exit codes of `bench-gate` (and `ci/bench-gate.sh`).
pub mod exit {
    /// No bench regressed.
    pub const PASSED: u8 = 0;
    /// At least one bench regressed.
    pub const REGRESSED: u8 = 1;
    /// Bad input: an unknown flag, a base ref that does not exist, a bad `[benches]` entry.
    pub const USAGE: u8 = 2;
    /// The gate could not measure: a build failed, a bench crashed, a tool is missing.
    pub const BROKEN: u8 = 3;
}
