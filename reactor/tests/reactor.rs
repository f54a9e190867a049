//! The reactor on its own, driven by a plain thread (no runtime). CI runs these for both
//! backends: `cargo test -p reactor` and `cargo test -p reactor --features polling`.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use reactor::{
    Async, Poller, Reactor, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener,
    UnixStream,
};

/// A reactor driven by its own thread, found (as in a real runtime) in the extensions of a
/// core runtime that is entered on the test thread.
struct Driver {
    // Dropped first: leaves the runtime before it goes.
    _enter: runtime_core::EnterGuard,
    _runtime: runtime_core::Runtime,
    reactor: Arc<Reactor>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn driver() -> Driver {
    let mut poller = Poller::new().unwrap();
    let reactor = poller.reactor().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            poller.poll(Some(Duration::from_millis(20))).unwrap();
        }
    });
    let mut extensions = runtime_core::Extensions::default();
    extensions.insert(reactor.clone());
    let runtime = runtime_core::Runtime::new(
        runtime_core::BasicFifo::default(),
        runtime_core::Config {
            worker_threads: 0,
            extensions,
            ..runtime_core::Config::default()
        },
    )
    .unwrap();
    Driver {
        _enter: runtime.enter(),
        _runtime: runtime,
        reactor,
        stop,
        thread: Some(thread),
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.reactor.wake();
        self.thread.take().unwrap().join().unwrap();
    }
}

#[test]
fn tcp_echo_and_half_close() {
    let _d = driver();
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            // A plain blocking client: sends, half-closes, then reads the echo to EOF.
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"hello").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut back = Vec::new();
            s.read_to_end(&mut back).unwrap();
            back
        });
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap(); // EOF thanks to the client's half-close
        s.write_all(&got).await.unwrap();
        s.close().await.unwrap(); // our half-close: the client reads EOF
        assert_eq!(client.join().unwrap(), b"hello");
    });
}

#[test]
fn tcp_connect_reads_after_its_own_half_close() {
    let _d = driver();
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        c.write_all(b"ping").await.unwrap();
        c.close().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
        s.write_all(b"pong").await.unwrap();
        drop(s);
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap(); // still readable after close()
        assert_eq!(back, b"pong");
    });
}

#[test]
fn connect_to_a_closed_port_fails() {
    let _d = driver();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap(); // dropped: nothing listens there now
    let err = block_on(TcpStream::connect(port)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn udp_round_trip() {
    let _d = driver();
    block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.send_to(b"datagram", b.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"datagram"[..], a.local_addr().unwrap())
        );
    });
}

#[test]
fn unix_stream_listener_and_datagrams() {
    let _d = driver();
    let dir = std::env::temp_dir().join(format!("reactor-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("stream.sock");
    let _ = std::fs::remove_file(&path);
    block_on(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"pair").await.unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pair");

        let l = UnixListener::bind(&path).unwrap();
        let mut c = UnixStream::connect(&path).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        c.write_all(b"unix").await.unwrap();
        c.close().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"unix");

        let (x, y) = UnixDatagram::pair().unwrap();
        x.send(b"dgram").await.unwrap();
        let mut buf = [0u8; 16];
        let n = y.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"dgram");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Data that arrives while a read is being attempted is not lost: the reader waits, the
/// writer writes from another thread at many different moments, every read completes.
#[test]
fn readiness_is_not_lost_during_an_attempt() {
    let _d = driver();
    let rounds = 2_000;
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let reader = Async::new(a).unwrap();
    let writer = std::thread::spawn(move || {
        let mut b = b;
        for i in 0..rounds {
            if i % 7 == 0 {
                std::thread::yield_now();
            }
            b.write_all(&[i as u8]).unwrap();
            // Wait for the reader's ack so that each byte is a separate readiness edge.
            let mut ack = [0u8; 1];
            b.read_exact(&mut ack).unwrap();
        }
    });
    block_on(async {
        for i in 0..rounds {
            let mut byte = [0u8; 1];
            let n = reader.read_with(|mut s| s.read(&mut byte)).await.unwrap();
            assert_eq!((n, byte[0]), (1, i as u8));
            reader.write_with(|mut s| s.write(&[1])).await.unwrap();
        }
    });
    writer.join().unwrap();
}

/// After the reactor closes, waiting operations fail instead of hanging.
#[test]
fn io_after_shutdown_is_an_error() {
    let d = driver();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let reader = Async::new(a).unwrap();
    let r = d.reactor.clone();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        r.close();
    });
    let err = block_on(reader.read_with(|mut s| s.read(&mut [0u8; 1]))).unwrap_err();
    assert!(err.to_string().contains("shut down"), "{err}");
    closer.join().unwrap();
    assert!(Async::new(std::os::unix::net::UnixStream::pair().unwrap().0).is_err());
}

/// Registrations are released when their `Async` drops.
#[test]
fn dropping_an_async_deregisters_it() {
    let d = driver();
    for _ in 0..200 {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (x, y) = (Async::new(a).unwrap(), Async::new(b).unwrap());
        drop((x, y));
    }
    assert_eq!(d.reactor.source_count(), 0);
}

/// Sources without an I/O object fail with a message that says what to do.
#[test]
fn no_reactor_is_a_clear_error() {
    let err = Async::new(std::os::unix::net::UnixStream::pair().unwrap().0).unwrap_err();
    assert!(err.to_string().contains("inside a runtime"), "{err}");
}

/// A timeout shorter than a millisecond is honoured (no rounding up to whole milliseconds).
/// Checked as a count over many waits, not as a timing assertion: at most a few of 200
/// 100-microsecond waits may take a millisecond or more on a loaded machine.
#[test]
fn sub_millisecond_timeouts_are_not_rounded_up() {
    let mut p = Poller::new().unwrap();
    let mut slow = 0;
    for _ in 0..200 {
        let t = Instant::now();
        p.poll(Some(Duration::from_micros(100))).unwrap();
        if t.elapsed() >= Duration::from_millis(1) {
            slow += 1;
        }
    }
    assert!(
        slow < 100,
        "{slow} of 200 waits of 100 us took >= 1 ms: rounded up"
    );
}

/// A short stream read marks the socket drained: the next read waits for the next readiness
/// event (no `WouldBlock` system call) and still gets data that arrives later; a full read
/// does not, so data left in the kernel's buffer is read at once without a new event.
#[test]
fn short_reads_wait_for_the_next_event_and_full_reads_do_not() {
    let _d = driver();
    block_on(async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 100];
        a.write_all(&[1; 10]).await.unwrap();
        assert_eq!(b.read(&mut buf).await.unwrap(), 10, "short: drained");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            block_on(a.write_all(&[2; 5])).unwrap();
            a
        });
        assert_eq!(b.read(&mut buf).await.unwrap(), 5, "the later data arrives");
        assert_eq!(buf[..5], [2; 5]);
        let mut a = writer.join().unwrap();

        // 250 bytes in one write: one edge. Reads of 100 are full twice (not drained), so the
        // third read finds the last 50 without any new event.
        a.write_all(&[3; 250]).await.unwrap();
        for want in [100, 100, 50] {
            let n = futures_lite::future::or(b.read(&mut buf), async {
                async_sleep(Duration::from_secs(10)).await;
                Ok(usize::MAX)
            })
            .await
            .unwrap();
            assert_eq!(n, want);
        }
    });
}

/// Sleeps without a timer driver (a thread), for bounding a wait in these tests.
async fn async_sleep(d: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let waker_slot: Arc<std::sync::Mutex<Option<std::task::Waker>>> = Default::default();
    let slot = waker_slot.clone();
    std::thread::spawn(move || {
        let _ = rx.recv_timeout(d);
        flag.store(true, Ordering::SeqCst);
        if let Some(w) = slot.lock().unwrap().take() {
            w.wake();
        }
    });
    std::future::poll_fn(|cx| {
        *waker_slot.lock().unwrap() = Some(cx.waker().clone());
        if done.load(Ordering::SeqCst) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    drop(tx);
}

/// Data and the peer's close that arrive before the first read: the short read does not make
/// the next one wait for an event that will never come (EOF is already there).
#[test]
fn a_short_read_before_a_seen_close_still_finds_eof() {
    let d = driver();
    block_on(async {
        for _ in 0..50 {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(b"bye").await.unwrap();
            a.close().await.unwrap();
            // Let the driver thread see both the data and the hang-up first.
            std::thread::sleep(Duration::from_millis(2));
            d.reactor.wake();
            let mut got = Vec::new();
            let read = futures_lite::future::or(
                async { b.read_to_end(&mut got).await.map(Some) },
                async {
                    async_sleep(Duration::from_secs(10)).await;
                    Ok(None)
                },
            )
            .await
            .unwrap();
            assert_eq!(read, Some(3), "EOF is found without a new event");
        }
    });
}
