//! Fault: no file descriptors left while a client waits to be accepted. `Server`'s accept
//! fails with EMFILE; the loop backs off (a handful of attempts, not a spin), neither stops nor
//! panics, and accepts and serves the client once descriptors are free. In a test binary of its
//! own: the limit is process-wide.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::{AddressFamily, SocketType};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// One more than the highest descriptor open now.
fn fd_ceiling() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap()
        + 1
}

#[derive(Debug)]
struct Hello(Option<hyper::body::Bytes>);

impl hyper::body::Body for Hello {
    type Data = hyper::body::Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Infallible>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[test]
fn the_accept_loop_backs_off_on_emfile_and_serves_afterwards() {
    for scheduler in ["worksteal", "priority", "fifo"] {
        accept_with_no_fds_left(scheduler);
    }
}

fn accept_with_no_fds_left(scheduler: &str) {
    let rt = facade::Builder::new()
        .scheduler_name(scheduler)
        .worker_threads(2)
        .build()
        .unwrap();
    let listener = rt
        .block_on(facade::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = facade::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        let hello = hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(hyper::Response::new(Hello(Some("hello".into()))))
        });
        facade::hyper::Server::new()
            .serve(listener, hello, async {
                let _ = stopped.await;
            })
            .await
    });

    // The client's socket exists before the limit drops; connecting needs no new descriptor,
    // and the kernel completes it into the listener's backlog.
    let client: OwnedFd =
        rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    let saved = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(fd_ceiling()),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    let mut fillers = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fillers.push(f);
    }
    rustix::net::connect(&client, &addr).unwrap();
    // The server sees the connection and cannot accept it.
    std::thread::sleep(Duration::from_millis(300));
    drop(fillers);
    setrlimit(Resource::Nofile, saved).unwrap();

    let mut client = std::net::TcpStream::from(client);
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{scheduler}: {answer}");
    assert!(answer.contains("hello"), "{answer}");

    stop.send(()).unwrap();
    let summary = rt.block_on(server).unwrap().unwrap();
    assert_eq!(summary.accepted, 1, "{scheduler}: {summary:?}");
    // 300 ms of 5, 10, 20, 40, 80, 160 ms pauses: a few attempts; a spin would make thousands.
    assert!(
        (1..=20).contains(&summary.accept_errors),
        "{scheduler}: backed off, did not spin: {summary:?}"
    );
}
