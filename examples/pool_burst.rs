//! pool_burst: a burst of requests against a small pool, watched as it
//! saturates, queues and drains; then the same burst with an acquire timeout
//! too short to survive it; then a leak (the story's Q21).
//!
//! ```text
//! cargo run --example pool_burst
//! cargo run --example pool_burst -- --requests 40 --max 4 --work-ms 50
//! cargo run --example pool_burst -- --url postgres://me:pw@127.0.0.1:5432/db --backend poll
//! cargo run --example pool_burst -- --out docs/img      # refresh the docs' figure
//! ```
//!
//! Where it connects: `--url`, else `DATABASE_URL`, else the `PG*`
//! variables if any is set, else a throwaway local cluster it starts (and
//! removes) itself.
//!
//! What you will see:
//!
//! 1. **Burst.** N requests arrive at once; each acquires a connection, runs
//!    `SELECT pg_sleep(work)` and releases it. A timeline sampled every few
//!    milliseconds shows `active` jump to `max`, `waiting` jump to N - max,
//!    then `waiting` fall by `max` every `work` ms as released connections
//!    are handed straight to the next waiter (FIFO), and finally `idle`
//!    = max: the same few connections served everyone (`created` stays at
//!    `max`). The timeline is also written as CSV and as an SVG chart.
//! 2. **Timeout.** The same burst with a 2.5 × work acquire timeout: the
//!    first few rounds are served, the requests queued behind them give up
//!    with `pool acquire timed out after …` instead of waiting forever.
//! 3. **Leak.** One handler acquires and never returns (it hangs). With a
//!    leak threshold set, the pool reports it on stderr with the file and
//!    line of the `acquire()` and how long it has been held; the other
//!    requests squeeze through the remaining slot.
//!
//! Check it against the server while it runs: `SELECT pid, state FROM
//! pg_stat_activity` shows `max` backends, idle between queries.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use connlab::pg::config::Config as PgConfig;
use connlab::poller::Backend;
use connlab::pool::pg::PgManager;
use connlab::pool::{Config, Pool, PoolError, Stats, Validation};
use connlab::reactor;

use common::show;

mod common;

/// How often the timeline samples the pool.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

struct Args {
    requests: usize,
    max: usize,
    work: Duration,
    url: Option<String>,
    backend: Backend,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("pool_burst.rs"));
    let parsed = Args {
        requests: args.value("--requests N", 24, "requests in the burst, 1 to 10000 (default 24)"),
        max: args.value("--max K", 4, "the pool's max_size, 1 or more (default 4)"),
        work: Duration::from_millis(args.value(
            "--work-ms MS",
            50,
            "each request's pg_sleep, at most 60000 (default 50)",
        )),
        url: args.opt(
            "--url URL",
            "a PostgreSQL server (default: DATABASE_URL, PG*, or a throwaway one)",
        ),
        backend: args.backend(),
        out: args.value(
            "--out DIR",
            PathBuf::from("target/pool_burst"),
            "where the CSV and SVG go (default target/pool_burst)",
        ),
    };
    args.check(
        parsed.max > 0 && parsed.requests > 0,
        "--max and --requests must be at least 1",
    );
    // Each request is a task and a wait of `work`: keep a typo from holding
    // the program for hours.
    args.check(parsed.requests <= 10_000, "--requests: at most 10000");
    args.check(
        parsed.work <= Duration::from_secs(60),
        "--work-ms: at most 60000 (a minute)",
    );
    args.finish();
    parsed
}

/// One point of the timeline.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    idle: usize,
    active: usize,
    waiting: usize,
}

/// One request: acquire, "work" on the server, release (by drop).
async fn request(pool: Pool<PgManager>, work: Duration) -> Result<(), PoolError> {
    let mut conn = pool.acquire().await?;
    let sql = format!("SELECT pg_sleep({})", work.as_secs_f64());
    if let Err(e) = conn.simple_query(&sql).await {
        eprintln!("query failed: {e}");
    }
    Ok(())
}

/// Spawn `n` requests at once, sample the pool until they are all done (and
/// a little after), and return the timeline and the results.
async fn burst(pool: &Pool<PgManager>, n: usize, work: Duration) -> (Vec<Sample>, Vec<Result<(), PoolError>>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..n).map(|_| reactor::spawn(request(pool.clone(), work))).collect();
    let done = Rc::new(RefCell::new(Vec::new()));
    let collector = {
        let done = done.clone();
        reactor::spawn(async move {
            for task in tasks {
                let result = task.await;
                done.borrow_mut().push(result);
            }
        })
    };
    let mut samples = Vec::new();
    let mut tail = 0;
    while tail < 5 {
        let s = pool.stats();
        samples.push(Sample {
            at: started.elapsed(),
            idle: s.idle,
            active: s.active,
            waiting: s.waiting,
        });
        if collector.is_finished() {
            tail += 1;
        }
        reactor::sleep(SAMPLE_EVERY).await;
    }
    collector.await;
    let results = done.take();
    (samples, results)
}

fn print_timeline(samples: &[Sample], max: usize) {
    println!("   t(ms)  idle  active  waiting   [#] active  [.] waiting  [-] idle");
    let mut last = None;
    for s in samples {
        let key = (s.idle, s.active, s.waiting);
        // Print only changes, so a 50-row timeline reads as its events.
        if last == Some(key) {
            continue;
        }
        last = Some(key);
        let bar = format!(
            "{}{}{}",
            "#".repeat(s.active),
            "-".repeat(s.idle),
            ".".repeat(s.waiting)
        );
        println!(
            "{:>8.1}  {:>4}  {:>3}/{:<3} {:>7}   {bar}",
            s.at.as_secs_f64() * 1e3,
            s.idle,
            s.active,
            max,
            s.waiting
        );
    }
}

fn write_csv(samples: &[Sample]) -> String {
    let mut csv = String::from("t_ms,idle,active,waiting\n");
    for s in samples {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{}",
            s.at.as_secs_f64() * 1e3,
            s.idle,
            s.active,
            s.waiting
        );
    }
    csv
}

/// A small hand-written SVG: three step lines over time. No plotting crate:
/// the chart is 40 lines of `format!`.
fn write_svg(samples: &[Sample], max: usize, requests: usize) -> String {
    const W: f64 = 720.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 50.0;
    const BOTTOM: f64 = 40.0;
    const TOP: f64 = 40.0;
    let t_max = samples.last().map_or(1.0, |s| s.at.as_secs_f64() * 1e3).max(1.0);
    let y_max = requests.max(max) as f64;
    let x = |t: f64| LEFT + t / t_max * (W - LEFT - 20.0);
    let y = |v: f64| H - BOTTOM - v / y_max * (H - BOTTOM - TOP);
    let line = |pick: &dyn Fn(&Sample) -> usize, color: &str| {
        let mut points = String::new();
        let mut prev: Option<f64> = None;
        for s in samples {
            let (px, py) = (x(s.at.as_secs_f64() * 1e3), y(pick(s) as f64));
            if let Some(prev_y) = prev {
                let _ = write!(points, "{px:.1},{prev_y:.1} ");
            }
            let _ = write!(points, "{px:.1},{py:.1} ");
            prev = Some(py);
        }
        format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{points}\"/>\n")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"monospace\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"20\">pool_burst: {requests} requests, max_size {max} (generated by examples/pool_burst.rs)</text>\n\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t_max:.0} ms</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y_max}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max}</text>\n\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ccc\" stroke-dasharray=\"4\"/>\n",
        H - BOTTOM,
        W - 20.0,
        H - BOTTOM,
        H - BOTTOM,
        W - 20.0,
        H - BOTTOM + 15.0,
        LEFT - 5.0,
        y(y_max) + 4.0,
        LEFT - 5.0,
        y(max as f64) + 4.0,
        y(max as f64),
        W - 20.0,
        y(max as f64),
    );
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text><text x=\"{LEFT}\" y=\"{}\">0 ms</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time since the burst started</text>",
        LEFT - 5.0,
        H - BOTTOM + 4.0,
        H - BOTTOM + 15.0,
        (LEFT + W - 20.0) / 2.0,
        H - BOTTOM + 30.0,
    );
    svg.push_str(&line(&|s| s.active, "#1f77b4"));
    svg.push_str(&line(&|s| s.waiting, "#ff7f0e"));
    svg.push_str(&line(&|s| s.idle, "#2ca02c"));
    let legend = [("active", "#1f77b4"), ("waiting", "#ff7f0e"), ("idle", "#2ca02c")];
    for (i, (name, color)) in legend.iter().enumerate() {
        let lx = W - 300.0 + i as f64 * 90.0;
        let _ = writeln!(
            svg,
            "<rect x=\"{lx}\" y=\"30\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"40\">{name}</text>",
            lx + 16.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn summarize(label: &str, results: &[Result<(), PoolError>], stats: &Stats) {
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!("{label}: {ok} served, {} failed | pool: {stats}", results.len() - ok);
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        println!("  first error: {e}");
    }
}

async fn run(args: &Args, pg: PgConfig) -> Result<(), String> {
    let base = Config {
        max_size: args.max,
        validation: Validation::None,
        ..Config::default()
    };

    println!(
        "\n== 1. A burst of {} requests, max_size {}, {} of work each ==",
        args.requests,
        args.max,
        show(args.work)
    );
    let pool = Pool::open(PgManager::new(pg.clone()), base.clone())
        .await
        .map_err(|e| e.to_string())?;
    let (samples, results) = burst(&pool, args.requests, args.work).await;
    print_timeline(&samples, args.max);
    summarize("burst", &results, &pool.stats());
    std::fs::create_dir_all(&args.out).map_err(|e| format!("create {}: {e}", args.out.display()))?;
    let csv_path = args.out.join("pool_burst.csv");
    let svg_path = args.out.join("pool_burst.svg");
    std::fs::write(&csv_path, write_csv(&samples)).map_err(|e| format!("write {}: {e}", csv_path.display()))?;
    std::fs::write(&svg_path, write_svg(&samples, args.max, args.requests))
        .map_err(|e| format!("write {}: {e}", svg_path.display()))?;
    println!("timeline written to {} and {}", csv_path.display(), svg_path.display());
    drop(pool);

    let short = args.work * 5 / 2;
    println!("\n== 2. The same burst with an acquire timeout of {} ==", show(short));
    let pool = Pool::open(
        PgManager::new(pg.clone()),
        Config {
            acquire_timeout: short,
            ..base.clone()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let (samples, results) = burst(&pool, args.requests, args.work).await;
    print_timeline(&samples, args.max);
    summarize("short timeout", &results, &pool.stats());
    drop(pool);

    let threshold = args.work * 3;
    println!(
        "\n== 3. A leak: one handler never returns its connection (leak threshold {}) ==",
        show(threshold)
    );
    let config = Config {
        max_size: 2,
        leak_threshold: Some(threshold),
        maintenance_interval: args.work,
        ..base
    };
    let pool = Pool::open(PgManager::new(pg), config)
        .await
        .map_err(|e| e.to_string())?;
    let forgetful = {
        let pool = pool.clone();
        // A handler that hangs while holding its connection: in Rust, a
        // leak is rarely a missing release (Drop does it), it is a holder
        // that never finishes, or a connection parked in a long-lived struct.
        reactor::spawn(async move {
            let _conn = pool.acquire().await;
            reactor::sleep(Duration::from_secs(3600)).await;
        })
    };
    let (_, results) = burst(&pool, 6, args.work).await;
    reactor::sleep(threshold).await;
    summarize("with a leak", &results, &pool.stats());
    println!("  one slot stays active with no live request behind it: that is the leak");
    for report in pool.leak_reports() {
        println!("  leak report: {report}");
    }
    forgetful.abort();
    Ok(())
}

fn main() -> ExitCode {
    let args = parse_args();
    let result = common::choose_server(args.url.clone()).and_then(|(pg, _cluster)| {
        reactor::block_on(args.backend, run(&args, pg))
            .map_err(|e| format!("the reactor failed: {e}"))
            .and_then(|r| r)
    });
    common::exit("pool_burst", result)
}
