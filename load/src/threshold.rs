//! k6-style thresholds, checked at the end of a run: `METRIC OP NUMBER`, e.g. `p99_ms < 250`
//! or `error_rate <= 0.001`. A breach makes `load run` exit 1.

use serde::Serialize;

/// The metrics a threshold can name.
pub const METRICS: [&str; 9] = [
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "error_rate",
    "missed_rate",
    "achieved_ratio",
    "spans_per_second",
];

/// The comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
        }
    }
}

/// A parsed threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Threshold {
    /// As written.
    pub expr: String,
    /// The metric.
    pub metric: String,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub bound: f64,
}

/// A threshold that does not parse: the 1-based column and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ThresholdError {
    /// 1-based column in the expression.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl Threshold {
    /// Parses `METRIC OP NUMBER`.
    pub fn parse(expr: &str) -> Result<Threshold, ThresholdError> {
        let at = |i: usize, message: String| ThresholdError { column: i + 1, message };
        let start = expr.len() - expr.trim_start().len();
        let name_end =
            expr[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(expr.len(), |i| start + i);
        let metric = &expr[start..name_end];
        if !METRICS.contains(&metric) {
            return Err(at(start, format!("unknown metric {metric:?} (valid: {})", METRICS.join(", "))));
        }
        let op_start = name_end + (expr[name_end..].len() - expr[name_end..].trim_start().len());
        let rest = &expr[op_start..];
        let (op, len) = if rest.starts_with("<=") {
            (Op::Le, 2)
        } else if rest.starts_with(">=") {
            (Op::Ge, 2)
        } else if rest.starts_with('<') {
            (Op::Lt, 1)
        } else if rest.starts_with('>') {
            (Op::Gt, 1)
        } else {
            return Err(at(op_start, "expected a comparison: <, <=, > or >=".into()));
        };
        let number_start = op_start + len + (rest[len..].len() - rest[len..].trim_start().len());
        let number = expr[number_start..].trim_end();
        let bound: f64 = number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| at(number_start, format!("expected a number, found {number:?}")))?;
        Ok(Threshold { expr: expr.to_owned(), metric: metric.to_owned(), op, bound })
    }

    /// Whether `value` (the metric's figure) keeps it.
    pub fn holds(&self, value: f64) -> bool {
        self.op.holds(value, self.bound)
    }
}

impl<'de> serde::Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Threshold, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Threshold;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a threshold such as \"p99_ms < 250\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Threshold, E> {
                Threshold::parse(v).map_err(|e| E::custom(format!("threshold {v:?}, {e}")))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// One threshold's verdict, as `summary.json` keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// The threshold.
    pub threshold: Threshold,
    /// The metric's figure.
    pub value: f64,
    /// Whether it held.
    pub passed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_judge() {
        let t = Threshold::parse("p99_ms < 250").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.metric.as_str(), t.op, t.bound), ("p99_ms", Op::Lt, 250.0));
        assert!(t.holds(249.9));
        assert!(!t.holds(250.0));
        let t = Threshold::parse("  achieved_ratio>=0.99 ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.op, t.bound), (Op::Ge, 0.99));
        assert!(t.holds(0.99));
    }

    #[test]
    fn bad_thresholds_name_the_column() {
        for (expr, column) in
            [("p98_ms < 1", 1), ("p99_ms = 1", 8), ("p99_ms < fast", 10), ("  error_rate <", 15), ("x", 1)]
        {
            assert_eq!(Threshold::parse(expr).map_err(|e| e.column), Err(column), "{expr}");
        }
    }
}
