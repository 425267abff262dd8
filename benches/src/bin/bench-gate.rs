//! The regression gate: `ci/bench-gate.sh [BASE_REF] [--filter TEXT] [--rounds N] [--quick]`.
//!
//! Builds the base in a git worktree and the candidate (the work tree as it is), runs every
//! criterion bench on both in alternating order over several rounds, counts instructions of
//! the gungraun benches on both, prints a table and writes `bench.json` and `bench.prom` to
//! `target/reliability/` (pushed to the Pushgateway when one is configured). See
//! `reliability_benches::gate` for the rules and [`exit`] for the exit codes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::Parser;
use reliability_benches::gate::config::{GateConfig, Tier};
use reliability_benches::gate::render::{self, Sides};
use reliability_benches::gate::verdict::{self, Change, Row};
use reliability_benches::gate::{config, exit};
use serde_json::Value;

/// The criterion bench targets the gate compares (the other bench targets are the gungraun
/// tier and figure programs).
const WALL_TARGETS: [&str; 3] = ["pipeline", "otlp", "harness"];
/// The gungraun bench target.
const INSTRUCTION_TARGET: &str = "instructions";

#[derive(Parser, Debug)]
#[command(name = "bench-gate", about = "Fails when a benchmark of the candidate is slower than the base")]
struct Args {
    /// The base to compare against: any git revision. Default: the merge-base with `main`
    /// (when HEAD is not on it), else `HEAD~1`.
    base_ref: Option<String>,
    /// Only benches whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
    /// Rounds of base/candidate runs of each criterion bench (a majority decides).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=15))]
    rounds: u32,
    /// Short criterion runs (0.5 s warm-up, 1.5 s measurement): a smoke test of the gate.
    #[arg(long)]
    quick: bool,
    /// Which tiers to run.
    #[arg(long, value_enum, default_value = "both")]
    tier: TierChoice,
    /// The configuration file with `[benches]` (default: `reliability.toml` at the root).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TierChoice {
    Wall,
    Instructions,
    Both,
}

/// Why the gate stopped without a verdict, and its exit code.
#[derive(Debug)]
struct Stop {
    code: u8,
    message: String,
}

fn usage(message: impl Into<String>) -> Stop {
    Stop { code: exit::USAGE, message: message.into() }
}

fn broken(message: impl Into<String>) -> Stop {
    Stop { code: exit::BROKEN, message: message.into() }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { exit::USAGE } else { exit::PASSED });
        }
    };
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(stop) => {
            eprintln!("bench-gate: {}", stop.message);
            ExitCode::from(stop.code)
        }
    }
}

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("failed to run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn commit_of(root: &Path, rev: &str) -> Option<String> {
    git(root, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).ok()
}

/// The base: as given (it must exist), else the merge-base with `main`, else `HEAD~1`.
fn resolve_base(root: &Path, given: Option<&str>) -> Result<(String, String), Stop> {
    if let Some(rev) = given {
        return commit_of(root, rev)
            .map(|sha| (rev.to_string(), sha))
            .ok_or_else(|| usage(format!("base ref `{rev}` does not name a commit in {}", root.display())));
    }
    let head = commit_of(root, "HEAD").ok_or_else(|| usage("the repository has no commit"))?;
    if let Ok(base) = git(root, &["merge-base", "HEAD", "main"])
        && base != head
    {
        return Ok(("merge-base with main".into(), base));
    }
    commit_of(root, "HEAD~1")
        .map(|sha| ("HEAD~1".to_string(), sha))
        .ok_or_else(|| usage("no base given and HEAD has no parent; name one: ci/bench-gate.sh BASE_REF"))
}

/// Builds the benches of the tree at `dir` (into `target`) and returns bench target name →
/// executable; empty when that tree has no benches package.
fn build(dir: &Path, target: &Path) -> Result<BTreeMap<String, PathBuf>, Stop> {
    if !dir.join("benches/Cargo.toml").is_file() {
        return Ok(BTreeMap::new());
    }
    eprintln!("bench-gate: building the benches of {}", dir.display());
    let out = Command::new("cargo")
        .args(["bench", "--no-run", "--message-format=json", "-p", "reliability-benches"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| broken(format!("failed to run cargo: {e}")))?;
    if !out.status.success() {
        return Err(broken(format!("building the benches of {} failed", dir.display())));
    }
    let mut exes = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else { continue };
        let is_bench = msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bench"));
        if let (true, Some(name), Some(exe)) = (is_bench, msg["target"]["name"].as_str(), msg["executable"].as_str()) {
            exes.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    Ok(exes)
}

fn list(exe: &Path) -> Result<Vec<String>, Stop> {
    let out = Command::new(exe)
        .arg("--list")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| broken(format!("failed to run {}: {e}", exe.display())))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": benchmark"))
        .map(String::from)
        .collect())
}

/// The criterion tier's run: where its data goes, how long each run measures.
struct Criterion {
    home: PathBuf,
    timing: [&'static str; 4],
}

impl Criterion {
    fn bench(&self, exe: &Path, name: &str, extra: &[&str]) -> Result<(), Stop> {
        let status = Command::new(exe)
            .args(["--bench", "--noplot", "--exact", name])
            .args(extra)
            .env("CRITERION_HOME", &self.home)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| broken(format!("failed to run {}: {e}", exe.display())))?;
        if status.success() { Ok(()) } else { Err(broken(format!("bench {name} failed ({status})"))) }
    }

    /// Criterion's directory of each bench (by its full id), from its `benchmark.json` files.
    fn directories(&self) -> BTreeMap<String, PathBuf> {
        let mut found = BTreeMap::new();
        let mut stack = vec![self.home.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name().is_some_and(|n| n == "benchmark.json")
                    && let Some(id) = read_json(&path).ok().and_then(|v| v["full_id"].as_str().map(String::from))
                    && let Some(bench_dir) = path.parent().and_then(Path::parent)
                {
                    found.insert(id, bench_dir.to_path_buf());
                }
            }
        }
        found
    }
}

fn read_json(path: &Path) -> Result<Value, Stop> {
    let text = std::fs::read_to_string(path).map_err(|e| broken(format!("failed to read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| broken(format!("failed to parse {}: {e}", path.display())))
}

fn number(value: &Value, path: &Path, pointer: &str) -> Result<f64, Stop> {
    value.pointer(pointer).and_then(Value::as_f64).ok_or_else(|| broken(format!("{} has no {pointer}", path.display())))
}

/// The wall tier: every criterion bench of the candidate, on both sides, interleaved.
fn wall_tier(
    args: &Args,
    gate: &GateConfig,
    base: &BTreeMap<String, PathBuf>,
    cand: &BTreeMap<String, PathBuf>,
    work: &Path,
) -> Result<Vec<Row>, Stop> {
    let criterion = Criterion {
        home: work.join("criterion"),
        timing: if args.quick {
            ["--warm-up-time", "0.5", "--measurement-time", "1.5"]
        } else {
            ["--warm-up-time", "1", "--measurement-time", "3"]
        },
    };
    let _ = std::fs::remove_dir_all(&criterion.home);
    let mut benches = Vec::new();
    let mut all_names = Vec::new();
    for target in WALL_TARGETS {
        let exe = cand.get(target).ok_or_else(|| broken(format!("the candidate has no bench target `{target}`")))?;
        let base_names = match base.get(target) {
            Some(base_exe) => list(base_exe)?,
            None => Vec::new(),
        };
        for name in list(exe)? {
            all_names.push(name.clone());
            if args.filter.as_deref().is_none_or(|f| name.contains(f)) {
                let base_exe = base.get(target).filter(|_| base_names.contains(&name)).cloned();
                benches.push((name, exe.clone(), base_exe));
            }
        }
    }
    gate.wall.check_names(Tier::Wall, &all_names).map_err(|e| usage(e.to_string()))?;
    let mut rows = Vec::new();
    for (i, (name, cand_exe, base_exe)) in benches.iter().enumerate() {
        eprintln!("bench-gate: wall {name} ({} rounds)", args.rounds);
        let mut changes = Vec::new();
        let (mut base_sum, mut cand_sum) = (0.0, 0.0);
        for round in 0..args.rounds as usize {
            let (b, c) = (format!("gate-base-{round}"), format!("gate-cand-{round}"));
            let save = |side: &str| ["--save-baseline".to_string(), side.to_string()];
            let sides: Vec<(&PathBuf, String)> = match base_exe {
                Some(base_exe) if (i + round) % 2 == 0 => vec![(base_exe, b.clone()), (cand_exe, c.clone())],
                Some(base_exe) => vec![(cand_exe, c.clone()), (base_exe, b.clone())],
                None => vec![(cand_exe, c.clone())],
            };
            for (exe, baseline) in &sides {
                let extra: Vec<String> = save(baseline).into_iter().chain(criterion.timing.map(String::from)).collect();
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                criterion.bench(exe, name, &extra)?;
            }
            let dir = criterion
                .directories()
                .remove(name)
                .ok_or_else(|| broken(format!("criterion wrote no data for {name}")))?;
            let mean = |baseline: &str| -> Result<f64, Stop> {
                let path = dir.join(baseline).join("estimates.json");
                number(&read_json(&path)?, &path, "/mean/point_estimate")
            };
            cand_sum += mean(&c)?;
            if base_exe.is_some() {
                base_sum += mean(&b)?;
                criterion.bench(cand_exe, name, &["--load-baseline", &c, "--baseline", &b])?;
                let path = dir.join("change").join("estimates.json");
                let json = read_json(&path)?;
                changes.push(Change {
                    estimate: number(&json, &path, "/mean/point_estimate")?,
                    low: number(&json, &path, "/mean/confidence_interval/lower_bound")?,
                    high: number(&json, &path, "/mean/confidence_interval/upper_bound")?,
                });
            }
        }
        let n = f64::from(args.rounds);
        let base_mean = base_exe.as_ref().map(|_| base_sum / n);
        rows.push(verdict::wall(name, base_mean, cand_sum / n, &changes, gate.wall.of(name)));
    }
    Ok(rows)
}

/// Why the instruction tier cannot run here, if it cannot.
fn instruction_tier_missing() -> Option<String> {
    let works = |cmd: &str| Command::new(cmd).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !works("valgrind").is_ok_and(|s| s.success()) {
        return Some("valgrind is not installed (Debian package `valgrind`)".into());
    }
    let runner = std::env::var("GUNGRAUN_RUNNER").unwrap_or_else(|_| "gungraun-runner".into());
    if !works(&runner).is_ok_and(|s| s.success()) {
        return Some(format!(
            "{runner} is not installed (cargo install gungraun-runner --version <the gungraun version in Cargo.lock>)"
        ));
    }
    None
}

/// Runs the gungraun benches of the tree at `dir`; bench name → instructions.
fn count_instructions(
    dir: &Path,
    target: &Path,
    home: &Path,
    filter: Option<&str>,
) -> Result<BTreeMap<String, f64>, Stop> {
    if !dir.join("benches/benches/instructions.rs").is_file() {
        return Ok(BTreeMap::new());
    }
    let _ = std::fs::remove_dir_all(home);
    eprintln!("bench-gate: counting instructions of {}", dir.display());
    let status = Command::new("cargo")
        .args(["bench", "-p", "reliability-benches", "--bench", INSTRUCTION_TARGET, "--", "--save-summary=json"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env("GUNGRAUN_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| broken(format!("failed to run cargo: {e}")))?;
    if !status.success() {
        return Err(broken(format!("the instruction benches of {} failed ({status})", dir.display())));
    }
    let mut counts = BTreeMap::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "summary.json") {
                let json = read_json(&path)?;
                let name =
                    ["group", "function_name", "id"].map(|k| json[k].as_str().unwrap_or("").to_string()).join("/");
                if filter.is_none_or(|f| name.contains(f)) {
                    counts.insert(name, number(&json, &path, "/profiles/0/data/total/metrics/Ir/values/new")?);
                }
            }
        }
    }
    if counts.is_empty() && filter.is_none() {
        return Err(broken(format!("the instruction benches of {} wrote no summary", dir.display())));
    }
    Ok(counts)
}

/// Copies the work tree as cargo sees it (tracked and untracked files that git does not
/// ignore, as they are on disk, uncommitted changes included) to `dir`.
fn copy_work_tree(root: &Path, dir: &Path) -> Result<PathBuf, Stop> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| broken(format!("failed to create {}: {e}", dir.display())))?;
    let files = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(root)
        .output()
        .map_err(|e| broken(format!("failed to run git: {e}")))?;
    let mut copied = 0usize;
    for name in files.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = Path::new(std::str::from_utf8(name).map_err(|e| broken(format!("a file name is not UTF-8: {e}")))?);
        let (from, to) = (root.join(name), dir.join(name));
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| broken(format!("failed to create {}: {e}", parent.display())))?;
        }
        std::fs::copy(&from, &to).map_err(|e| broken(format!("failed to copy {}: {e}", from.display())))?;
        copied += 1;
    }
    if copied == 0 {
        return Err(broken(format!("no files to copy from {}", root.display())));
    }
    Ok(dir.to_path_buf())
}

struct Worktree {
    repo: PathBuf,
    dir: PathBuf,
}

impl Worktree {
    fn add(repo: &Path, dir: &Path, commit: &str) -> Result<Worktree, Stop> {
        let _ = git(repo, &["worktree", "remove", "--force", &dir.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(dir);
        let _ = git(repo, &["worktree", "prune"]);
        git(repo, &["worktree", "add", "--detach", &dir.to_string_lossy(), commit]).map_err(broken)?;
        Ok(Worktree { repo: repo.to_path_buf(), dir: dir.to_path_buf() })
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let _ = git(&self.repo, &["worktree", "remove", "--force", &self.dir.to_string_lossy()]);
    }
}

fn run(args: &Args) -> Result<u8, Stop> {
    let root = PathBuf::from(git(Path::new("."), &["rev-parse", "--show-toplevel"]).map_err(usage)?);
    let config_path = args.config.clone().unwrap_or_else(|| root.join("reliability.toml"));
    let gate = config::load(&config_path).map_err(|e| usage(e.to_string()))?;
    let (base_ref, base_commit) = resolve_base(&root, args.base_ref.as_deref())?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target = if target.is_absolute() { target } else { root.join(target) };
    let work = target.join("bench-gate");
    std::fs::create_dir_all(&work).map_err(|e| broken(format!("failed to create {}: {e}", work.display())))?;
    let sides = Sides {
        base_ref: base_ref.clone(),
        base_commit: base_commit.clone(),
        candidate_commit: commit_of(&root, "HEAD").unwrap_or_default(),
        candidate_dirty: !git(&root, &["status", "--porcelain", "--untracked-files=no"]).unwrap_or_default().is_empty(),
    };
    eprintln!("bench-gate: base {base_ref} ({base_commit}), candidate the work tree at {}", root.display());

    // Both sides are built from trees at paths of the same length into target directories of
    // the same length, and their instructions are counted with homes of the same length: the
    // lengths of paths and environment strings move allocations, and with them instruction
    // counts (up to 1.4% here when the candidate was built in place and the base beside it).
    let worktree = Worktree::add(&root, &work.join("base"), &base_commit)?;
    let candidate = copy_work_tree(&root, &work.join("cand"))?;
    let (cand_target, base_target) = (work.join("target-cand"), work.join("target-base"));
    reliability_benches::gate::target::seed(&root, &target, &cand_target).map_err(broken)?;
    let cand = build(&candidate, &cand_target)?;
    reliability_benches::gate::target::seed(&root, &cand_target, &base_target).map_err(broken)?;
    let base = build(&worktree.dir, &base_target)?;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    if args.tier != TierChoice::Instructions {
        rows.extend(wall_tier(args, &gate, &base, &cand, &work)?);
    }
    if args.tier != TierChoice::Wall {
        match instruction_tier_missing() {
            Some(why) => {
                eprintln!("bench-gate: instruction tier skipped: {why}");
                skipped.push(format!("instructions: {why}"));
            }
            None => {
                let filter = args.filter.as_deref();
                let cand = count_instructions(&candidate, &cand_target, &work.join("gungraun-cand"), filter)?;
                let base = count_instructions(&worktree.dir, &base_target, &work.join("gungraun-base"), filter)?;
                let names: Vec<String> = cand.keys().cloned().collect();
                gate.instructions.check_names(Tier::Instructions, &names).map_err(|e| usage(e.to_string()))?;
                for (name, count) in &cand {
                    rows.push(verdict::instructions(name, base.get(name).copied(), *count, gate.instructions.of(name)));
                }
            }
        }
    }
    drop(worktree);
    report(&root, &target, &sides, &rows, &skipped);
    Ok(if verdict::failed(&rows) { exit::REGRESSED } else { exit::PASSED })
}

/// Prints the table and writes (and pushes) the reports; a failed write or push is a warning.
fn report(root: &Path, target: &Path, sides: &Sides, rows: &[Row], skipped: &[String]) {
    println!("{}", render::table(rows));
    for why in skipped {
        println!("skipped: {why}");
    }
    let regressed: Vec<&str> =
        rows.iter().filter(|r| r.verdict == verdict::Verdict::Regressed).map(|r| r.bench.as_str()).collect();
    println!(
        "bench gate: {} ({} benches compared, {} regressed{})",
        if regressed.is_empty() { "passed" } else { "FAILED" },
        rows.len(),
        regressed.len(),
        if regressed.is_empty() { String::new() } else { format!(": {}", regressed.join(", ")) }
    );
    let out = std::env::var_os("RELIABILITY_OUTPUT_DIR").map_or_else(|| target.join("reliability"), PathBuf::from);
    let prom = render::prometheus(rows);
    let files = [
        ("bench.json", render::json(sides, rows, skipped).map_err(|e| e.to_string())),
        ("bench.prom", Ok(prom.clone())),
    ];
    for (name, content) in files {
        let path = out.join(name);
        let written = content.and_then(|text| {
            std::fs::create_dir_all(&out)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|e| format!("failed to write {}: {e}", path.display()))
        });
        match written {
            Ok(()) => eprintln!("bench-gate: wrote {}", path.display()),
            Err(err) => eprintln!("bench-gate: warning: {err}"),
        }
    }
    push(root, &out, prom);
}

/// Pushes the bench series as one group (`suite="bench"`) when a Pushgateway is configured
/// (`PROMETHEUS_PUSHGATEWAY_URL` or `[pushgateway]`, as for test runs).
fn push(root: &Path, out: &Path, body: String) {
    use reliability_harness::config::Config;
    use reliability_harness::config::cli::Cli;
    use reliability_harness::config::options::RunOptions;
    let env = |key: &str| std::env::var(key).ok();
    let file = root.join("reliability.toml");
    let config = if file.is_file() { Config::load(&file).ok() } else { Some(Config::default()) };
    let Some(config) = config else { return };
    let Ok(cli) = Cli::parse(vec!["bench-gate".into()], &env) else { return };
    let options = match RunOptions::resolve(&config.run.clone().layered(cli.run)) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("bench-gate: warning: not pushed: {err}");
            return;
        }
    };
    let Some(push) = options.push else { return };
    let group = reliability_harness::publish::Group {
        path: reliability_harness::publish::group_path(&push.job, "bench", &push.labels),
        body,
    };
    let spool = reliability_harness::publish::Spool::new(out);
    let outcome = reliability_harness::publish::publish(&push, vec![group], &spool, &env);
    for error in &outcome.errors {
        eprintln!("bench-gate: warning: {error}");
    }
    if outcome.errors.is_empty() {
        eprintln!("bench-gate: pushed the bench series to {}", push.shown_url());
    }
}
