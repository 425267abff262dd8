//! Smoke: the suites' own set-up, checked on every run (marker `smoke`, not opt-in).

use reliability_harness as rh;
use reliability_harness::config::Config;

/// The heavy suites must stay out of a plain `cargo test`: e2e, slow and chaos are opt-in in
/// the checked-in configuration, not only in the built-in defaults.
#[rh::test(smoke)]
fn config_keeps_heavy_suites_opt_in() -> Result<(), String> {
    let path = reliability_suites::config_path();
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    for marker in ["e2e", "slow", "chaos"] {
        if !config.markers.is_opt_in(marker) {
            return Err(format!("{}: marker `{marker}` must stay opt-in", path.display()));
        }
    }
    if config.markers.get("smoke").is_none_or(|m| m.opt_in) {
        return Err(format!("{}: marker `smoke` must be declared and run by default", path.display()));
    }
    Ok(())
}
