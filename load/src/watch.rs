//! Watching the system under test, and the generator itself: CPU (in cores) and RSS sampled
//! every 250 ms with sysinfo, against the plan's limits — a warning at 80%, critical at 90%
//! (and, when asked, the run stopped). A target can be a running process (`pid`) or a command
//! the run starts (`spawn`: started before the run, its output saved to `logs/target.log`,
//! stopped after; `memory-limit-mb` is enforced on it with `ulimit -v`). The generator watches
//! itself too, so a run whose generator ran out of CPU says so instead of passing its own
//! limit off as the target's capacity.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// `watch:` in a plan.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WatchSpec {
    /// A running process to watch.
    #[serde(default)]
    pub pid: Option<u32>,
    /// A command to start before the run (through `sh -c`), watch, and stop after it.
    #[serde(default)]
    pub spawn: Option<String>,
    /// The target's CPU budget, in cores (warn at 80%, critical at 90%).
    #[serde(default)]
    pub cpu_limit_cores: Option<f64>,
    /// The target's memory budget, MB (warn at 80%, critical at 90%; enforced on `spawn`).
    #[serde(default)]
    pub memory_limit_mb: Option<u64>,
    /// Stop the run when the target goes critical.
    #[serde(default)]
    pub abort_on_critical: bool,
}

/// One sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds from the start of the run.
    pub t: f64,
    /// The target's CPU, cores (none without a target).
    pub target_cpu_cores: Option<f64>,
    /// The target's resident memory, bytes.
    pub target_rss_bytes: Option<u64>,
    /// The generator's CPU, cores.
    pub generator_cpu_cores: f64,
    /// The generator's resident memory, bytes.
    pub generator_rss_bytes: u64,
}

/// A limit crossed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Seconds from the start.
    pub t: f64,
    /// `warning` (80%) or `critical` (90%).
    pub level: &'static str,
    /// `cpu` or `memory`.
    pub resource: &'static str,
    /// The figure, as a fraction of the limit.
    pub fraction: f64,
}

/// What the watch saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Watched {
    /// Every sample.
    #[serde(skip)]
    pub samples: Vec<Sample>,
    /// The target's peak CPU, cores.
    pub target_peak_cpu_cores: Option<f64>,
    /// The target's peak RSS, bytes.
    pub target_peak_rss_bytes: Option<u64>,
    /// The generator's peak CPU, cores.
    pub generator_peak_cpu_cores: f64,
    /// The cores the generator could use.
    pub generator_cores_available: f64,
    /// Limits crossed (each resource and level once, the first time).
    pub alerts: Vec<Alert>,
    /// The spawned target's exit status, if it ended on its own during the run.
    pub spawned_exit_code: Option<i32>,
}

/// A running watch.
#[derive(Debug)]
pub struct Watch {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Watched>>,
    child: Arc<Mutex<Option<Child>>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    origin: Instant,
}

fn spawn(command: &str, memory_mb: Option<u64>, log: &std::path::Path) -> Result<Child, String> {
    let script = match memory_mb {
        Some(mb) => format!("ulimit -v {}; exec {command}", mb * 1024),
        None => format!("exec {command}"),
    };
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let out = std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))
}

impl Watch {
    /// Starts watching (and spawns the target, logging to `log`); `stop` is set when the
    /// target goes critical and `abort-on-critical` asks for it.
    pub fn start(spec: &WatchSpec, log: &std::path::Path, stop: Arc<AtomicBool>) -> Result<Watch, String> {
        let child = match &spec.spawn {
            Some(command) => Some(spawn(command, spec.memory_limit_mb, log)?),
            None => None,
        };
        let target = spec.pid.or(child.as_ref().map(Child::id)).map(Pid::from_u32);
        let child = Arc::new(Mutex::new(child));
        let done = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        let (spec, done2, child2, samples2) =
            (spec.clone(), Arc::clone(&done), Arc::clone(&child), Arc::clone(&samples));
        let thread = std::thread::Builder::new()
            .name("load-watch".into())
            .spawn(move || sample(&spec, target, &done2, &stop, &child2, &samples2, origin))
            .map_err(|e| e.to_string())?;
        Ok(Watch { done, thread: Some(thread), child, samples, origin })
    }

    /// Seconds since the watch began (the samples' clock).
    pub fn elapsed(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// The target's peak CPU (cores) and RSS (bytes) in the samples taken since `t`.
    pub fn peaks_since(&self, t: f64) -> (Option<f64>, Option<u64>) {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let window = samples.iter().filter(|s| s.t >= t);
        window.fold((None, None), |(cpu, rss), s| {
            (
                s.target_cpu_cores.map_or(cpu, |c| Some(cpu.map_or(c, |p: f64| p.max(c)))),
                s.target_rss_bytes.map_or(rss, |r| Some(rss.map_or(r, |p: u64| p.max(r)))),
            )
        })
    }

    /// Stops watching and stops a spawned target; returns what was seen.
    pub fn finish(mut self) -> Watched {
        self.done.store(true, Ordering::Release);
        let mut watched = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        watched.samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some(mut child) = self.child.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        watched
    }
}

fn sample(
    spec: &WatchSpec,
    target: Option<Pid>,
    done: &AtomicBool,
    stop: &AtomicBool,
    child: &Mutex<Option<Child>>,
    samples: &Mutex<Vec<Sample>>,
    origin: Instant,
) -> Watched {
    let me = Pid::from_u32(std::process::id());
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let mut watched = Watched { generator_cores_available: cores, ..Watched::default() };
    let Ok(mut system) = System::new() else { return watched };
    let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
    // Bounded: a sample at once, one per 250 ms, and a last one when told to stop (so every
    // run has at least two, whatever the scheduler does).
    let mut first = true;
    loop {
        let finishing = done.load(Ordering::Acquire);
        if !first && !finishing {
            std::thread::sleep(Duration::from_millis(250));
        }
        first = false;
        let pids: Vec<Pid> = std::iter::once(me).chain(target).collect();
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind);
        let t = origin.elapsed().as_secs_f64();
        let (gen_cpu, gen_rss) =
            system.process(me).map_or((0.0, 0), |p| (f64::from(p.cpu_usage()) / 100.0, p.memory()));
        let target_figures =
            target.and_then(|pid| system.process(pid)).map(|p| (f64::from(p.cpu_usage()) / 100.0, p.memory()));
        samples.lock().unwrap_or_else(PoisonError::into_inner).push(Sample {
            t,
            target_cpu_cores: target_figures.map(|f| f.0),
            target_rss_bytes: target_figures.map(|f| f.1),
            generator_cpu_cores: gen_cpu,
            generator_rss_bytes: gen_rss,
        });
        watched.generator_peak_cpu_cores = watched.generator_peak_cpu_cores.max(gen_cpu);
        if let Some((cpu, rss)) = target_figures {
            watched.target_peak_cpu_cores = Some(watched.target_peak_cpu_cores.unwrap_or(0.0).max(cpu));
            watched.target_peak_rss_bytes = Some(watched.target_peak_rss_bytes.unwrap_or(0).max(rss));
            let limits = [
                ("cpu", spec.cpu_limit_cores.map(|l| cpu / l)),
                ("memory", spec.memory_limit_mb.map(|mb| rss as f64 / (mb as f64 * 1e6))),
            ];
            for (resource, fraction) in limits {
                let Some(fraction) = fraction else { continue };
                for (level, at) in [("warning", 0.8), ("critical", 0.9)] {
                    let seen = watched.alerts.iter().any(|a| a.resource == resource && a.level == level);
                    if fraction >= at && !seen {
                        watched.alerts.push(Alert { t, level, resource, fraction });
                        if level == "critical" && spec.abort_on_critical {
                            stop.store(true, Ordering::Release);
                        }
                    }
                }
            }
        }
        if let Some(c) = child.lock().unwrap_or_else(PoisonError::into_inner).as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            watched.spawned_exit_code = Some(status.code().unwrap_or(-1));
        }
        if finishing {
            break;
        }
    }
    watched
}

/// `resource-usage.csv`: one row per sample.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("t,target_cpu_cores,target_rss_bytes,generator_cpu_cores,generator_rss_bytes\n");
    for s in samples {
        let opt = |v: Option<String>| v.unwrap_or_default();
        out.push_str(&format!(
            "{:.3},{},{},{:.3},{}\n",
            s.t,
            opt(s.target_cpu_cores.map(|c| format!("{c:.3}"))),
            opt(s.target_rss_bytes.map(|b| b.to_string())),
            s.generator_cpu_cores,
            s.generator_rss_bytes
        ));
    }
    out
}
