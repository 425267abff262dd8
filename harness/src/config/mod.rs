//! `reliability.toml`: loading, strict validation, and where every value came from.
//!
//! Layers, lowest first: built-in defaults, the file, the environment, the command line
//! (see `cli`). Parsing is strict (`deny_unknown_fields`) so that a typo is an error that
//! points at the key, never a silently ignored setting. Every value keeps its [`Origin`] so
//! that a later check (an undeclared marker in `include`, a bad expression) can still say
//! `reliability.toml:7:12` rather than just "invalid".

pub mod cli;
pub mod markers;
pub mod options;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::markers::{Catalogue, Marker};

/// The configuration file's name, looked for at the workspace root.
pub const FILE_NAME: &str = "reliability.toml";

/// Where a setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Built in.
    Default,
    /// A position in the configuration file (1-based line and column).
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the built-in default"),
            Origin::File { path, line, column } => write!(f, "{}:{line}:{column}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its origin.
    pub origin: Origin,
}

/// Selection settings as layered from file, environment and command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectionSettings {
    /// Opt-in markers to run as well (`--include`).
    pub include: Vec<Sourced<String>>,
    /// Markers whose tests are removed (`--exclude`).
    pub exclude: Vec<Sourced<String>>,
    /// Marker expression (`-m`); decides selection by itself when present.
    pub markexpr: Option<Sourced<String>>,
    /// Name expression (`-k`).
    pub keyword: Option<Sourced<String>>,
}

impl SelectionSettings {
    /// `self` with every value that `over` sets replaced (a list replaces a list).
    pub fn layered(self, over: SelectionSettings) -> SelectionSettings {
        SelectionSettings {
            include: if over.include.is_empty() { self.include } else { over.include },
            exclude: if over.exclude.is_empty() { self.exclude } else { over.exclude },
            markexpr: over.markexpr.or(self.markexpr),
            keyword: over.keyword.or(self.keyword),
        }
    }
}

/// Runner settings as layered from file, environment and command line, still unparsed so that
/// one validator (`RunOptions::resolve`) can name the origin of a bad value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSettings {
    /// `process` or `thread`.
    pub isolation: Option<Sourced<String>>,
    /// Default per-test timeout in seconds; 0 disables.
    pub timeout: Option<Sourced<String>>,
    /// Retries after a failure.
    pub reruns: Option<Sourced<String>>,
    /// Seconds between retries.
    pub reruns_delay: Option<Sourced<String>>,
    /// A flaky test fails the run.
    pub flaky_fails: Option<Sourced<String>>,
    /// Stop after this many failures.
    pub maxfail: Option<Sourced<String>>,
    /// Print the N slowest phases (0: all).
    pub durations: Option<Sourced<String>>,
    /// Run one shard of N (`KIND:M/N`).
    pub partition: Option<Sourced<String>>,
    /// Run only the tests that failed last time.
    pub last_failed: Option<Sourced<String>>,
    /// Run the tests that failed last time first.
    pub failed_first: Option<Sourced<String>>,
    /// The metrics layer on (default) or off.
    pub metrics: Option<Sourced<String>>,
    /// Write a dhat heap profile per test (`dhat-heap` builds).
    pub heap_profile: Option<Sourced<String>>,
    /// Where to write JUnit XML besides `target/reliability/junit.xml`.
    pub junitxml: Option<Sourced<String>>,
    /// The Pushgateway's base URL.
    pub pushgateway_url: Option<Sourced<String>>,
    /// The Pushgateway job name.
    pub pushgateway_job: Option<Sourced<String>>,
    /// Seconds the whole push may take.
    pub push_timeout: Option<Sourced<String>>,
    /// Retries of a failed push request.
    pub push_retries: Option<Sourced<String>>,
    /// A failed push fails the run.
    pub require_push: Option<Sourced<String>>,
    /// Extra bounded grouping labels, `name=value` pairs.
    pub pushgateway_labels: Vec<Sourced<String>>,
}

impl RunSettings {
    /// `self` with every value that `over` sets replaced.
    pub fn layered(self, over: RunSettings) -> RunSettings {
        RunSettings {
            isolation: over.isolation.or(self.isolation),
            timeout: over.timeout.or(self.timeout),
            reruns: over.reruns.or(self.reruns),
            reruns_delay: over.reruns_delay.or(self.reruns_delay),
            flaky_fails: over.flaky_fails.or(self.flaky_fails),
            maxfail: over.maxfail.or(self.maxfail),
            durations: over.durations.or(self.durations),
            partition: over.partition.or(self.partition),
            last_failed: over.last_failed.or(self.last_failed),
            failed_first: over.failed_first.or(self.failed_first),
            metrics: over.metrics.or(self.metrics),
            heap_profile: over.heap_profile.or(self.heap_profile),
            junitxml: over.junitxml.or(self.junitxml),
            pushgateway_url: over.pushgateway_url.or(self.pushgateway_url),
            pushgateway_job: over.pushgateway_job.or(self.pushgateway_job),
            push_timeout: over.push_timeout.or(self.push_timeout),
            push_retries: over.push_retries.or(self.push_retries),
            require_push: over.require_push.or(self.require_push),
            pushgateway_labels: if over.pushgateway_labels.is_empty() {
                self.pushgateway_labels
            } else {
                over.pushgateway_labels
            },
        }
    }
}

/// The run configuration after the file layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    /// Declared markers (built-ins plus `[markers]`).
    pub markers: Catalogue,
    /// `[selection]`, to be overridden by environment and flags.
    pub selection: SelectionSettings,
    /// `[run]`, to be overridden by environment and flags.
    pub run: RunSettings,
    /// `[tracing] endpoint`: the OTLP/HTTP base URL the run's trace goes to (the standard
    /// `OTEL_EXPORTER_OTLP_*` variables win).
    pub tracing_endpoint: Option<String>,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read {path}: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or does not fit the schema.
    #[error("invalid {origin}: {message}")]
    Invalid {
        /// Where (file:line:column, or the file alone when the parser gave no position).
        origin: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchema {
    #[serde(default)]
    markers: BTreeMap<Spanned<String>, MarkerSchema>,
    #[serde(default)]
    selection: SelectionSchema,
    #[serde(default)]
    run: RunSchema,
    #[serde(default)]
    report: ReportSchema,
    #[serde(default)]
    pushgateway: PushgatewaySchema,
    #[serde(default)]
    tracing: TracingSchema,
    // The suites' own sections: the suites read them with their own strict schema (and
    // positions); the harness only lets them through.
    #[serde(rename = "target")]
    _target: Option<toml::Value>,
    #[serde(rename = "client")]
    _client: Option<toml::Value>,
    #[serde(rename = "delivery")]
    _delivery: Option<toml::Value>,
    // The benchmark gate's thresholds (`reliability-benches`, `ci/bench-gate.sh`).
    #[serde(rename = "benches")]
    _benches: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ReportSchema {
    junitxml: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TracingSchema {
    endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PushgatewaySchema {
    url: Option<Spanned<String>>,
    job: Option<Spanned<String>>,
    timeout: Option<Spanned<f64>>,
    retries: Option<Spanned<u32>>,
    require: Option<Spanned<bool>>,
    #[serde(default)]
    labels: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RunSchema {
    isolation: Option<Spanned<String>>,
    timeout: Option<Spanned<f64>>,
    reruns: Option<Spanned<u32>>,
    reruns_delay: Option<Spanned<f64>>,
    flaky_fails: Option<Spanned<bool>>,
    maxfail: Option<Spanned<u32>>,
    durations: Option<Spanned<u32>>,
    partition: Option<Spanned<String>>,
    metrics: Option<Spanned<bool>>,
    heap_profile: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MarkerSchema {
    description: String,
    #[serde(default)]
    opt_in: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SelectionSchema {
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    markexpr: Option<Spanned<String>>,
    keyword: Option<Spanned<String>>,
}

/// 1-based line and character column of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    /// Parses file contents; `path` is used for positions in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let at = |offset: usize| {
            let (line, column) = line_column(text, offset);
            Origin::File { path: path.to_path_buf(), line, column }
        };
        let schema: FileSchema = toml::from_str(text).map_err(|err| ConfigError::Invalid {
            origin: match err.span() {
                Some(span) => at(span.start).to_string(),
                None => path.display().to_string(),
            },
            message: err.message().trim_end().to_string(),
        })?;

        let mut catalogue = Catalogue::default();
        for (name, decl) in schema.markers {
            if !markers::is_valid_name(name.get_ref()) {
                return Err(ConfigError::Invalid {
                    origin: at(name.span().start).to_string(),
                    message: format!(
                        "marker name `{}` is not an identifier (letters, digits and `_`, \
                         not starting with a digit, not `and`/`or`/`not`)",
                        name.get_ref()
                    ),
                });
            }
            catalogue.declare(name.into_inner(), Marker { description: decl.description, opt_in: decl.opt_in });
        }

        let sourced = |value: Spanned<String>| Sourced { origin: at(value.span().start), value: value.into_inner() };
        let text_of = |value: Option<Spanned<String>>| value.map(sourced);
        fn shown<T: ToString>(value: Spanned<T>) -> Spanned<String> {
            let span = value.span();
            Spanned::new(span, value.into_inner().to_string())
        }
        let run = schema.run;
        let (report, push) = (schema.report, schema.pushgateway);
        let mut labels = Vec::new();
        for (name, value) in push.labels {
            let origin = at(name.span().start);
            labels.push(Sourced { value: format!("{}={}", name.get_ref(), value.get_ref()), origin });
        }
        let run = RunSettings {
            isolation: text_of(run.isolation),
            timeout: text_of(run.timeout.map(shown)),
            reruns: text_of(run.reruns.map(shown)),
            reruns_delay: text_of(run.reruns_delay.map(shown)),
            flaky_fails: text_of(run.flaky_fails.map(shown)),
            maxfail: text_of(run.maxfail.map(shown)),
            durations: text_of(run.durations.map(shown)),
            partition: text_of(run.partition),
            last_failed: None,
            failed_first: None,
            metrics: text_of(run.metrics.map(shown)),
            heap_profile: text_of(run.heap_profile.map(shown)),
            junitxml: text_of(report.junitxml),
            pushgateway_url: text_of(push.url),
            pushgateway_job: text_of(push.job),
            push_timeout: text_of(push.timeout.map(shown)),
            push_retries: text_of(push.retries.map(shown)),
            require_push: text_of(push.require.map(shown)),
            pushgateway_labels: labels,
        };
        let sel = schema.selection;
        let tracing_endpoint = schema.tracing.endpoint;
        Ok(Config {
            path: Some(path.to_path_buf()),
            markers: catalogue,
            selection: SelectionSettings {
                include: sel.include.into_iter().map(sourced).collect(),
                exclude: sel.exclude.into_iter().map(sourced).collect(),
                markexpr: sel.markexpr.map(sourced),
                keyword: sel.keyword.map(sourced),
            },
            run,
            tracing_endpoint,
        })
    }

    /// Finds the file: an explicit path (`--config`, `RELIABILITY_CONFIG`) must exist;
    /// otherwise the first `reliability.toml` in: the package directory cargo and nextest give
    /// the test binary (`CARGO_MANIFEST_DIR` at run time), the current directory, and the
    /// package directory the tests were compiled in (so the binary run by path from anywhere
    /// still finds its configuration). No file means the built-in defaults.
    pub fn discover(
        explicit: Option<&Sourced<PathBuf>>,
        manifest_dir: Option<&Path>,
        compiled_in: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        if let Some(explicit) = explicit {
            return Config::load(&explicit.value);
        }
        let candidates = manifest_dir
            .map(|d| d.join(FILE_NAME))
            .into_iter()
            .chain([PathBuf::from(FILE_NAME)])
            .chain(compiled_in.map(|d| d.join(FILE_NAME)));
        for candidate in candidates {
            if candidate.is_file() {
                return Config::load(&candidate);
            }
        }
        Ok(Config::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("reliability.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_sections_of_the_suites_and_the_bench_gate_pass_through() {
        let config = parse(
            "[target]\nkind = \"embedded\"\n[client]\ngzip = true\n[delivery]\nmin-ratio-small = 1.0\n\
             [benches.wall]\nthreshold = 0.1\n",
        )
        .unwrap();
        assert_eq!(config.selection, SelectionSettings::default());
        assert!(parse("[benchez]\n").is_err());
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.markers, Catalogue::default());
        assert_eq!(config.selection, SelectionSettings::default());
    }

    #[test]
    fn markers_and_selection_are_read_with_positions() {
        let config = parse(
            "[markers]\nsmoke = { description = \"quick\" }\nsoak = { description = \"hours\", opt-in = true }\n\
             \n[selection]\ninclude = [\"soak\"]\nmarkexpr = \"smoke or soak\"\n",
        )
        .unwrap();
        assert!(!config.markers.is_opt_in("smoke"));
        assert!(config.markers.is_opt_in("soak"));
        assert!(config.markers.is_opt_in("e2e"));
        let include = &config.selection.include[0];
        assert_eq!(include.value, "soak");
        assert_eq!(include.origin.to_string(), "reliability.toml:6:12");
        assert_eq!(config.selection.markexpr.as_ref().unwrap().origin.to_string(), "reliability.toml:7:12");
    }

    #[test]
    fn unknown_key_names_line_column_and_valid_keys() {
        let err = parse("[markers]\nsmoke = { description = \"x\", optin = true }\n").unwrap_err();
        assert!(err.starts_with("invalid reliability.toml:2:30: unknown field `optin`"), "{err}");
        assert!(err.contains("`description`") && err.contains("`opt-in`"), "{err}");

        let err = parse("\n\n[selectoin]\n").unwrap_err();
        assert!(err.starts_with("invalid reliability.toml:3:2: unknown field `selectoin`"), "{err}");
        assert!(
            err.contains("expected one of `markers`, `selection`, `run`, `report`, `pushgateway`, `tracing`, `target`"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_and_syntax_name_their_position() {
        let err = parse("[selection]\ninclude = \"e2e\"\n").unwrap_err();
        assert!(
            err.starts_with("invalid reliability.toml:2:11: invalid type: string \"e2e\", expected a sequence"),
            "{err}"
        );

        let err = parse("[markers]\nsmoke = { description = \"x\", opt-in = yes }\n").unwrap_err();
        assert!(err.starts_with("invalid reliability.toml:2:39:"), "{err}");

        let err = parse("[markers]\nsmoke = { }\n").unwrap_err();
        assert!(err.starts_with("invalid reliability.toml:2:9: missing field `description`"), "{err}");
    }

    #[test]
    fn run_section_is_typed_and_keeps_positions() {
        let config =
            parse("[run]\ntimeout = 30\nreruns-delay = 0.5\nisolation = \"thread\"\nflaky-fails = true\n").unwrap();
        let timeout = config.run.timeout.unwrap();
        assert_eq!((timeout.value.as_str(), timeout.origin.to_string().as_str()), ("30", "reliability.toml:2:11"));
        assert_eq!(config.run.reruns_delay.unwrap().value, "0.5");
        assert_eq!(config.run.isolation.unwrap().value, "thread");
        assert_eq!(config.run.flaky_fails.unwrap().value, "true");
        let err = parse("[run]\nreruns = -1\n").unwrap_err();
        assert!(err.starts_with("invalid reliability.toml:2:10:"), "{err}");
    }

    #[test]
    fn pushgateway_section() {
        let config = parse(
            "[pushgateway]\nurl = \"http://127.0.0.1:9091\"\ntimeout = 2\nrequire = true\nlabels = { branch = \"main\" }\n",
        )
        .unwrap();
        assert_eq!(config.run.pushgateway_url.unwrap().value, "http://127.0.0.1:9091");
        assert_eq!(config.run.push_timeout.unwrap().value, "2");
        assert_eq!(config.run.require_push.unwrap().value, "true");
        assert_eq!(config.run.pushgateway_labels[0].value, "branch=main");
        let err = parse("[pushgateway]\ntoken = \"s3cret\"\n").unwrap_err();
        assert!(err.contains("unknown field `token`") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn tracing_and_partition_keys() {
        let config =
            parse("[tracing]\nendpoint = \"http://127.0.0.1:4318\"\n[run]\npartition = \"hash:2/3\"\n").unwrap();
        assert_eq!(config.tracing_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
        assert_eq!(config.run.partition.unwrap().value, "hash:2/3");
        assert!(parse("[tracing]\nheaders = \"x\"\n").is_err(), "headers come from the environment only");
    }

    #[test]
    fn marker_names_must_be_identifiers() {
        let err = parse("[markers]\n\"my-marker\" = { description = \"x\" }\n").unwrap_err();
        assert!(err.starts_with("invalid reliability.toml:2:1: marker name `my-marker` is not an identifier"), "{err}");
    }

    #[test]
    fn line_column_counts_characters() {
        let text = "ab\ncé d\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        let d = text.find('d').unwrap();
        assert_eq!(line_column(text, d), (2, 4));
    }

    #[test]
    fn explicit_missing_file_is_an_error_but_absent_default_is_not() {
        let missing = Sourced {
            value: PathBuf::from("/nonexistent/reliability.toml"),
            origin: Origin::Env("RELIABILITY_CONFIG"),
        };
        let err = Config::discover(Some(&missing), None, None).unwrap_err().to_string();
        assert!(err.starts_with("failed to read /nonexistent/reliability.toml:"), "{err}");
        // Unit tests run in harness/, which has no reliability.toml.
        let config = Config::discover(None, Some(Path::new("/nonexistent")), None).unwrap();
        assert_eq!(config.path, None);
        assert_eq!(config.markers, Catalogue::default());
    }
}
