//! An axum application on any scheduler, served through `facade::hyper`, stopped gracefully.
//!
//! Run: `cargo run --release -p examples --bin http_server -- 127.0.0.1:3000` (the scheduler
//! from `RUNTIME_SCHEDULER`, default work-stealing), then
//! `curl localhost:3000/`, `curl localhost:3000/users/7`, `curl -d hi localhost:3000/echo`,
//! or load it with `wrk -t1 -c100 -d10s http://127.0.0.1:3000/`.
//!
//! axum is used with its default features off: a plain tower service, no tokio runtime in the
//! program. HTTP/1.1 and HTTP/2 (prior knowledge: `curl --http2-prior-knowledge`) both work.
//! On Ctrl-C or `SIGTERM` it stops accepting, lets requests in flight finish (up to ten
//! seconds) and prints what it served.
//!
//! With `--features console` (and `RUSTFLAGS="--cfg console_without_tokio_unstable"`, which
//! console-subscriber asks of runtimes that are not tokio) it serves tokio-console on
//! 127.0.0.1:6669: run `tokio-console` beside it to watch its tasks.

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::{get, post};
use facade::hyper::Server;
use facade::signal::unix::{SignalKind, signal};

async fn user(Path(id): Path<u32>) -> String {
    format!("user {id}\n")
}

/// Answers after `ms` milliseconds: a slow request to watch graceful shutdown with.
async fn slow(Path(ms): Path<u64>) -> String {
    facade::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

#[facade::main]
async fn main() -> std::io::Result<()> {
    #[cfg(feature = "console")]
    console_subscriber::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let app = Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route("/users/{id}", get(user))
        .route("/echo", post(|body: String| async move { body }))
        .route("/slow/{ms}", get(slow));

    let listener = facade::net::TcpListener::bind(&addr).await?;
    println!(
        "http://{} ({} scheduler); Ctrl-C to stop",
        listener.local_addr()?,
        facade::Handle::current().as_core().scheduler_name()
    );
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let shutdown = async move {
        facade::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        println!("stopping: finishing the requests in flight");
    };
    let summary = Server::new()
        .shutdown_timeout(Duration::from_secs(10))
        .serve_tower(listener, app, shutdown)
        .await?;
    println!(
        "stopped: {} connections, {} ended with an error, {} dropped at the deadline",
        summary.accepted, summary.connection_errors, summary.aborted_at_shutdown
    );
    Ok(())
}
