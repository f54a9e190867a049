//! A TCP echo server on any scheduler, stopped gracefully by Ctrl-C.
//!
//! Run: `cargo run --release -p examples --bin echo_server -- 127.0.0.1:7000`
//! (the scheduler from `RUNTIME_SCHEDULER`, default work-stealing), then load it with
//! `cargo run --release -p examples --bin echo_client -- --addr 127.0.0.1:7000`.
//! On Ctrl-C (or `SIGTERM`) it stops accepting, lets the live connections finish for up to
//! ten seconds, and exits.

use std::time::Duration;

use facade::prelude::*;
use facade::signal::unix::{SignalKind, signal};
use facade::task::JoinSet;

/// Echoes everything a client sends until it closes its side.
async fn serve(mut conn: facade::net::TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return conn.close().await; // half-close back: the client reads EOF
        }
        conn.write_all(&buf[..n]).await?;
    }
}

#[facade::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let listener = facade::net::TcpListener::bind(&addr).await?;
    println!(
        "echo server on {} ({} scheduler); Ctrl-C to stop",
        listener.local_addr()?,
        facade::Handle::current().as_core().scheduler_name()
    );
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut connections = JoinSet::new();
    loop {
        facade::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => {
                    connections.spawn(async move {
                        if let Err(e) = serve(conn).await {
                            eprintln!("connection ended with an error: {e}");
                        }
                    });
                }
                // A per-connection failure (or no fds left): back off, keep serving.
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    facade::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Finished connections are collected as they end, so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    drop(listener);
    println!("stopping: {} connections still open", connections.len());
    let drain = async { while connections.join_next().await.is_some() {} };
    if facade::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        println!("connections still open after 10 s: closing them");
        connections.shutdown().await;
    }
    println!("stopped");
    Ok(())
}
