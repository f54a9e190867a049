//! Runs the same workloads on our schedulers, tokio and smol, in one process, and prints
//! median, min and max per workload and runtime with the ratio to tokio.
//!
//! ```text
//! cargo run --release -p bench -- [WORKLOAD...] [--runtime NAME...] [--samples N]
//!                                 [--pin-ct CPU] [--json FILE] [--svg FILE]
//! ```
//!
//! Every runtime runs with 2 worker threads unless its name ends in `-ct` (one thread). With
//! `--pin-ct CPU`, the `-ct` runtimes' samples of the scheduling workloads run on that CPU
//! (see `pin.rs`). A
//! workload's samples are taken in rounds, one sample of every runtime per round, each right
//! after an unrecorded warm-up run on the same runtime (see [`sample_in_rounds`]). Progress
//! goes to stderr; the table to stdout.

mod alloc;
mod exec;
mod floor;
mod pin;
mod report;
mod workloads;

use std::process::ExitCode;

use exec::{Exec, Ours, Smol, SmolCt, Tokio};
use facade::Builder;
use report::Record;
use workloads::{Sample, WORKLOADS};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// Every runtime the harness knows, in table order.
const RUNTIMES: &[&str] = &[
    "fifo",
    "fifo-ct",
    "worksteal",
    "priority",
    "tokio-mt",
    "tokio-ct",
    "smol",
    "smol-ct",
    // The floor: async-task and a queue, nothing else (scheduling workloads only).
    "floor-mt",
    "floor-ct",
    // Variants for measuring design choices; not in the default set.
    "worksteal-nolifo",
    "worksteal-nowd",
    "fifo-ct-nowd",
];

/// The runtimes run when `--runtime` is not given.
const DEFAULT_RUNTIMES: usize = 10;

/// Worker threads of the multi-threaded runtimes.
const THREADS: usize = 2;

fn ours(builder: facade::Builder, workers: usize) -> Ours {
    Ours(
        builder
            .worker_threads(workers)
            .build()
            .expect("build our runtime"),
    )
}

fn tokio_mt() -> Tokio {
    Tokio(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .enable_all()
            .build()
            .expect("build tokio"),
        true,
    )
}

fn tokio_ct() -> Tokio {
    Tokio(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("build tokio"),
        false,
    )
}

/// Takes one sample of a workload on one runtime per call; `None` if the runtime cannot run it
/// (known at the first call).
type Sampler = Box<dyn FnMut() -> Option<Sample>>;

/// The sampler of `workload` on the runtime `make` builds: a fresh runtime per sample for the
/// workloads that need one; otherwise one runtime for all samples, each sample taken right
/// after an unrecorded one. In rounds the runtime sat idle while the others ran, its workers
/// parked and its memory out of cache; the warm-up makes each sample what it was when a
/// runtime's samples ran back to back: the workload in a steady state, not a wake-up.
fn sampler<E: Exec + 'static>(make: impl Fn() -> E + 'static, workload: &str) -> Sampler {
    let w = workload.to_string();
    if workloads::fresh_runtime_per_sample(workload) {
        return Box::new(move || workloads::run(&make(), &w));
    }
    let e = make();
    Box::new(move || {
        workloads::run(&e, &w)?;
        workloads::run(&e, &w)
    })
}

fn sampler_of(runtime: &str, workload: &str) -> Sampler {
    let w = workload;
    match runtime {
        "fifo" => sampler(|| ours(Builder::new().fifo(), THREADS), w),
        "fifo-ct" => sampler(|| ours(Builder::new().fifo(), 0), w),
        "worksteal" => sampler(|| ours(Builder::new().work_stealing(), THREADS), w),
        "priority" => sampler(|| ours(Builder::new().priority_scheduler(), THREADS), w),
        "worksteal-nolifo" => sampler(
            || {
                ours(
                    Builder::new().work_stealing_with(
                        facade::sched::worksteal::WorkStealingConfig::default()
                            .with_lifo_slot(false),
                    ),
                    THREADS,
                )
            },
            w,
        ),
        // The watchdog off, to measure what it costs.
        "worksteal-nowd" => sampler(
            || ours(Builder::new().work_stealing().disable_watchdog(), THREADS),
            w,
        ),
        "fifo-ct-nowd" => sampler(|| ours(Builder::new().fifo().disable_watchdog(), 0), w),
        "tokio-mt" => sampler(tokio_mt, w),
        "tokio-ct" => sampler(tokio_ct, w),
        "smol" => sampler(|| Smol::new(THREADS), w),
        "smol-ct" => sampler(|| SmolCt, w),
        "floor-mt" => sampler(|| floor::FloorMt::new(THREADS), w),
        "floor-ct" => sampler(|| floor::FloorCt, w),
        other => unreachable!("unchecked runtime {other}"),
    }
}

/// `samples` samples of `workload` on each of `runtimes`, taken in rounds: each round takes
/// one sample from every runtime (after its warm-up: see [`sampler`]), starting one runtime
/// further along each time. A slow spell of a shared machine (seconds long here) then falls on
/// every runtime's samples alike, rather than on a whole row of one runtime's, and the medians'
/// ratios hold. Runtimes that cannot run the workload are left out.
fn sample_in_rounds(
    workload: &str,
    runtimes: &[String],
    samples: usize,
    pin: Option<&pin::Pin>,
) -> Vec<(String, Vec<Sample>)> {
    let pinned = |r: &str| pin.filter(|_| r.ends_with("-ct") && workloads::is_scheduling(workload));
    let mut cells: Vec<(String, Option<Sampler>, Vec<Sample>)> = runtimes
        .iter()
        .map(|r| {
            (
                r.clone(),
                Some(sampler_of(r, workload)),
                Vec::with_capacity(samples),
            )
        })
        .collect();
    let n = cells.len();
    for round in 0..samples {
        for i in 0..n {
            let (r, sampler, out) = &mut cells[(round + i) % n];
            let Some(take) = sampler else { continue };
            let sample = match pinned(r) {
                Some(p) => p.run(&mut *take),
                None => take(),
            };
            match sample {
                Some(x) => out.push(x),
                // Not supported (the first sample says so).
                None if out.is_empty() => *sampler = None,
                None => unreachable!("{workload} on {r}: ran before, not supported now"),
            }
        }
    }
    cells
        .into_iter()
        .filter_map(|(r, _, out)| {
            if out.is_empty() {
                eprintln!("{workload} on {r}: not supported");
                return None;
            }
            Some((r, out))
        })
        .collect()
}

struct Args {
    workloads: Vec<String>,
    runtimes: Vec<String>,
    samples: usize,
    pin: Option<pin::Pin>,
    json: Option<String>,
    svg: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        workloads: Vec::new(),
        runtimes: Vec::new(),
        samples: 10,
        pin: None,
        json: None,
        svg: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--runtime" => a
                .runtimes
                .extend(value("--runtime")?.split(',').map(str::to_string)),
            "--samples" => {
                a.samples = value("--samples")?
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--samples needs a positive whole number")?
            }
            "--pin-ct" => {
                let cpu = value("--pin-ct")?
                    .parse()
                    .map_err(|_| "--pin-ct needs a CPU number (0, 1, ...)")?;
                a.pin = Some(pin::Pin::new(cpu)?);
            }
            "--json" => a.json = Some(value("--json")?),
            "--svg" => a.svg = Some(value("--svg")?),
            "-h" | "--help" => {
                return Err(format!(
                    "usage: bench [WORKLOAD...] [--runtime NAME...] [--samples N] [--pin-ct CPU] [--json FILE] [--svg FILE]\n\
                     workloads: {}\nruntimes: {}",
                    WORKLOADS.join(", "),
                    RUNTIMES.join(", ")
                ));
            }
            w if w.starts_with('-') => return Err(format!("unknown option {w}; try --help")),
            w => a.workloads.push(w.to_string()),
        }
    }
    for w in &a.workloads {
        if !WORKLOADS.contains(&w.as_str()) {
            return Err(format!(
                "unknown workload {w:?}; valid: {}",
                WORKLOADS.join(", ")
            ));
        }
    }
    for r in &a.runtimes {
        if !RUNTIMES.contains(&r.as_str()) {
            return Err(format!(
                "unknown runtime {r:?}; valid: {}",
                RUNTIMES.join(", ")
            ));
        }
    }
    if a.workloads.is_empty() {
        a.workloads = WORKLOADS.iter().map(|s| s.to_string()).collect();
    }
    if a.runtimes.is_empty() {
        a.runtimes = RUNTIMES[..DEFAULT_RUNTIMES]
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // glibc's malloc skips its locks while a process has never had a second thread, and never
    // again once it has. Without this, whichever single-threaded runtime happens to run first
    // would measure with cheaper allocation than the others (fifo-ct spawn_many_local: 1.38 ms
    // alone vs 1.52 ms after any other thread existed).
    std::thread::spawn(|| {})
        .join()
        .expect("a thread that does nothing");
    let mut records = Vec::new();
    for w in &args.workloads {
        let samples = if w == "idle_memory" {
            args.samples.min(3)
        } else if w.starts_with("latency") {
            1 // each sample runs for BENCH_LATENCY_SECS (5 s)
        } else {
            args.samples
        };
        eprintln!(
            "{w}: {samples} rounds over {} runtimes",
            args.runtimes.len()
        );
        for (r, s) in sample_in_rounds(w, &args.runtimes, samples, args.pin.as_ref()) {
            let mut extra: Vec<(&'static str, f64)> = Vec::new();
            if let Some(first) = s.first() {
                for (i, (k, _)) in first.extra.iter().enumerate() {
                    let mut v: Vec<f64> = s.iter().map(|x| x.extra[i].1).collect();
                    v.sort_by(f64::total_cmp);
                    extra.push((k, v[v.len() / 2]));
                }
            }
            let rec = Record {
                workload: w.clone(),
                runtime: r,
                samples: s.into_iter().map(|x| x.elapsed).collect(),
                extra,
            };
            eprintln!("  {}: median {:?}", rec.runtime, rec.median());
            records.push(rec);
        }
    }
    let pinned = match &args.pin {
        Some(p) => format!(" (pinned to CPU {} on the scheduling workloads)", p.cpu()),
        None => String::new(),
    };
    println!(
        "{THREADS} worker threads (-ct runtimes: one{pinned}); {} samples per cell; \
         ratio = median / tokio's median (idle_memory: bytes per task)\n",
        args.samples
    );
    print!("{}", report::table(&records));
    for (path, text) in [
        (&args.json, report::json(&records)),
        (&args.svg, report::svg(&records)),
    ] {
        if let Some(path) = path {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("cannot write {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
