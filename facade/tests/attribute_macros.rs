//! `#[facade::test]` and `#[facade::main]` as a user writes them, and their compile errors
//! (trybuild, `tests/ui`).

use std::time::Duration;

#[facade::test]
async fn without_arguments_runs_on_a_current_thread_runtime() {
    let here = std::thread::current().id();
    // Current-thread: a spawned task runs on this very thread.
    let there = facade::spawn(async { std::thread::current().id() })
        .await
        .unwrap();
    if std::env::var_os("RUNTIME_WORKER_THREADS").is_none() {
        assert_eq!(here, there);
    }
}

#[facade::test(scheduler = "priority", worker_threads = 2)]
async fn with_arguments() -> std::io::Result<()> {
    let expected = std::env::var("RUNTIME_SCHEDULER").unwrap_or_else(|_| "priority".into());
    assert_eq!(scheduler_name(), expected);
    let n = facade::spawn(async { 3 }).await?;
    assert_eq!(n, 3);
    Ok(())
}

#[facade::test(start_paused = true)]
async fn paused_clock_jumps_to_the_deadline() {
    let start = facade::time::Instant::now();
    facade::time::sleep(Duration::from_secs(3600)).await;
    // An hour passed on the paused clock, in no time on the wall clock.
    assert!(start.elapsed() < Duration::from_secs(60));
}

/// The environment wins over the arguments: run the program below with `RUNTIME_SCHEDULER`
/// set and read back which policy it ran under.
#[test]
fn the_environment_overrides_the_arguments() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "reports_its_scheduler",
            "--nocapture",
            "--include-ignored",
        ])
        .env("RUNTIME_SCHEDULER", "worksteal")
        .env("RUNTIME_WORKER_THREADS", "2")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("scheduler=worksteal workers=2"), "{text}");
}

#[facade::test(scheduler = "fifo", worker_threads = 0)]
#[ignore = "run by the_environment_overrides_the_arguments"]
async fn reports_its_scheduler() {
    let m = facade::Handle::current().metrics();
    let workers = m.workers.len();
    println!("scheduler={} workers={workers}", scheduler_name());
}

fn scheduler_name() -> String {
    facade::Handle::current().as_core().scheduler_name()
}

#[test]
fn bad_arguments_are_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
