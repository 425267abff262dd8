//! The target directory of the base build (see [`seed`]).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The base builds into a target directory of its own: cargo names a workspace member's
/// artifacts the same wherever the workspace lives, so in a shared directory one side's build
/// would overwrite the other's and a stale binary would pass for fresh. The first time, it is
/// seeded with hard links to the candidate's optimized dependencies (no second build of them,
/// no second copy on disk); every file and fingerprint of the workspace's own targets is
/// removed from it, so those always build from the base's sources, into new files.
pub fn seed(root: &Path, target: &Path, base_target: &Path) -> Result<(), String> {
    let (from, to) = (target.join("release"), base_target.join("release"));
    if !to.exists() && from.is_dir() {
        std::fs::create_dir_all(base_target).map_err(|e| format!("failed to create {}: {e}", base_target.display()))?;
        // Build scripts may write into their `build/` directories again: those are copied.
        let cp = |flags: &str, from: &Path, to: &Path| {
            Command::new("cp").arg(flags).arg(from).arg(to).status().is_ok_and(|s| s.success())
        };
        let linked = cp("-al", &from, &to)
            && std::fs::remove_dir_all(to.join("build")).is_ok()
            && cp("-a", &from.join("build"), &to.join("build"));
        if !linked {
            let _ = std::fs::remove_dir_all(&to);
            return Err(format!("failed to link {} into {}", from.display(), to.display()));
        }
    }
    let own = own_names(root)?;
    for dir in ["", ".fingerprint", "deps", "build", "examples", "incremental"] {
        for entry in std::fs::read_dir(to.join(dir)).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().replace('-', "_");
            let name = name.strip_prefix("lib").unwrap_or(&name);
            let stem = name.split(['.']).next().unwrap_or(name);
            if own.iter().any(|n| stem == n || stem.starts_with(&format!("{n}_"))) {
                let path = entry.path();
                let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            }
        }
    }
    Ok(())
}

/// The names (with `_` for `-`) of the workspace's own packages and all their targets.
fn own_names(root: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("failed to run cargo metadata: {e}"))?;
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let mut names = Vec::new();
    for package in json["packages"].as_array().into_iter().flatten() {
        names.extend(package["name"].as_str().map(String::from));
        for target in package["targets"].as_array().into_iter().flatten() {
            names.extend(target["name"].as_str().map(String::from));
        }
    }
    Ok(names.into_iter().map(|n| n.replace('-', "_")).collect())
}
