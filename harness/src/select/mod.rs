//! Selection: which tests run, which are gated behind opt-in markers, which are deselected.
//!
//! Pure: given the tests, the marker catalogue and a validated [`Selection`], it decides, and
//! says why. The rules, in order:
//!
//! 1. `-k EXPR` — the name must match (case-insensitive substrings, and/or/not).
//! 2. `--exclude M` — a test carrying `M` is deselected.
//! 3. `-m EXPR` — when given, it decides by itself: matching tests run, gated or not (pytest).
//! 4. Otherwise a test carrying an opt-in marker that is not `--include`d is *gated*: reported
//!    as ignored with the reason, so that libtest's `--ignored`/`--include-ignored` and
//!    nextest's `--run-ignored` see a consistent set.
//!
//! Deselected tests are not handed to libtest at all; gated ones are, with the ignored flag.

pub mod expr;
pub mod partition;

use crate::config::markers::{Catalogue, UnknownMarker};
use crate::config::{Origin, SelectionSettings, Sourced};
use crate::registry::TestCase;
use crate::select::expr::{Expr, ParseError};

/// What selection decided for one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Runs.
    Run,
    /// Carries opt-in markers that were not included; reported as ignored.
    Gated {
        /// The opt-in markers it lacks an `--include` for.
        missing: Vec<String>,
    },
    /// Not selected; not reported as a test at all.
    Deselected {
        /// Why, for `--collect-only`.
        reason: String,
    },
}

impl Decision {
    /// The ignore reason of a gated test, e.g. `opt-in marker e2e: pass --include e2e`.
    pub fn gate_reason(missing: &[String]) -> String {
        let flags: Vec<String> = missing.iter().map(|m| format!("--include {m}")).collect();
        let noun = if missing.len() == 1 { "marker" } else { "markers" };
        format!("opt-in {noun} {}: pass {}", missing.join(", "), flags.join(" "))
    }
}

/// A validated selection, ready to apply.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    include: Vec<String>,
    exclude: Vec<String>,
    markexpr: Option<Expr>,
    keyword: Option<Expr>,
}

/// A selection setting that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    /// An expression does not parse.
    #[error("invalid expression in {origin}: {source}\n  {input}\n  {caret:>width$}", caret = "^", width = source.column)]
    Expr {
        /// Where the expression came from.
        origin: Origin,
        /// The expression.
        input: String,
        /// Column and expectation.
        #[source]
        source: ParseError,
    },
    /// A marker named in a flag, variable, file or expression is not declared.
    #[error(transparent)]
    UnknownMarker(#[from] UnknownMarker),
}

impl Selection {
    /// Validates layered settings against the catalogue: expressions parse, and every marker
    /// they (or `include`/`exclude`) name is declared.
    pub fn new(settings: &SelectionSettings, catalogue: &Catalogue) -> Result<Selection, SelectionError> {
        let check = |item: &Sourced<String>| catalogue.check(&item.value, &item.origin.to_string());
        for item in settings.include.iter().chain(&settings.exclude) {
            check(item)?;
        }
        let parse = |item: &Sourced<String>| {
            Expr::parse(&item.value).map_err(|source| SelectionError::Expr {
                origin: item.origin.clone(),
                input: item.value.clone(),
                source,
            })
        };
        let markexpr = settings.markexpr.as_ref().map(parse).transpose()?;
        if let (Some(expr), Some(item)) = (&markexpr, &settings.markexpr) {
            for ident in expr.idents() {
                catalogue.check(ident, &format!("the marker expression from {}", item.origin))?;
            }
        }
        let keyword = settings.keyword.as_ref().map(parse).transpose()?;
        Ok(Selection {
            include: settings.include.iter().map(|s| s.value.clone()).collect(),
            exclude: settings.exclude.iter().map(|s| s.value.clone()).collect(),
            markexpr,
            keyword,
        })
    }

    /// Whether any of our selection settings is in force (for the "nothing selected" exit).
    pub fn is_active(&self) -> bool {
        !self.include.is_empty() || !self.exclude.is_empty() || self.markexpr.is_some() || self.keyword.is_some()
    }

    /// Decides for one test.
    pub fn decide(&self, test: &TestCase, catalogue: &Catalogue) -> Decision {
        if let Some(keyword) = &self.keyword {
            let name = test.name.to_lowercase();
            if !keyword.eval(&mut |word| name.contains(&word.to_lowercase())) {
                return Decision::Deselected { reason: "not matched by -k".to_string() };
            }
        }
        if let Some(marker) = self.exclude.iter().find(|m| test.has_marker(m)) {
            return Decision::Deselected { reason: format!("excluded marker {marker}") };
        }
        if let Some(markexpr) = &self.markexpr {
            return if markexpr.eval(&mut |m| test.has_marker(m)) {
                Decision::Run
            } else {
                Decision::Deselected { reason: "not matched by -m".to_string() }
            };
        }
        let missing: Vec<String> = test
            .markers
            .iter()
            .filter(|m| catalogue.is_opt_in(m) && !self.include.iter().any(|i| i == *m))
            .map(|m| m.to_string())
            .collect();
        if missing.is_empty() { Decision::Run } else { Decision::Gated { missing } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::markers::Marker;

    fn ok(_: &mut crate::call::TestCall<'_>) -> Result<(), crate::call::Interrupted> {
        Ok(())
    }

    static DEF: crate::registry::TestDef = crate::registry::TestDef {
        path: "c::t",
        markers: &[],
        file: "f.rs",
        package_dir: "",
        line: 1,
        settings: None,
        fixtures: &[],
        run: ok,
    };

    fn test(name: &'static str, markers: &[&'static str]) -> TestCase {
        TestCase { name, markers: markers.to_vec(), settings: &crate::registry::Settings::DEFAULT, def: &DEF }
    }

    fn flag(value: &str, flag: &'static str) -> Sourced<String> {
        Sourced { value: value.to_string(), origin: Origin::Flag(flag) }
    }

    fn catalogue() -> Catalogue {
        let mut cat = Catalogue::default();
        cat.declare("smoke", Marker { description: String::new(), opt_in: false });
        cat
    }

    #[test]
    fn gated_reasons_name_the_flags() {
        let sel = Selection::new(&SelectionSettings::default(), &catalogue()).unwrap();
        let decision = sel.decide(&test("a", &["smoke", "e2e", "slow"]), &catalogue());
        assert_eq!(decision, Decision::Gated { missing: vec!["e2e".into(), "slow".into()] });
        assert_eq!(
            Decision::gate_reason(&["e2e".into(), "slow".into()]),
            "opt-in markers e2e, slow: pass --include e2e --include slow"
        );
        assert_eq!(sel.decide(&test("b", &["smoke"]), &catalogue()), Decision::Run);
        assert!(!sel.is_active());
    }

    #[test]
    fn include_needs_every_opt_in_marker() {
        let settings = SelectionSettings { include: vec![flag("e2e", "--include")], ..Default::default() };
        let sel = Selection::new(&settings, &catalogue()).unwrap();
        assert_eq!(sel.decide(&test("a", &["e2e"]), &catalogue()), Decision::Run);
        assert_eq!(
            sel.decide(&test("a", &["e2e", "slow"]), &catalogue()),
            Decision::Gated { missing: vec!["slow".into()] }
        );
    }

    #[test]
    fn markexpr_overrides_gating_and_keyword_and_exclude_apply_first() {
        let settings = SelectionSettings {
            markexpr: Some(flag("e2e and not chaos", "-m")),
            keyword: Some(flag("DELIVERY", "-k")),
            exclude: vec![flag("smoke", "--exclude")],
            ..Default::default()
        };
        let sel = Selection::new(&settings, &catalogue()).unwrap();
        let cat = catalogue();
        assert_eq!(sel.decide(&test("delivery::big", &["e2e", "slow"]), &cat), Decision::Run);
        assert!(matches!(sel.decide(&test("other::big", &["e2e"]), &cat), Decision::Deselected { .. }));
        assert!(matches!(sel.decide(&test("delivery::x", &["e2e", "smoke"]), &cat), Decision::Deselected { .. }));
        assert!(matches!(sel.decide(&test("delivery::y", &["e2e", "chaos"]), &cat), Decision::Deselected { .. }));
    }

    #[test]
    fn undeclared_markers_and_bad_expressions_are_errors() {
        let settings = SelectionSettings { include: vec![flag("e2ee", "--include")], ..Default::default() };
        let err = Selection::new(&settings, &catalogue()).unwrap_err().to_string();
        assert!(
            err.starts_with("flag --include uses undeclared marker `e2ee`; declared markers: chaos, e2e, slow, smoke"),
            "{err}"
        );

        let settings = SelectionSettings { markexpr: Some(flag("e2e and slwo", "-m")), ..Default::default() };
        let err = Selection::new(&settings, &catalogue()).unwrap_err().to_string();
        assert!(err.starts_with("the marker expression from flag -m uses undeclared marker `slwo`"), "{err}");

        let settings = SelectionSettings { markexpr: Some(flag("e2e and", "-m")), ..Default::default() };
        let err = Selection::new(&settings, &catalogue()).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid expression in flag -m: at column 8: expected not OR left parenthesis OR identifier; \
             got end of input\n  e2e and\n         ^"
        );
    }

    #[test]
    fn keyword_is_case_insensitive_and_takes_any_identifier() {
        let settings = SelectionSettings { keyword: Some(flag("Big[10] or not delivery", "-k")), ..Default::default() };
        let sel = Selection::new(&settings, &catalogue()).unwrap();
        let cat = catalogue();
        assert_eq!(sel.decide(&test("delivery::big[10]", &[]), &cat), Decision::Run);
        assert_eq!(sel.decide(&test("api::x", &[]), &cat), Decision::Run);
        assert!(matches!(sel.decide(&test("delivery::small", &[]), &cat), Decision::Deselected { .. }));
    }
}
