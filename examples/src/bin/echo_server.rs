//! A TCP echo server on any scheduler.
//!
//! Run: `cargo run --release -p examples --bin echo_server -- 127.0.0.1:7000`
//! (the scheduler from `RUNTIME_SCHEDULER`, default work-stealing), then load it with
//! `cargo run --release -p examples --bin echo_client -- --addr 127.0.0.1:7000`.

use futures_lite::{AsyncReadExt, AsyncWriteExt};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let rt = facade::Builder::from_env().build()?;
    rt.block_on(async {
        let listener = facade::net::TcpListener::bind(&addr).await?;
        println!(
            "echo server on {} ({} scheduler); Ctrl-C to stop",
            listener.local_addr()?,
            rt.scheduler()
        );
        loop {
            let (conn, _) = listener.accept().await?;
            facade::spawn(async move {
                if let Err(e) = serve(conn).await {
                    eprintln!("connection ended with an error: {e}");
                }
            });
        }
    })
}
