//! Native benchmarks of the engine at a million licenses (`cargo bench --bench engine`); run by
//! `scripts/bench.sh`, which runs the same workloads through the wasm package and compares.
//!
//! `-- --quick` runs the reduced CI sizes; `-- --out FILE` writes the figures as JSON (the
//! schema `scripts/bench/report.mjs` reads). Progress goes to stderr.

mod alloc;
mod fleet;
mod workloads;
mod world;

use std::rc::Rc;
use std::time::Instant;

use serde_json::{json, Value};
use world::{Org, Pages, Scale};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)).cloned();
    let scale = if quick { Scale::QUICK } else { Scale::FULL };
    let reps = if quick { 3 } else { 5 };

    eprintln!("native: building {} assignments as Apple pages", scale.assignments());
    let pages = Rc::new(Pages::build(&Org::district(&scale)));
    let page_bytes: usize = pages.assets.iter().chain(&pages.assignments).chain(&pages.users).map(String::len).sum();

    // `--only NAME` (memory, ingest, plan, requests, fleet) runs one part, e.g. under a profiler.
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let wanted = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let mut report = json!({"runtime": "native", "scale": scale_json(&scale), "pageBytes": page_bytes});
    if wanted("memory") {
        eprintln!("native: memory");
        report["memory"] = workloads::memory(&scale, &pages);
    }
    if wanted("ingest") {
        eprintln!("native: full-sync ingest ×{reps}");
        report["ingest"] = workloads::ingest(&pages, reps);
    }
    let mut requests = Vec::new();
    if wanted("plan") {
        eprintln!("native: planning at scale");
        let (plan, input, scope_requests) = workloads::planning_and_inputs(&scale, &pages);
        report["plan"] = plan;
        report["input"] = input;
        requests = scope_requests;
    }
    drop(pages);
    if wanted("requests") {
        eprintln!("native: requests for standard workloads");
        requests.splice(0..0, workloads::request_counts());
    }
    report["requests"] = requests.into();
    if wanted("fleet") {
        let sizes: &[usize] = if quick { &[1, 100] } else { &[1, 1_000, 10_000] };
        report["fleet"] = sizes
            .iter()
            .map(|&accounts| {
                eprintln!("native: one input on an engine of {accounts} accounts");
                fleet::inputs(accounts)
            })
            .collect::<Vec<_>>()
            .into();
        let engines = sizes[sizes.len() - 1];
        eprintln!("native: the same inputs on {engines} engines of one account each");
        report["fleetAcrossEngines"] = fleet::inputs_across_engines(engines);
    }
    let text = serde_json::to_string_pretty(&report).expect("the report serializes");
    match out {
        Some(path) => std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {path}: {e}")),
        None => println!("{text}"),
    }
}

fn scale_json(scale: &Scale) -> Value {
    json!({"devices": scale.devices, "apps": scale.apps, "assignments": scale.assignments(), "users": scale.users,
           "pageSize": scale.page_size, "scopeChange": scale.scope_change})
}

/// Seconds `f` took.
pub fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// CPU seconds this thread has run (Linux `/proc/thread-self/schedstat`), if known: unlike wall
/// time, it does not grow when other processes take the cores.
fn thread_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse::<f64>().ok().map(|ns| ns / 1e9)
}

/// Wall and CPU seconds of `f`, as `{"wall": s, "cpu": s}`.
pub fn measured(f: impl FnOnce()) -> Value {
    let cpu = thread_cpu();
    let wall = timed(f);
    json!({"wall": wall, "cpu": thread_cpu().zip(cpu).map(|(after, before)| after - before)})
}

/// The medians of `{"wall", "cpu"}` measurements.
pub fn medians(runs: &[Value]) -> Value {
    let median = |key: &str| {
        let mut values: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        (!values.is_empty()).then(|| summary(&mut values)["median"].clone())
    };
    json!({"wall": median("wall"), "cpu": median("cpu"), "runs": runs})
}

/// Median and 99th percentile (nearest rank) of samples.
pub fn summary(samples: &mut [f64]) -> Value {
    samples.sort_by(f64::total_cmp);
    let rank = |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    json!({"median": rank(0.5), "p99": rank(0.99), "min": samples[0], "samples": samples.len()})
}
