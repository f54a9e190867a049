//! tokio-console on our runtime (kit feature `console`): console-subscriber's layer (its gRPC
//! server on loopback) watches named tasks on the runtime under test, and a console-api client
//! reads them back: names, spawn locations, poll counts, wakes and busy time. Current-thread
//! and 2 workers, every scheduler.

use std::collections::HashMap;
use std::time::Duration;

use console_api::instrument::InstrumentRequest;
use console_api::instrument::instrument_client::InstrumentClient;
use tracing_subscriber::layer::SubscriberExt;

use crate::Make;
use crate::util::{LIMIT, within};

/// What the client saw of one task.
#[derive(Debug, Default, Clone)]
struct Seen {
    name: String,
    file: String,
    polls: u64,
    wakes: u64,
    busy: Duration,
}

/// Starts console-subscriber's server on a free loopback port, on a tokio runtime of its own
/// (as `console_subscriber::spawn` would); returns the layer and the port.
fn console_layer() -> (
    console_subscriber::ConsoleLayer,
    u16,
    tokio::runtime::Runtime,
) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let (layer, server) = console_subscriber::ConsoleLayer::builder()
        .server_addr(([127, 0, 0, 1], port))
        .publish_interval(Duration::from_millis(50))
        .retention(Duration::from_secs(60))
        .build();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    tokio_rt.spawn(async move {
        let _ = server.serve().await;
    });
    (layer, port, tokio_rt)
}

/// Reads updates until every name in `want` is seen with at least `polls` polls (or the limit).
fn watch(tokio_rt: &tokio::runtime::Runtime, port: u16, want: &[&str], polls: u64) -> Vec<Seen> {
    tokio_rt.block_on(async {
        let mut client = loop {
            match InstrumentClient::connect(format!("http://127.0.0.1:{port}")).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let mut stream = client
            .watch_updates(InstrumentRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut tasks: HashMap<u64, Seen> = HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let done = want.iter().all(|w| {
                tasks
                    .values()
                    .any(|t| t.name == *w && t.polls >= polls && !t.busy.is_zero())
            });
            if done {
                break;
            }
            let next = tokio::time::timeout_at(deadline, stream.message()).await;
            let Ok(Ok(Some(update))) = next else { break };
            let Some(tu) = update.task_update else {
                continue;
            };
            for task in tu.new_tasks {
                let id = task.id.map_or(0, |i| i.id);
                let seen = tasks.entry(id).or_default();
                for f in task.fields {
                    use console_api::field::{Name, Value};
                    let name = match f.name {
                        Some(Name::StrName(n)) => n,
                        _ => continue,
                    };
                    if let (true, Some(Value::StrVal(v))) = (name == "task.name", f.value) {
                        seen.name = v;
                    }
                }
                if let Some(loc) = task.location {
                    seen.file = loc.file.unwrap_or_default();
                }
            }
            for (id, stats) in tu.stats_update {
                let seen = tasks.entry(id).or_default();
                seen.wakes = stats.wakes;
                if let Some(p) = stats.poll_stats {
                    seen.polls = p.polls;
                    if let Some(b) = p.busy_time {
                        seen.busy = Duration::new(b.seconds as u64, b.nanos as u32);
                    }
                }
            }
        }
        tasks.into_values().collect()
    })
}

/// Named tasks on the runtime under test appear in tokio-console with their names, the file
/// that spawned them, their polls, wakes and busy time.
pub fn tokio_console_sees_named_tasks_polls_and_busy_time(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let (layer, port, tokio_rt) = console_layer();
            let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
            // The runtime's threads report to the subscriber of the thread that builds it.
            let _default = tracing::dispatcher::set_default(&dispatch);
            let rt = make(workers).build().unwrap();
            let names = ["console-yielder", "console-sleeper"];
            let (stop, stopped) = facade::sync::oneshot::channel::<()>();
            // `block_on` on a thread of its own (current-thread: that is where tasks run),
            // while this one reads the console.
            let driver = std::thread::scope(|scope| {
                let driver = scope.spawn(|| {
                    tracing::dispatcher::with_default(&dispatch, || {
                        rt.block_on(workload(names, stopped));
                    })
                });
                let seen = watch(&tokio_rt, port, &names, 20);
                let _ = stop.send(());
                (driver.join(), seen)
            });
            let (joined, seen) = driver;
            joined.expect("the runtime's thread");
            for name in names {
                let t = seen
                    .iter()
                    .find(|t| t.name == name)
                    .unwrap_or_else(|| panic!("{workers} workers: {name} not in {seen:#?}"));
                assert!(t.polls >= 20, "{workers} workers: {t:?}");
                assert!(!t.busy.is_zero(), "{workers} workers: {t:?}");
                assert!(t.wakes >= 19, "{workers} workers: {t:?}");
                assert!(t.file.ends_with("console.rs"), "{t:?}");
            }
            drop(rt);
            tokio_rt.shutdown_background();
        }
    });
}

/// Two named tasks (one computing and yielding, one sleeping), until `stopped`.
async fn workload(names: [&'static str; 2], stopped: facade::sync::oneshot::Receiver<()>) {
    let yielder = facade::task::Builder::new().name(names[0]).spawn(async {
        for _ in 0..20 {
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_micros(200) {}
            facade::yield_now().await;
        }
        std::future::pending::<()>().await
    });
    let sleeper = facade::task::Builder::new().name(names[1]).spawn(async {
        for _ in 0..20 {
            facade::time::sleep(Duration::from_millis(1)).await;
        }
        std::future::pending::<()>().await
    });
    let _ = stopped.await;
    yielder.abort();
    sleeper.abort();
}
