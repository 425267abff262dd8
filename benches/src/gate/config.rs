//! `[benches]` of `reliability.toml`: the gate's thresholds, strict like the rest of the file
//! (an unknown key, a threshold that is not a fraction in (0, 10], a bench the gate does not
//! know — each an error naming the file, line and column).
//!
//! ```toml
//! [benches.wall]              # criterion, wall time
//! threshold = 0.10            # a slowdown beyond 10% (and significant) fails the gate
//! per-bench = { "span/pipeline/10_attrs" = 0.20 }
//!
//! [benches.instructions]      # gungraun, instruction counts
//! threshold = 0.02
//! per-bench = { "otlp/decode_512/batch" = 0.05 }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

/// Default wall-time threshold: 10%.
pub const WALL_THRESHOLD: f64 = 0.10;
/// Default instruction-count threshold: 2%.
pub const INSTRUCTIONS_THRESHOLD: f64 = 0.02;

/// The two tiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Criterion, nanoseconds per iteration.
    Wall,
    /// Gungraun, instructions per call.
    Instructions,
}

impl Tier {
    /// `wall` or `instructions`, as in the file and the reports.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Wall => "wall",
            Tier::Instructions => "instructions",
        }
    }
}

/// A bad `[benches]` entry: the harness's own configuration error (`origin` is
/// file:line:column), so both read the same way.
pub use reliability_harness::config::ConfigError;

/// One tier's thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// For benches without their own.
    pub default: f64,
    /// Per bench: (threshold, where it was written).
    pub per_bench: BTreeMap<String, (f64, String)>,
}

impl Thresholds {
    /// The threshold of `bench`.
    pub fn of(&self, bench: &str) -> f64 {
        self.per_bench.get(bench).map_or(self.default, |(t, _)| *t)
    }

    /// Every per-bench entry must name a bench of the tier: a typo would silently keep the
    /// default threshold otherwise.
    pub fn check_names(&self, tier: Tier, known: &[String]) -> Result<(), ConfigError> {
        for (name, (_, at)) in &self.per_bench {
            if !known.contains(name) {
                let mut choices = known.to_vec();
                choices.sort();
                return Err(ConfigError::Invalid {
                    origin: at.clone(),
                    message: format!(
                        "unknown {} bench `{name}` in [benches.{}] per-bench; the benches are: {}",
                        tier.label(),
                        tier.label(),
                        choices.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The gate's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct GateConfig {
    /// Criterion tier.
    pub wall: Thresholds,
    /// Gungraun tier.
    pub instructions: Thresholds,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            wall: Thresholds { default: WALL_THRESHOLD, per_bench: BTreeMap::new() },
            instructions: Thresholds { default: INSTRUCTIONS_THRESHOLD, per_bench: BTreeMap::new() },
        }
    }
}

impl GateConfig {
    /// The thresholds of `tier`.
    pub fn tier(&self, tier: Tier) -> &Thresholds {
        match tier {
            Tier::Wall => &self.wall,
            Tier::Instructions => &self.instructions,
        }
    }
}

// Not `deny_unknown_fields`: every other section belongs to the harness and the suites, which
// check it strictly themselves.
#[derive(Deserialize)]
struct File {
    benches: Option<BenchesSchema>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenchesSchema {
    wall: Option<TierSchema>,
    instructions: Option<TierSchema>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TierSchema {
    threshold: Option<Spanned<f64>>,
    #[serde(default)]
    per_bench: BTreeMap<Spanned<String>, Spanned<f64>>,
}

/// Reads `[benches]` from the file at `path`; no file means the defaults.
pub fn load(path: &Path) -> Result<GateConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(GateConfig::default()),
        Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
    }
}

/// Parses `[benches]` out of a whole `reliability.toml`; `path` is for positions.
pub fn parse(text: &str, path: &Path) -> Result<GateConfig, ConfigError> {
    let at = |offset: usize| {
        let (line, column) = reliability_harness::config::line_column(text, offset);
        format!("{}:{line}:{column}", path.display())
    };
    let file: File = toml::from_str(text).map_err(|err| ConfigError::Invalid {
        origin: err.span().map_or_else(|| path.display().to_string(), |s| at(s.start)),
        message: err.message().trim_end().to_string(),
    })?;
    let mut config = GateConfig::default();
    let Some(benches) = file.benches else { return Ok(config) };
    for (schema, thresholds) in [(benches.wall, &mut config.wall), (benches.instructions, &mut config.instructions)] {
        let Some(schema) = schema else { continue };
        if let Some(threshold) = schema.threshold {
            thresholds.default = checked(&threshold, &at)?;
        }
        for (name, threshold) in schema.per_bench {
            let value = checked(&threshold, &at)?;
            let position = at(name.span().start);
            thresholds.per_bench.insert(name.into_inner(), (value, position));
        }
    }
    Ok(config)
}

/// A threshold is a fraction of the base: more than 0, at most 10 (a tenfold slowdown).
fn checked(value: &Spanned<f64>, at: &dyn Fn(usize) -> String) -> Result<f64, ConfigError> {
    let v = *value.get_ref();
    if v.is_finite() && v > 0.0 && v <= 10.0 {
        Ok(v)
    } else {
        Err(ConfigError::Invalid {
            origin: at(value.span().start),
            message: format!("threshold {v} is not a fraction in (0, 10]; 0.10 means 10% slower"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<GateConfig, ConfigError> {
        parse(text, Path::new("reliability.toml"))
    }

    fn position(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { origin, .. } => origin,
            ConfigError::Read { .. } => panic!("not a parse error"),
        }
    }

    #[test]
    fn no_section_is_the_defaults_and_other_sections_pass_through() {
        let config = parse_str("[run]\ntimeout = 5\n[target]\nkind = \"embedded\"\n").unwrap();
        assert_eq!(config, GateConfig::default());
        assert_eq!(config.wall.of("anything"), 0.10);
        assert_eq!(config.instructions.of("anything"), 0.02);
    }

    #[test]
    fn thresholds_and_overrides_are_read() {
        let config = parse_str(
            "[benches.wall]\nthreshold = 0.15\nper-bench = { \"otlp/decode_512\" = 0.3 }\n\
             [benches.instructions]\nthreshold = 0.01\n",
        )
        .unwrap();
        assert_eq!(config.wall.of("otlp/decode_512"), 0.3);
        assert_eq!(config.wall.of("otlp/encode_512"), 0.15);
        assert_eq!(config.instructions.of("otlp/decode_512"), 0.01);
        assert_eq!(config.wall.per_bench["otlp/decode_512"].1, "reliability.toml:3:15");
    }

    #[test]
    fn a_bad_threshold_is_an_error_at_its_position() {
        for (text, at) in [
            ("[benches.wall]\nthreshold = 0.0\n", "reliability.toml:2:13"),
            ("[benches.wall]\nthreshold = -0.1\n", "reliability.toml:2:13"),
            ("[benches.instructions]\nthreshold = 11.0\n", "reliability.toml:2:13"),
            ("[benches.wall]\nper-bench = { a = nan }\n", "reliability.toml:2:19"),
        ] {
            assert_eq!(position(parse_str(text).unwrap_err()), at, "{text}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors_at_their_position() {
        assert_eq!(position(parse_str("[benches.wall]\nthreshhold = 0.1\n").unwrap_err()), "reliability.toml:2:1");
        assert_eq!(position(parse_str("[benches]\nwal = {}\n").unwrap_err()), "reliability.toml:2:1");
        assert_eq!(position(parse_str("[benches.wall]\nthreshold = \"10%\"\n").unwrap_err()), "reliability.toml:2:13");
    }

    #[test]
    fn an_unknown_bench_name_is_an_error_at_its_key() {
        let config = parse_str("[benches.wall]\n\nper-bench = { \"otlp/decode512\" = 0.3 }\n").unwrap();
        let known = vec!["otlp/decode_512".to_string(), "otlp/encode_512".to_string()];
        let err = config.wall.check_names(Tier::Wall, &known).unwrap_err();
        assert_eq!(position(err), "reliability.toml:3:15");
        assert!(config.instructions.check_names(Tier::Instructions, &known).is_ok());
    }
}
