//! The registry: every `#[test]` of the binary, gathered by the linker (`linkme`).
//!
//! The attribute macro emits one static [`TestDef`] per test (per case, when parametrized)
//! into the [`TESTS`] slice: no constructor runs per test at start-up, and nothing links the
//! definitions together at run time (`inventory` cost 10,000 constructors, their code pages
//! and a relocated list node per test in a binary of 10,000 tests);
//! [`collect`] turns them into [`TestCase`]s with stable names `module::path::function[id]`,
//! sorted, and refuses duplicates. Nothing here decides what runs; see `selection`.

/// One registered test, as the attribute macro writes it. Not constructed by hand.
#[derive(Debug)]
pub struct TestDef {
    /// `module_path!()` at the definition, `::`, the function's name and, for a parametrized
    /// case, `[id]`: `crate::module::function[id]`. One string, so that the test's name is a
    /// slice of it (no allocation per test) and its static holds one pointer, not three.
    pub path: &'static str,
    /// Markers of the test and of the case, as written.
    pub markers: &'static [&'static str],
    /// Source location, for error messages.
    pub file: &'static str,
    /// `CARGO_MANIFEST_DIR` of the test's package when it was compiled: where
    /// `reliability.toml` is found when nothing at run time says where to look.
    pub package_dir: &'static str,
    /// Source line of the attribute's expansion.
    pub line: u32,
    /// Settings from the attribute; `None` when it has none.
    pub settings: Option<&'static Settings>,
    /// The fixtures the test takes directly (the parent learns shared ones from here).
    pub fixtures: &'static [FixtureRef],
    /// Runs the test: requests its fixtures from the call, then calls the body through it.
    pub run: RunFn,
}

/// The body as the macro wraps it.
pub type RunFn = fn(&mut crate::call::TestCall<'_>) -> Result<(), crate::call::Interrupted>;

pub use crate::fixture::FixtureRef;

pub use crate::config::options::Isolation;

/// An expected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Xfail {
    /// Why it is expected to fail.
    pub reason: &'static str,
    /// A pass is then a failure (`xpassed` strict).
    pub strict: bool,
}

/// A run-time skip condition.
#[derive(Clone, Copy, Debug)]
pub struct SkipIf {
    /// Evaluated just before the test.
    pub condition: fn() -> bool,
    /// The reason shown when it skips.
    pub reason: &'static str,
}

/// Per-test settings from the attribute; `None` means the run's default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// Timeout in seconds (`timeout = 30`).
    pub timeout: Option<f64>,
    /// Retries after a failure (`retries = 2`).
    pub retries: Option<u32>,
    /// Runs with the machine to itself (`serial = true`); `slow` tests default to serial.
    pub serial: Option<bool>,
    /// Test threads this test occupies (`threads = 4`).
    pub threads: Option<u32>,
    /// `isolation = "thread"` or `"process"`.
    pub isolation: Option<Isolation>,
    /// Address-space limit in MiB on top of the child's start-up size (process mode).
    pub memory_limit_mb: Option<u64>,
    /// `xfail = "reason"` / `xfail_strict = "reason"`.
    pub xfail: Option<Xfail>,
    /// `skip_if(condition, "reason")`.
    pub skip_if: Option<SkipIf>,
}

impl Settings {
    /// No settings: every value from the run's defaults.
    pub const DEFAULT: Settings = Settings {
        timeout: None,
        retries: None,
        serial: None,
        threads: None,
        isolation: None,
        memory_limit_mb: None,
        xfail: None,
        skip_if: None,
    };
}

/// Every test of the binary, in no particular order.
#[linkme::distributed_slice]
pub static TESTS: [TestDef];

/// A test ready for selection: its stable name, markers and body.
#[derive(Clone, Debug)]
pub struct TestCase {
    /// `module::path::function` or `module::path::function[id]`, without the crate name —
    /// the same in `--list`, JSON output and reports.
    pub name: &'static str,
    /// Markers, deduplicated, in the order written.
    pub markers: Vec<&'static str>,
    /// Settings from the attribute, or the defaults (a reference: 10,000 copies of `Settings`
    /// were 1 MB).
    pub settings: &'static Settings,
    /// The definition: location, fixtures and body, read from the static rather than copied
    /// into every case.
    pub def: &'static TestDef,
}

impl TestCase {
    /// Builds the stable name and marker list from a definition.
    pub fn from_def(def: &'static TestDef) -> TestCase {
        TestCase::named(name_of(def), def)
    }

    fn named(name: &'static str, def: &'static TestDef) -> TestCase {
        let mut markers: Vec<&'static str> = Vec::with_capacity(def.markers.len());
        for marker in def.markers {
            if !markers.contains(marker) {
                markers.push(marker);
            }
        }
        TestCase { name, markers, settings: def.settings.unwrap_or(&Settings::DEFAULT), def }
    }

    /// `file:line` of the definition.
    pub fn location(&self) -> String {
        format!("{}:{}", self.def.file, self.def.line)
    }

    /// Whether the test carries `marker`.
    pub fn has_marker(&self, marker: &str) -> bool {
        self.markers.contains(&marker)
    }

    /// The suite: the first module of the name (`delivery` for `delivery::baseline`), or `""`.
    pub fn suite(&self) -> &str {
        self.name.split_once("::").map_or("", |(suite, _)| suite)
    }
}

/// Two tests registered under one name.
#[derive(Debug, thiserror::Error)]
#[error("two tests are named `{name}` ({first} and {second}); rename one or give the cases distinct ids")]
pub struct DuplicateName {
    /// The shared name.
    pub name: String,
    /// Location of one definition.
    pub first: String,
    /// Location of the other.
    pub second: String,
}

/// Every test registered in this binary, sorted by name.
pub fn collect() -> Result<Vec<TestCase>, DuplicateName> {
    from_defs(TESTS.iter())
}

/// `module::path::function[case]`: the path without the crate name (libtest's names have
/// none). A crate name has no `:`, so the first `::` ends it.
fn name_of(def: &TestDef) -> &'static str {
    def.path.split_once("::").map_or(def.path, |(_, name)| name)
}

/// The test named `name`, found without collecting and sorting the whole registry: every
/// child process of a process-isolated run (and every nextest process) runs one test by name.
pub fn find(name: &str) -> Option<TestCase> {
    TESTS.iter().find(|def| name_of(def) == name).map(TestCase::from_def)
}

/// Builds the sorted, duplicate-free test list from definitions.
///
/// Every process pays this at start-up (each child of a process-isolated run too), so it sorts
/// small `(name, &def)` pairs rather than whole test cases; names are slices of the statics.
pub fn from_defs(defs: impl IntoIterator<Item = &'static TestDef>) -> Result<Vec<TestCase>, DuplicateName> {
    let mut named: Vec<(&'static str, &'static TestDef)> = defs.into_iter().map(|def| (name_of(def), def)).collect();
    named.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for pair in named.windows(2) {
        if pair[0].0 == pair[1].0 {
            let at = |def: &TestDef| format!("{}:{}", def.file, def.line);
            return Err(DuplicateName { name: pair[0].0.to_string(), first: at(pair[0].1), second: at(pair[1].1) });
        }
    }
    Ok(named.into_iter().map(|(name, def)| TestCase::named(name, def)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(_: &mut crate::call::TestCall<'_>) -> Result<(), crate::call::Interrupted> {
        Ok(())
    }

    const fn def(path: &'static str) -> TestDef {
        TestDef {
            path,
            markers: &["e2e", "slow", "e2e"],
            file: "f.rs",
            package_dir: "",
            line: 1,
            settings: None,
            fixtures: &[],
            run: ok,
        }
    }

    #[test]
    fn names_drop_the_crate_and_carry_the_case_id() {
        static DEFS: [TestDef; 3] =
            [def("reliability::delivery::baseline"), def("reliability::top"), def("reliability::a::b::p[10-x]")];
        let tests = from_defs(&DEFS).unwrap();
        let names: Vec<&str> = tests.iter().map(|t| t.name).collect();
        assert_eq!(names, ["a::b::p[10-x]", "delivery::baseline", "top"]);
        assert_eq!(tests[0].markers, ["e2e", "slow"]);
    }

    /// Every test of a binary pays these sizes: a definition was 232 bytes and a case ~210 (the
    /// whole `Settings` copied into each), 3.4 MB for 10,000 tests.
    #[test]
    fn a_definition_and_a_case_stay_small() {
        assert!(std::mem::size_of::<TestDef>() <= 104, "TestDef: {} bytes", std::mem::size_of::<TestDef>());
        assert!(std::mem::size_of::<TestCase>() <= 56, "TestCase: {} bytes", std::mem::size_of::<TestCase>());
        static PLAIN: TestDef = def("c::m::t");
        assert!(PLAIN.settings.is_none());
        let case = TestCase::from_def(&PLAIN);
        assert!(std::ptr::eq(case.name, &PLAIN.path[3..]), "the name is a slice of the static, not a copy");
        assert!(std::ptr::eq(case.def, &PLAIN), "the case reads its definition, not a copy");
    }

    #[test]
    fn duplicate_names_are_refused_with_both_locations() {
        static DEFS: [TestDef; 2] = [def("c::m::t"), def("c::m::t")];
        let err = from_defs(&DEFS).unwrap_err();
        assert_eq!(err.name, "m::t");
        assert!(err.to_string().contains("f.rs:1 and f.rs:1"));
    }
}
