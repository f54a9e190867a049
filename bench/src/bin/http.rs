//! The HTTP benchmark: an HTTP/1.1 keep-alive hello world under `wrk`, on our schedulers, tokio
//! and smol, the same hyper handler and settings on each.
//!
//! `cargo run --release -p bench --bin http -- [--rounds 3] [--duration 10] [--connections 100]
//! [--runtimes worksteal,priority,fifo,tokio,smol] [--out FILE]` (needs Debian's `wrk`).
//! Each round starts each runtime's server as a child process (2 worker threads), loads it with
//! `wrk -t1 -cN -dDs --latency`, and stops it; the order rotates between rounds so that the
//! machine's drift spreads over all. It prints (and writes to `--out`) the medians of requests
//! per second and of p99 latency, and each runtime's ratio to tokio's median requests/s.
//!
//! The servers: ours through `facade::hyper::Server` (what a user writes); tokio through
//! hyper-util's `TokioIo` / `TokioExecutor` / `TokioTimer`; smol through `async-io` sockets,
//! `facade::hyper::Io`'s generic `futures-io` path, an `async-executor` and an `async-io`
//! timer. All use hyper-util's HTTP/1+2 connection builder with a 30 s header-read timeout
//! and one task per connection.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::server::conn::auto;

const WORKERS: usize = 2;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const RUNTIMES: [&str; 5] = ["worksteal", "priority", "fifo", "tokio", "smol"];

/// The handler every runtime serves.
async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let (Some(runtime), Some(port)) = (args.get(1), args.get(2).and_then(|p| p.parse().ok()))
        else {
            eprintln!("usage: http serve RUNTIME PORT");
            return ExitCode::from(2);
        };
        return serve(runtime, SocketAddr::from(([127, 0, 0, 1], port)));
    }
    match drive(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http benchmark: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---- the servers ----

fn serve(runtime: &str, addr: SocketAddr) -> ExitCode {
    match runtime {
        "worksteal" | "priority" | "fifo" => serve_ours(runtime, addr),
        "tokio" => serve_tokio(addr),
        "smol" => serve_smol(addr),
        other => {
            eprintln!("unknown runtime {other:?}: one of {RUNTIMES:?}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn serve_ours(scheduler: &str, addr: SocketAddr) {
    let rt = facade::Builder::new()
        .scheduler_name(scheduler)
        .worker_threads(WORKERS)
        .build()
        .expect("build the runtime");
    rt.block_on(async {
        let listener = facade::net::TcpListener::bind(addr).await.expect("bind");
        let server = facade::hyper::Server::new().header_read_timeout(HEADER_READ_TIMEOUT);
        let service = hyper::service::service_fn(hello);
        server
            .serve(listener, service, std::future::pending())
            .await
            .expect("serve");
    });
}

fn serve_tokio(addr: SocketAddr) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("build tokio");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(hello);
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// hyper's executor on an `async-executor`.
#[derive(Clone)]
struct SmolExecutor(Arc<async_executor::Executor<'static>>);

impl<F> hyper::rt::Executor<F> for SmolExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawn(future).detach();
    }
}

/// hyper's timer on `async-io`'s.
#[derive(Clone)]
struct SmolTimer;

struct SmolSleep(async_io::Timer);

impl std::future::Future for SmolSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl hyper::rt::Sleep for SmolSleep {}

impl hyper::rt::Timer for SmolTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SmolSleep(async_io::Timer::after(duration)))
    }
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SmolSleep(async_io::Timer::at(deadline)))
    }
}

fn serve_smol(addr: SocketAddr) {
    let ex = Arc::new(async_executor::Executor::new());
    for _ in 1..WORKERS {
        let ex = ex.clone();
        std::thread::spawn(move || async_io::block_on(ex.run(std::future::pending::<()>())));
    }
    let main = ex.clone();
    async_io::block_on(main.run(async move {
        let listener = async_io::Async::<std::net::TcpListener>::bind(addr).expect("bind");
        let mut builder = auto::Builder::new(SmolExecutor(ex.clone()));
        builder
            .http1()
            .timer(SmolTimer)
            .header_read_timeout(HEADER_READ_TIMEOUT);
        builder.http2().timer(SmolTimer);
        let builder = Arc::new(builder);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.get_ref().set_nodelay(true);
            let builder = builder.clone();
            ex.spawn(async move {
                let service = hyper::service::service_fn(hello);
                let _ = builder
                    .serve_connection_with_upgrades(facade::hyper::Io::new(stream), service)
                    .await;
            })
            .detach();
        }
    }));
}

// ---- the driver ----

#[derive(Debug)]
struct Options {
    rounds: usize,
    duration: u64,
    connections: usize,
    runtimes: Vec<String>,
    out: Option<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        rounds: 3,
        duration: 10,
        connections: 100,
        runtimes: RUNTIMES.iter().map(|s| s.to_string()).collect(),
        out: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: &String, range: std::ops::RangeInclusive<u64>| {
            v.parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(format!("{flag} must be a number in {range:?}, not {v:?}"))
        };
        match flag.as_str() {
            "--rounds" => o.rounds = number(value()?, 1..=100)? as usize,
            "--duration" => o.duration = number(value()?, 1..=600)?,
            "--connections" => o.connections = number(value()?, 1..=10_000)? as usize,
            "--runtimes" => {
                o.runtimes = value()?.split(',').map(str::to_owned).collect();
                if let Some(bad) = o.runtimes.iter().find(|r| !RUNTIMES.contains(&r.as_str())) {
                    return Err(format!(
                        "--runtimes: unknown {bad:?}, not one of {RUNTIMES:?}"
                    ));
                }
            }
            "--out" => o.out = Some(value()?.clone()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// One wrk run's figures.
#[derive(Clone, Copy)]
struct Sample {
    requests_per_sec: f64,
    p99: Duration,
}

fn drive(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("wrk is needed (apt-get install wrk): {e}"))?;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); o.runtimes.len()];
    for round in 0..o.rounds {
        for k in 0..o.runtimes.len() {
            let i = (k + round) % o.runtimes.len();
            let name = &o.runtimes[i];
            let s = run_one(&me, name, &o)?;
            eprintln!(
                "round {}: {name:<10} {:>10.0} req/s  p99 {:?}",
                round + 1,
                s.requests_per_sec,
                s.p99
            );
            samples[i].push(s);
        }
    }
    let table = report(&o, &samples);
    println!("{table}");
    if let Some(out) = &o.out {
        std::fs::write(out, &table).map_err(|e| format!("write {out}: {e}"))?;
    }
    Ok(())
}

/// Kills the server when the run ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_one(me: &std::path::Path, runtime: &str, o: &Options) -> Result<Sample, String> {
    let port = StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let _server = Server(
        Command::new(me)
            .args(["serve", runtime, &port.to_string()])
            .spawn()
            .map_err(|e| format!("start the {runtime} server: {e}"))?,
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ready = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if ready.elapsed() > Duration::from_secs(10) {
            return Err(format!("the {runtime} server did not start listening"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{}", o.connections),
            &format!("-d{}s", o.duration),
            "--latency",
            &format!("http://{addr}/"),
        ])
        .output()
        .map_err(|e| format!("run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).ok_or_else(|| format!("could not read wrk's output:\n{text}"))
}

/// Requests/sec and the 99th percentile from `wrk --latency`'s report.
fn parse_wrk(text: &str) -> Option<Sample> {
    let requests_per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| parse_latency(v.trim()))?;
    Some(Sample {
        requests_per_sec,
        p99,
    })
}

/// `"1.23ms"`, `"850.00us"`, `"1.02s"`.
fn parse_latency(v: &str) -> Option<Duration> {
    let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn report(o: &Options, samples: &[Vec<Sample>]) -> String {
    let rps: Vec<f64> = samples
        .iter()
        .map(|s| median(s.iter().map(|x| x.requests_per_sec).collect()))
        .collect();
    let p99: Vec<f64> = samples
        .iter()
        .map(|s| median(s.iter().map(|x| x.p99.as_secs_f64() * 1e3).collect()))
        .collect();
    let tokio = o.runtimes.iter().position(|r| r == "tokio").map(|i| rps[i]);
    let mut t = format!(
        "HTTP/1.1 keep-alive hello world, wrk -t1 -c{} -d{}s, {} interleaved rounds, {} worker threads, medians\n\n\
         | runtime | requests/s | p99 latency | requests/s vs tokio |\n|---|---|---|---|\n",
        o.connections, o.duration, o.rounds, WORKERS
    );
    for (i, name) in o.runtimes.iter().enumerate() {
        let ratio = tokio.map_or("n/a".to_owned(), |t| format!("{:.2}x", rps[i] / t));
        t.push_str(&format!(
            "| {name} | {:.0} | {:.2} ms | {ratio} |\n",
            rps[i], p99[i]
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrks_report() {
        let text = "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 100 connections\n\
            \x20 Latency Distribution\n     50%  600.00us\n     75%  700.00us\n     90%    1.10ms\n     99%    2.50ms\n\
            \x20 100 requests in 1.00s, 10.00KB read\nRequests/sec:  123456.78\nTransfer/sec:     10.00MB\n";
        let s = parse_wrk(text).unwrap();
        assert_eq!(s.requests_per_sec, 123456.78);
        assert_eq!(s.p99, Duration::from_micros(2500));
        assert_eq!(parse_latency("850.00us"), Some(Duration::from_micros(850)));
        assert!(parse_wrk("garbage").is_none());
    }

    #[test]
    fn rejects_bad_options() {
        let args = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert!(parse(&args("--rounds 0")).unwrap_err().contains("--rounds"));
        assert!(
            parse(&args("--runtimes tokio,nope"))
                .unwrap_err()
                .contains("nope")
        );
        assert_eq!(parse(&args("--rounds 5")).unwrap().rounds, 5);
    }
}
