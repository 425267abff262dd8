//! The run's graphs, drawn with plotters as SVG (inlined in `report.html`) and PNG (for
//! slides and chat): offered vs achieved, latency percentiles per second, responses by
//! status, and the watched CPU and memory with their 80% and 90% lines.
//!
//! Text is laid out with ab_glyph (pure Rust), from a TrueType font found on the machine
//! (`LOAD_FONT`, else DejaVu Sans or Liberation Sans where Debian puts them). Without one the
//! graphs are left out and the run says why; no figure is lost, since every series is also
//! in `timeseries.csv` and `resource-usage.csv`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::run::Second;
use crate::watch::{Sample, WatchSpec};

/// Where a sans-serif TrueType font is looked for, after `LOAD_FONT`.
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
];

/// Registers a font with plotters once per process; `Err` says what was tried.
fn font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let wanted: Vec<PathBuf> = std::env::var_os("LOAD_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONTS.iter().map(PathBuf::from))
            .collect();
        for path in &wanted {
            let Ok(bytes) = std::fs::read(path) else { continue };
            // Registered fonts live as long as the process: leaked once, on purpose.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
        let tried: Vec<String> = wanted.iter().map(|p| p.display().to_string()).collect();
        Err(format!("no TrueType font to draw the graphs with (set LOAD_FONT; tried {})", tried.join(", ")))
    })
    .clone()
}

/// One line of a line chart.
struct Line {
    name: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// A line chart: its file name, title, axis names, lines and horizontal marks (limits).
struct LineChart {
    file: &'static str,
    title: &'static str,
    y_desc: &'static str,
    lines: Vec<Line>,
    marks: Vec<(String, f64, RGBColor)>,
}

/// A bar chart of named counts.
struct BarChart {
    file: &'static str,
    title: &'static str,
    bars: Vec<(String, u64)>,
}

enum Chart {
    Lines(LineChart),
    Bars(BarChart),
}

impl Chart {
    fn file(&self) -> &'static str {
        match self {
            Chart::Lines(c) => c.file,
            Chart::Bars(c) => c.file,
        }
    }
}

const SIZE: (u32, u32) = (900, 360);
const OFFERED: RGBColor = RGBColor(0x55, 0x55, 0x55);
const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const GREEN: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const ORANGE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const RED_: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const PURPLE: RGBColor = RGBColor(0x94, 0x67, 0xbd);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn draw_lines<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &LineChart) -> Result<(), String> {
    area.fill(&WHITE).map_err(err)?;
    let x_max = c.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).fold(1.0_f64, f64::max);
    let y_top = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(c.marks.iter().map(|m| m.1))
        .fold(0.0_f64, f64::max);
    let y_max = if y_top > 0.0 { y_top * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(c.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart.configure_mesh().x_desc("seconds").y_desc(c.y_desc).label_style(("sans-serif", 12)).draw().map_err(err)?;
    for line in &c.lines {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(line.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    for (name, y, color) in &c.marks {
        let color = *color;
        chart
            .draw_series(LineSeries::new([(0.0, *y), (x_max, *y)], color.stroke_width(1)))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    area.present().map_err(err)
}

fn draw_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &BarChart) -> Result<(), String> {
    area.fill(&WHITE).map_err(err)?;
    let n = c.bars.len().max(1) as u32;
    let top = c.bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(c.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0..top + top / 10 + 1)
        .map_err(err)?;
    let names: Vec<String> = c.bars.iter().map(|b| b.0.clone()).collect();
    let label = move |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(c.bars.len().max(1))
        .x_label_formatter(&label)
        .y_desc("iterations")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let bars = c.bars.iter().enumerate().map(|(i, b)| (i as u32, b.1));
    chart.draw_series(Histogram::vertical(&chart).style(BLUE.filled()).margin(8).data(bars)).map_err(err)?;
    area.present().map_err(err)
}

fn draw<DB: DrawingBackend>(area: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    match chart {
        Chart::Lines(c) => draw_lines(&area, c),
        Chart::Bars(c) => draw_bars(&area, c),
    }
}

/// What the graphs are drawn from.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The series, one entry per second.
    pub seconds: &'a [Second],
    /// Ended iterations by status name.
    pub statuses: Vec<(String, u64)>,
    /// The watch's samples.
    pub samples: &'a [Sample],
    /// The watch's limits, if any.
    pub watch: Option<&'a WatchSpec>,
}

fn charts(inputs: &Inputs<'_>) -> Vec<Chart> {
    let per_second = |f: &dyn Fn(&Second) -> f64| -> Vec<(f64, f64)> {
        inputs.seconds.iter().enumerate().map(|(i, s)| (i as f64 + 0.5, f(s))).collect()
    };
    let line = |name, color, points| Line { name, color, points };
    let mut charts = vec![
        Chart::Lines(LineChart {
            file: "throughput",
            title: "Offered vs achieved (iterations per second)",
            y_desc: "iterations/s",
            lines: vec![
                line("offered", OFFERED, per_second(&|s| s.offered as f64)),
                line("started", BLUE, per_second(&|s| s.started as f64)),
                line("completed", GREEN, per_second(&|s| s.completed as f64)),
                line("missed", RED_, per_second(&|s| s.missed as f64)),
            ],
            marks: Vec::new(),
        }),
        Chart::Lines(LineChart {
            file: "latency",
            title: "Latency from the due time, per second",
            y_desc: "ms",
            lines: vec![
                line("p50", GREEN, per_second(&|s| s.latency_us.p50 as f64 / 1e3)),
                line("p90", BLUE, per_second(&|s| s.latency_us.p90 as f64 / 1e3)),
                line("p99", ORANGE, per_second(&|s| s.latency_us.p99 as f64 / 1e3)),
                line("max", RED_, per_second(&|s| s.latency_us.max as f64 / 1e3)),
            ],
            marks: Vec::new(),
        }),
        Chart::Bars(BarChart { file: "status", title: "Responses by status", bars: inputs.statuses.clone() }),
    ];
    let samples = inputs.samples;
    let series = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples.iter().filter_map(|s| f(s).map(|v| (s.t, v))).collect()
    };
    let marks = |limit: Option<f64>| -> Vec<(String, f64, RGBColor)> {
        limit.map_or_else(Vec::new, |l| {
            vec![("warning (80%)".to_owned(), 0.8 * l, ORANGE), ("critical (90%)".to_owned(), 0.9 * l, RED_)]
        })
    };
    let mut cpu = vec![line("generator", PURPLE, series(&|s| Some(s.generator_cpu_cores)))];
    let mut rss = vec![line("generator", PURPLE, series(&|s| Some(s.generator_rss_bytes as f64 / 1e6)))];
    if samples.iter().any(|s| s.target_cpu_cores.is_some()) {
        cpu.insert(0, line("target", BLUE, series(&|s| s.target_cpu_cores)));
        rss.insert(0, line("target", BLUE, series(&|s| s.target_rss_bytes.map(|b| b as f64 / 1e6))));
    }
    charts.push(Chart::Lines(LineChart {
        file: "cpu",
        title: "CPU (cores)",
        y_desc: "cores",
        lines: cpu,
        marks: marks(inputs.watch.and_then(|w| w.cpu_limit_cores)),
    }));
    charts.push(Chart::Lines(LineChart {
        file: "memory",
        title: "Resident memory (MB)",
        y_desc: "MB",
        lines: rss,
        marks: marks(inputs.watch.and_then(|w| w.memory_limit_mb.map(|m| m as f64))),
    }));
    charts
}

/// One drawn graph.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Its name (`throughput`, `latency`, `status`, `cpu`, `memory`).
    pub name: &'static str,
    /// The SVG document.
    pub svg: String,
}

/// Draws every graph into `dir` as `NAME.svg` and `NAME.png`, and returns the SVGs.
pub fn write(inputs: &Inputs<'_>, dir: &Path) -> Result<Vec<Graph>, String> {
    font()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut graphs = Vec::new();
    for chart in charts(inputs) {
        let name = chart.file();
        let mut svg = String::new();
        draw(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(), &chart)?;
        let path = dir.join(format!("{name}.svg"));
        std::fs::write(&path, &svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let png = dir.join(format!("{name}.png"));
        draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), &chart)
            .map_err(|e| format!("cannot draw {}: {e}", png.display()))?;
        graphs.push(Graph { name, svg });
    }
    Ok(graphs)
}
