//! Conformance tests of HTTP through `facade::hyper`: HTTP/1.1 and HTTP/2 round trips (server
//! and client both on the runtime under test), a header-read timeout on a silent client,
//! graceful shutdown with a request in flight (and its timeout), the connection limit.
//! Current-thread and 2 workers, every scheduler.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use facade::hyper::{Executor, Io, ServeSummary, Server};
use facade::net::TcpStream;
use facade::prelude::*;
use facade::sync::{Notify, oneshot};
use facade::task::JoinSet;
use facade::{JoinHandle, time};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use crate::Make;
use crate::util::{LIMIT, within};

fn rt(make: Make, workers: usize) -> facade::Runtime {
    make(workers)
        .build()
        .expect("the scheduler under test builds")
}

/// What the test service shares with the test: `/slow` says it started, then waits.
#[derive(Default)]
struct Gate {
    started: Notify,
    release: Notify,
}

/// `/slow` waits for the gate; `/panic` panics (a fault in user code); anything else answers
/// `METHOD PATH:BODY`.
async fn handle(
    gate: Arc<Gate>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/panic" {
        panic!("expected by the test: a handler that panics");
    }
    if req.uri().path() == "/slow" {
        gate.started.notify_one();
        gate.release.notified().await;
        return Ok(Response::new(Full::new(Bytes::from_static(b"slow done"))));
    }
    let head = format!("{} {}:", req.method(), req.uri().path());
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let mut out = head.into_bytes();
    out.extend_from_slice(&body.unwrap_or_default());
    Ok(Response::new(Full::new(Bytes::from(out))))
}

/// A server running [`handle`] on the current runtime, and its stop switch.
struct Running {
    addr: SocketAddr,
    gate: Arc<Gate>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<ServeSummary>>,
}

impl Running {
    async fn start(server: Server) -> Running {
        let listener = facade::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new(Gate::default());
        let g = gate.clone();
        let service = hyper::service::service_fn(move |req| handle(g.clone(), req));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = facade::spawn(async move {
            server
                .serve(listener, service, async {
                    let _ = stopped.await;
                })
                .await
        });
        Running {
            addr,
            gate,
            stop: Some(stop),
            task,
        }
    }

    fn begin_stop(&mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
    }

    async fn stop(mut self) -> ServeSummary {
        self.begin_stop();
        self.task.await.expect("the server task").expect("serve")
    }
}

type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn h1_client(addr: SocketAddr) -> H1 {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(Io::new(stream))
        .await
        .unwrap();
    drop(facade::spawn(conn));
    sender
}

async fn h2_client(addr: SocketAddr) -> H2 {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(Executor::new(), Io::new(stream))
        .await
        .unwrap();
    drop(facade::spawn(conn));
    sender
}

fn post(path: &str, body: String) -> Request<Full<Bytes>> {
    Request::post(path)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn text(res: Response<Incoming>) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// HTTP/1.1 keep-alive (3 connections x 20 requests, at once) and HTTP/2 (one connection, 50
/// concurrent streams) against one server, which tells the two apart by the first bytes.
pub fn http1_and_http2_round_trips(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let server = Running::start(Server::new()).await;
                let addr = server.addr;
                let mut clients = JoinSet::new();
                for c in 0..3 {
                    clients.spawn(async move {
                        let mut sender = h1_client(addr).await;
                        for i in 0..20 {
                            sender.ready().await.unwrap();
                            let res = sender
                                .send_request(post(&format!("/h1/{c}"), format!("body {i}")))
                                .await
                                .unwrap();
                            assert_eq!(res.status(), 200);
                            assert_eq!(res.version(), hyper::Version::HTTP_11);
                            assert_eq!(text(res).await, format!("POST /h1/{c}:body {i}"));
                        }
                    });
                }
                while let Some(done) = clients.join_next().await {
                    done.expect("an HTTP/1.1 client");
                }

                let sender = h2_client(addr).await;
                let mut streams = JoinSet::new();
                for i in 0..50 {
                    let mut sender = sender.clone();
                    streams.spawn(async move {
                        let res = sender
                            .send_request(post(&format!("/h2/{i}"), "x".repeat(i)))
                            .await
                            .unwrap();
                        assert_eq!(res.version(), hyper::Version::HTTP_2);
                        assert_eq!(text(res).await, format!("POST /h2/{i}:{}", "x".repeat(i)));
                    });
                }
                while let Some(done) = streams.join_next().await {
                    done.expect("an HTTP/2 stream");
                }
                drop(sender);

                let summary = server.stop().await;
                assert_eq!(summary.accepted, 4, "{summary:?}");
                assert_eq!(summary.aborted_at_shutdown, 0, "{summary:?}");
            });
        }
    });
}

/// A client that sends half a request head and goes silent is disconnected after the
/// header-read timeout (not before); the server goes on serving others.
pub fn http_header_read_timeout_closes_a_silent_client(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let timeout = Duration::from_millis(200);
                let server = Running::start(Server::new().header_read_timeout(timeout)).await;
                let began = Instant::now();
                let mut silent = TcpStream::connect(server.addr).await.unwrap();
                silent
                    .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n")
                    .await
                    .unwrap();
                let mut buf = Vec::new();
                let read = time::timeout(Duration::from_secs(20), silent.read_to_end(&mut buf))
                    .await
                    .expect("the server closes the silent connection");
                assert!(
                    read.is_err() || !buf.starts_with(b"HTTP/1.1 200"),
                    "no response to half a request: {:?}",
                    String::from_utf8_lossy(&buf)
                );
                assert!(
                    began.elapsed() >= timeout,
                    "closed after {:?}, before the timeout",
                    began.elapsed()
                );

                let mut sender = h1_client(server.addr).await;
                let res = sender
                    .send_request(post("/after", "ok".into()))
                    .await
                    .unwrap();
                assert_eq!(text(res).await, "POST /after:ok");
                drop(sender);
                let summary = server.stop().await;
                assert_eq!(summary.accepted, 2);
                assert!(summary.connection_errors >= 1, "{summary:?}");
            });
        }
    });
}

/// Shutdown with a request in flight: the listener closes at once, the request completes and
/// its response arrives, then `serve` returns. With a request that never completes, `serve`
/// returns after the shutdown timeout and reports the connection it dropped.
pub fn http_graceful_shutdown_with_a_request_in_flight(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let mut server = Running::start(Server::new()).await;
                let addr = server.addr;
                let gate = server.gate.clone();
                let mut sender = h1_client(addr).await;
                let in_flight = facade::spawn(async move {
                    let res = sender.send_request(post("/slow", String::new())).await?;
                    hyper::Result::Ok(text(res).await)
                });
                gate.started.notified().await;
                server.begin_stop();
                // The listener goes away: new clients are refused.
                let refused = async {
                    while TcpStream::connect(addr).await.is_ok() {
                        time::sleep(Duration::from_millis(5)).await;
                    }
                };
                time::timeout(Duration::from_secs(20), refused)
                    .await
                    .expect("the listener closes when shutdown starts");
                assert!(!server.task.is_finished(), "serve waits for the request");
                gate.release.notify_one();
                assert_eq!(in_flight.await.unwrap().unwrap(), "slow done");
                let summary = server.task.await.unwrap().unwrap();
                assert_eq!(summary.aborted_at_shutdown, 0, "{summary:?}");

                let server =
                    Running::start(Server::new().shutdown_timeout(Duration::from_millis(100)))
                        .await;
                let gate = server.gate.clone();
                let mut sender = h1_client(server.addr).await;
                let stuck = facade::spawn(async move {
                    sender
                        .send_request(post("/slow", String::new()))
                        .await
                        .map(|_| ())
                });
                gate.started.notified().await;
                let summary = server.stop().await;
                assert_eq!(summary.aborted_at_shutdown, 1, "{summary:?}");
                assert!(
                    stuck.await.unwrap().is_err(),
                    "the dropped connection's request fails"
                );
            });
        }
    });
}

/// With `max_connections(1)`, a second client is not served while the first is open, and is
/// served once it closes.
pub fn http_connection_limit_holds_the_next_client_back(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let server = Running::start(Server::new().max_connections(1)).await;
                let addr = server.addr;
                let mut first = h1_client(addr).await;
                let res = first.send_request(post("/a", String::new())).await.unwrap();
                assert_eq!(text(res).await, "POST /a:");
                let second = facade::spawn(async move {
                    let mut sender = h1_client(addr).await;
                    let res = sender
                        .send_request(post("/b", String::new()))
                        .await
                        .unwrap();
                    text(res).await
                });
                time::sleep(Duration::from_millis(100)).await;
                assert!(
                    !second.is_finished(),
                    "the limit holds the second client back"
                );
                drop(first);
                assert_eq!(second.await.unwrap(), "POST /b:");
                let summary = server.stop().await;
                assert_eq!(summary.accepted, 2);
            });
        }
    });
}

/// Fault: a handler that panics. Its connection ends (the client's request fails), the server
/// counts a connection error and goes on serving other connections, and stops cleanly.
pub fn http_a_panicking_handler_costs_its_connection_only(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let server = Running::start(Server::new()).await;
                for _ in 0..3 {
                    let mut doomed = h1_client(server.addr).await;
                    let failed = doomed.send_request(post("/panic", String::new())).await;
                    assert!(failed.is_err(), "the panicking request gets no response");
                    let mut fine = h1_client(server.addr).await;
                    let res = fine.send_request(post("/ok", "1".into())).await.unwrap();
                    assert_eq!(text(res).await, "POST /ok:1");
                }
                let summary = server.stop().await;
                assert_eq!(summary.accepted, 6, "{summary:?}");
                assert!(summary.connection_errors >= 3, "{summary:?}");
                assert_eq!(summary.aborted_at_shutdown, 0, "{summary:?}");
            });
        }
    });
}
