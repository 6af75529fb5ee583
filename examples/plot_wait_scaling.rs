//! plot_wait_scaling: turn the `wait_scaling` benchmark's results into the
//! tables of `docs/wait_scaling.md` and the chart `docs/img/wait_scaling.svg`.
//!
//! ```text
//! cargo bench --bench wait_scaling              # measure (about 2 minutes)
//! cargo run --example plot_wait_scaling         # print tables, write target/wait_scaling.svg
//! cargo run --example plot_wait_scaling -- --out docs/img/wait_scaling.svg   # refresh the docs' chart
//! ```
//!
//! What you will see: markdown tables (ns per wait for each backend and fd
//! count, ns per registered fd, registration-change costs) on stdout, and
//! `wrote target/wait_scaling.svg` on stderr. Without results it says to
//! run the benchmark first. The tracked chart in `docs/img/` changes only
//! when `--out` names it.
//!
//! It reads criterion's own files, `target/criterion/**/new/benchmark.json`
//! (which benchmark) and `estimates.json` beside it (the median, in ns), with
//! a few lines of string search rather than a JSON crate: the two fields it
//! needs have a fixed shape, and connlab's only dependencies are the ones its
//! lessons need. The SVG is written by hand for the same reason: a log-log
//! chart is a few dozen lines of `<polyline>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod common;

/// Backends in the order of the docs, with their line colour.
const BACKENDS: [(&str, &str); 3] = [("select", "#d62728"), ("poll", "#ff7f0e"), ("epoll", "#1f77b4")];
const READY: [usize; 2] = [1, 5];

/// Chart geometry, in SVG user units (pixels).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Space left and right of the first and last fd count, in decades.
const X_MARGIN_DECADES: f64 = 0.15;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("plot_wait_scaling.rs"));
    let out = args
        .opt::<PathBuf>(
            "--out FILE",
            "where the SVG goes (default: wait_scaling.svg in the target directory)",
        )
        .unwrap_or_else(|| target.join("wait_scaling.svg"));
    args.finish();

    let criterion_dir = target.join("criterion");
    let mut results = BTreeMap::new();
    collect(&criterion_dir, &mut results);
    let waits = WaitTable::from(&results);
    if waits.counts.is_empty() {
        eprintln!(
            "plot_wait_scaling: no wait_scaling results under {}: run `cargo bench --bench wait_scaling` first",
            criterion_dir.display()
        );
        return ExitCode::FAILURE;
    }

    print!("{}", waits.markdown());
    print!("{}", per_fd_markdown(&waits));
    print!("{}", other_markdown(&results));
    common::exit("plot_wait_scaling", write_svg(&out, &waits))
}

fn write_svg(out: &Path, waits: &WaitTable) -> Result<(), String> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    fs::write(out, svg(waits)).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Every criterion result under `dir`: full id (`wait/epoll/8fds/1ready`) ->
/// median ns.
fn collect(dir: &Path, results: &mut BTreeMap<String, f64>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let id = fs::read_to_string(path.join("benchmark.json"))
                .ok()
                .and_then(|j| string_field(&j, "full_id"));
            let median = fs::read_to_string(path.join("estimates.json"))
                .ok()
                .and_then(|j| median_ns(&j));
            if let (Some(id), Some(median)) = (id, median) {
                results.insert(id, median);
            }
        } else {
            collect(&path, results);
        }
    }
}

/// `"key":"value"` -> value (criterion's ids contain no escaped quotes).
fn string_field(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let len = json.get(start..)?.find('"')?;
    json.get(start..start + len).map(str::to_owned)
}

/// `"median":{..."point_estimate":123.4...}` -> 123.4
fn median_ns(json: &str) -> Option<f64> {
    let median = json.get(json.find("\"median\":")?..)?;
    let key = "\"point_estimate\":";
    let rest = median.get(median.find(key)? + key.len()..)?;
    let end = rest.find([',', '}'])?;
    rest.get(..end)?.trim().parse().ok()
}

/// The `wait/<backend>/<N>fds/<K>ready` results, by fd count.
struct WaitTable {
    counts: Vec<usize>,
    /// (backend, fds, ready) -> median ns
    ns: BTreeMap<(&'static str, usize, usize), f64>,
}

impl WaitTable {
    fn from(results: &BTreeMap<String, f64>) -> WaitTable {
        let mut ns = BTreeMap::new();
        for (id, &t) in results {
            let parts: Vec<&str> = id.split('/').collect();
            let [group, backend, fds, ready] = parts.as_slice() else {
                continue;
            };
            let Some(&(backend, _)) = BACKENDS.iter().find(|(name, _)| name == backend) else {
                continue;
            };
            let fds = fds.strip_suffix("fds").and_then(|n| n.parse().ok());
            let ready = ready.strip_suffix("ready").and_then(|n| n.parse().ok());
            if let (&"wait", Some(fds), Some(ready)) = (group, fds, ready) {
                ns.insert((backend, fds, ready), t);
            }
        }
        let mut counts: Vec<usize> = ns.keys().map(|&(_, n, _)| n).collect();
        counts.sort_unstable();
        counts.dedup();
        WaitTable { counts, ns }
    }

    fn get(&self, backend: &'static str, fds: usize, ready: usize) -> Option<f64> {
        self.ns.get(&(backend, fds, ready)).copied()
    }

    /// (fds, ns) points of one line, in order of fds.
    fn line(&self, backend: &'static str, ready: usize) -> Vec<(usize, f64)> {
        self.counts
            .iter()
            .filter_map(|&n| self.get(backend, n, ready).map(|t| (n, t)))
            .collect()
    }

    fn markdown(&self) -> String {
        let mut md = String::from("### ns per wait (median, timeout 0)\n\n| registered fds |");
        for (b, _) in BACKENDS {
            for k in READY {
                let _ = write!(md, " {b}, {k} ready |");
            }
        }
        md.push_str("\n|---:|");
        md.push_str(&"---:|".repeat(BACKENDS.len() * READY.len()));
        md.push('\n');
        for &n in &self.counts {
            let _ = write!(md, "| {} |", thousands(n as f64));
            for (b, _) in BACKENDS {
                for k in READY {
                    match self.get(b, n, k) {
                        Some(t) => {
                            let _ = write!(md, " {} |", thousands(t));
                        }
                        None => md.push_str(" – |"),
                    }
                }
            }
            md.push('\n');
        }
        md.push('\n');
        md
    }
}

/// The slope of each backend's line (5 ready): what one more registered fd
/// adds to every wait, and epoll's ratio of largest to smallest.
fn per_fd_markdown(waits: &WaitTable) -> String {
    let mut md = String::from(
        "### ns per registered fd (5 ready)\n\n| backend | fds | ns per wait | ns per registered fd | largest / smallest |\n|---|---|---:|---:|---:|\n",
    );
    for (b, _) in BACKENDS {
        let line = waits.line(b, 5);
        let (Some(&(n0, t0)), Some(&(n1, t1))) = (line.first(), line.last()) else {
            continue;
        };
        let slope = if n1 > n0 { (t1 - t0) / (n1 - n0) as f64 } else { 0.0 };
        let _ = writeln!(
            md,
            "| {b} | {} → {} | {} → {} | {slope:.1} | {:.1}× |",
            thousands(n0 as f64),
            thousands(n1 as f64),
            thousands(t0),
            thousands(t1),
            t1 / t0
        );
    }
    md.push('\n');
    md
}

/// Everything else the bench measured (all ready, ctl, churn), as a list.
fn other_markdown(results: &BTreeMap<String, f64>) -> String {
    let mut md =
        String::from("### all ready, registration changes, churn (median ns)\n\n| benchmark | ns |\n|---|---:|\n");
    for (id, &t) in results {
        let interesting = id.ends_with("allready") || id.starts_with("ctl/") || id.starts_with("churn/");
        if interesting {
            let _ = writeln!(md, "| `{id}` | {} |", thousands(t));
        }
    }
    md.push('\n');
    md
}

/// 12345.6 -> "12,346"
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A log-log chart: registered fds across, ns per wait up; one solid line per
/// backend for 5 ready, dashed for 1 ready.
fn svg(waits: &WaitTable) -> String {
    let all: Vec<f64> = waits.ns.values().copied().collect();
    let y_lo = all.iter().copied().fold(f64::INFINITY, f64::min).log10().floor();
    let y_hi = all.iter().copied().fold(0.0, f64::max).log10().ceil().max(y_lo + 1.0);
    // Across: from the fewest to the most fds measured, with a margin.
    let x_lo = (*waits.counts.first().unwrap_or(&1) as f64).log10() - X_MARGIN_DECADES;
    let x_hi = (*waits.counts.last().unwrap_or(&10) as f64).log10() + X_MARGIN_DECADES;
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |fds: f64| LEFT + (fds.log10() - x_lo) / (x_hi - x_lo) * plot_w;
    let y = |ns: f64| TOP + (y_hi - ns.log10()) / (y_hi - y_lo) * plot_h;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">One wait (timeout 0) vs registered fds — wait_scaling</text>"#,
        LEFT + plot_w / 2.0
    );
    // A grid line at each measured fd count, one per decade of time.
    for &n in &waits.counts {
        let px = x(n as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0,
            thousands(n as f64)
        );
    }
    for e in (y_lo as i32)..=(y_hi as i32) {
        let py = y(10f64.powi(e));
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            common::show_ns(10f64.powi(e))
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">registered fds (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">time per wait (log scale)</text>"#,
        TOP + plot_h / 2.0
    );
    // One polyline per backend and ready count, with dots on the measurements.
    let mut legend_y = TOP + 10.0;
    for (b, colour) in BACKENDS {
        for k in READY {
            let line = waits.line(b, k);
            if line.is_empty() {
                continue;
            }
            let dash = if k == 1 { r#" stroke-dasharray="5 4""# } else { "" };
            let points: Vec<String> = line
                .iter()
                .map(|&(n, t)| format!("{:.1},{:.1}", x(n as f64), y(t)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                points.join(" ")
            );
            for &(n, t) in &line {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                    x(n as f64),
                    y(t)
                );
            }
            let lx = LEFT + plot_w + 12.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{b}, {k} ready</text>"#,
                lx + 24.0,
                lx + 30.0,
                legend_y + 4.0
            );
            legend_y += 20.0;
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_criterion_writes() {
        let bench =
            r#"{"group_id":"wait/epoll","function_id":"8fds","value_str":"1ready","full_id":"wait/epoll/8fds/1ready"}"#;
        assert_eq!(
            string_field(bench, "full_id").as_deref(),
            Some("wait/epoll/8fds/1ready")
        );
        let est = r#"{"mean":{"point_estimate":9.0},"median":{"confidence_interval":{"lower_bound":1.0},"point_estimate":123.5,"standard_error":2.0}}"#;
        assert_eq!(median_ns(est), Some(123.5));
        assert_eq!(median_ns("{}"), None);
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(12.0), "12");
    }
}
