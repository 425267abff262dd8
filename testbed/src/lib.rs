//! # testbed
//!
//! An OTLP/HTTP trace ingest backend for reliability tests: the embedded default target of the
//! suites (started in-process on `127.0.0.1:0`) and the mock backend of stress runs
//! (`cargo run -p testbed --release -- serve --listen 127.0.0.1:4318`).
//!
//! - Ingest: `POST /v1/traces`, protobuf or JSON, optionally gzip, per the OTLP/HTTP spec
//!   (partial success, `google.rpc.Status` errors, 413 above a size limit applied after
//!   decompression, 415 for other content types).
//! - Storage in memory, bounded in spans and bytes (503 with `Retry-After` when full), and
//!   deduplicated by (trace id, span id), with exact per-project accounting:
//!   `received = accepted + duplicates + Σ rejected[reason]`.
//! - A query API (the contract a remote staging target must also offer; see the README):
//!   projects, traces filtered by span attributes, stats, deletion, the ledger of every
//!   ingest request, and `/metrics`.
//! - Fault injection at the HTTP layer ([`faults`]), set at start-up or at run time.
//!
//! ```no_run
//! let backend = testbed::Backend::start(testbed::Config::default()).unwrap();
//! println!("send spans to {}", backend.traces_url());
//! println!("query at {}", backend.query_url());
//! backend.shutdown();
//! ```

pub mod backend;
pub mod proxy;
pub mod rng;

pub use backend::{Backend, Config, ExposedError, LedgerEntry, StartError, faults, ingest, store};
pub use faults::{Action, FaultPlan, Rule, When};
pub use store::{Limits, Stats};
