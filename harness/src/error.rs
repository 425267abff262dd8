//! Errors that end a run before tests execute, and the documented exit codes.

use crate::config::ConfigError;
use crate::config::cli::UsageError;
use crate::config::markers::UnknownMarker;
use crate::registry::DuplicateName;
use crate::select::SelectionError;

/// Exit code: every selected test passed (or nothing was run by a plain libtest filter).
pub const EXIT_OK: u8 = 0;
/// Exit code: at least one test failed (libtest's code, which cargo understands).
pub const EXIT_TESTS_FAILED: u8 = 101;
/// Exit code: bad flag, variable, expression, marker or `reliability.toml`.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: `-m`/`-k`/`--include`/`--exclude` left nothing to run (pytest's code).
pub const EXIT_NOTHING_SELECTED: u8 = 5;
/// Exit code: the push to the Pushgateway failed and `--require-push` was given (the payload
/// is spooled under `target/reliability/spool/`).
pub const EXIT_PUSH_FAILED: u8 = 6;
/// Exit code: a child process could not report its result (internal; the parent names it).
pub const EXIT_INTERNAL: u8 = 3;
/// Exit code: interrupted by Ctrl-C or SIGTERM (128 + SIGINT); reports of what ran are written.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a run stopped before running tests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or an environment variable.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// libtest-mimic's own parser refused the remaining arguments.
    #[error("{0}")]
    Libtest(String),
    /// `reliability.toml`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A test uses an undeclared marker.
    #[error(transparent)]
    UnknownMarker(#[from] UnknownMarker),
    /// A runner setting is invalid.
    #[error(transparent)]
    Options(#[from] crate::config::options::InvalidValue),
    /// The run could not be set up (a directory, a limit).
    #[error("{0}")]
    Runtime(String),
    /// A flag that needs something this build or configuration lacks (`--heap-profile`
    /// without the dhat feature, `--push-pending` without a gateway): a usage error.
    #[error("{0}")]
    Unsupported(String),
    /// A selection setting is invalid.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// Two tests share a name.
    #[error(transparent)]
    Duplicate(#[from] DuplicateName),
    /// nextest asked for a test by exact name and there is none: never report that as a pass.
    #[error("test `{0}` was requested with --exact under cargo-nextest but does not exist in this binary")]
    ExactMissing(String),
    /// Our selection left nothing to run.
    #[error("no tests selected: {0}")]
    NothingSelected(String),
}

impl Error {
    /// The documented exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NothingSelected(_) => EXIT_NOTHING_SELECTED,
            Error::Runtime(_) => EXIT_INTERNAL,
            _ => EXIT_USAGE,
        }
    }
}
