//! The marker catalogue: built-in markers plus those declared in `reliability.toml`.
//!
//! Markers are strict, as with pytest's `--strict-markers`: a test that uses an undeclared
//! marker is an error at start-up, because a typo (`e2 e`, `slwo`) would otherwise silently
//! change what a selection runs.

use std::collections::BTreeMap;

/// One declared marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// What the marker means, shown by `--markers`.
    pub description: String,
    /// Opt-in markers keep their tests out of the default run (reported as ignored).
    pub opt_in: bool,
}

/// Built-in markers: name, description, opt-in.
const BUILT_IN: &[(&str, &str)] = &[
    ("e2e", "end-to-end test against a real target (the embedded backend by default)"),
    ("slow", "takes long (minutes); runs alone on the machine"),
    ("chaos", "injects faults: network, process or resource failures"),
];

/// The declared markers, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalogue {
    markers: BTreeMap<String, Marker>,
}

impl Default for Catalogue {
    fn default() -> Self {
        let markers = BUILT_IN
            .iter()
            .map(|(name, description)| {
                (name.to_string(), Marker { description: description.to_string(), opt_in: true })
            })
            .collect();
        Catalogue { markers }
    }
}

impl Catalogue {
    /// Adds or replaces a declaration (a file may redeclare a built-in to change it).
    pub fn declare(&mut self, name: impl Into<String>, marker: Marker) {
        self.markers.insert(name.into(), marker);
    }

    /// The declaration of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Marker> {
        self.markers.get(name)
    }

    /// Whether `name` is declared and opt-in.
    pub fn is_opt_in(&self, name: &str) -> bool {
        self.markers.get(name).is_some_and(|m| m.opt_in)
    }

    /// All declarations, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Marker)> {
        self.markers.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The declared names, comma-separated, for error messages.
    pub fn names(&self) -> String {
        self.markers.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }

    /// Checks that `name` is declared; `used_by` says where it was used, for the message.
    pub fn check(&self, name: &str, used_by: &str) -> Result<(), UnknownMarker> {
        if self.markers.contains_key(name) {
            Ok(())
        } else {
            Err(UnknownMarker { marker: name.to_string(), used_by: used_by.to_string(), declared: self.names() })
        }
    }
}

/// A marker that is not declared.
#[derive(Debug, thiserror::Error)]
#[error(
    "{used_by} uses undeclared marker `{marker}`; declared markers: {declared} \
     (declare more under [markers] in reliability.toml)"
)]
pub struct UnknownMarker {
    /// The undeclared name.
    pub marker: String,
    /// Where it was used: a test name or a flag.
    pub used_by: String,
    /// The declared names.
    pub declared: String,
}

/// Whether `name` can be a marker: a Rust-style identifier, as the attribute and the
/// expression grammar both accept it.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && !matches!(name, "and" | "or" | "not")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_are_opt_in() {
        let cat = Catalogue::default();
        for name in ["e2e", "slow", "chaos"] {
            assert!(cat.is_opt_in(name), "{name}");
        }
        assert!(!cat.is_opt_in("smoke"));
    }

    #[test]
    fn unknown_marker_names_user_and_declared_list() {
        let mut cat = Catalogue::default();
        cat.declare("smoke", Marker { description: "quick".into(), opt_in: false });
        let err = cat.check("slwo", "test `a::b`").unwrap_err().to_string();
        assert_eq!(
            err,
            "test `a::b` uses undeclared marker `slwo`; declared markers: chaos, e2e, slow, smoke \
             (declare more under [markers] in reliability.toml)"
        );
    }

    #[test]
    fn marker_names_are_identifiers_but_not_operators() {
        for ok in ["e2e", "_x", "soak_24h", "ünï"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "2e", "my-marker", "a b", "and", "not", "or"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
