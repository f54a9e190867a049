//! Load for an echo server: N connections, each sending M messages of 64 bytes and waiting
//! for each echo. Prints round trips per second. Without `--addr` it starts its own server in
//! the same runtime, so it runs on its own.
//!
//! Run: `cargo run --release -p examples --bin echo_client -- --connections 50 --messages 2000`
//! or against a server: `... --bin echo_client -- --addr 127.0.0.1:7000`

use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

struct Args {
    addr: Option<String>,
    connections: usize,
    messages: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        addr: None,
        connections: 50,
        messages: 2_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => a.addr = Some(value()?),
            "--connections" => {
                a.connections = value()?
                    .parse()
                    .ok()
                    .filter(|&n| (1..=10_000).contains(&n))
                    .ok_or("--connections: a number from 1 to 10000")?
            }
            "--messages" => {
                a.messages = value()?
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or("--messages: a positive number")?
            }
            _ => {
                return Err(format!(
                    "unknown argument {arg}; usage: echo_client [--addr HOST:PORT] [--connections N] [--messages M]"
                ));
            }
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse().map_err(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    })?;
    let rt = facade::Builder::from_env().build()?;
    rt.block_on(async {
        let addr = match &args.addr {
            Some(a) => a.clone(),
            None => {
                // Our own echo server, in this runtime.
                let l = facade::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = l.local_addr()?.to_string();
                facade::spawn(async move {
                    while let Ok((mut c, _)) = l.accept().await {
                        facade::spawn(async move {
                            let mut buf = [0u8; 64];
                            while c.read_exact(&mut buf).await.is_ok() {
                                if c.write_all(&buf).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                });
                addr
            }
        };
        let start = Instant::now();
        let clients: Vec<_> = (0..args.connections)
            .map(|i| {
                let addr = addr.clone();
                let messages = args.messages;
                facade::spawn(async move {
                    let mut c = facade::net::TcpStream::connect(addr.as_str()).await?;
                    let msg = [i as u8; 64];
                    let mut back = [0u8; 64];
                    for _ in 0..messages {
                        c.write_all(&msg).await?;
                        c.read_exact(&mut back).await?;
                        assert_eq!(back, msg, "the echo differs");
                    }
                    std::io::Result::Ok(())
                })
            })
            .collect();
        for c in clients {
            c.await??;
        }
        let secs = start.elapsed().as_secs_f64();
        let total = args.connections * args.messages;
        println!(
            "{} connections x {} messages of 64 bytes on {} ({}): {total} round trips in {secs:.3} s = {:.0} round trips/s",
            args.connections,
            args.messages,
            addr,
            rt.scheduler(),
            total as f64 / secs
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
