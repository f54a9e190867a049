//! Conformance tests of the toolbox a tokio user reaches for first: JoinSet, select!/join!,
//! spawn_local, sync, fs, process, signal, io. Current-thread and 2 workers, every scheduler.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use facade::prelude::*;
use facade::sync::mpsc;
use facade::task::JoinSet;
use facade::time;

use crate::Make;
use crate::util::{LIMIT, panic_message, within};

fn rt(make: Make, workers: usize) -> facade::Runtime {
    make(workers)
        .build()
        .expect("the scheduler under test builds")
}

/// Counts its drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// JoinSet returns outputs in the order tasks finish; an AbortHandle cancels one; dropping the
/// set aborts (and drops) what is left in it.
pub fn join_set_order_abort_and_drop(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let mut set = JoinSet::new();
                for (i, ms) in [(0u32, 60u64), (1, 5), (2, 30)] {
                    set.spawn(async move {
                        time::sleep(Duration::from_millis(ms)).await;
                        i
                    });
                }
                let never = set.spawn(std::future::pending::<u32>());
                assert_eq!(set.len(), 4);
                let mut order = Vec::new();
                for _ in 0..3 {
                    order.push(set.join_next().await.unwrap().unwrap());
                }
                assert_eq!(order, [1, 2, 0], "outputs come in finishing order");
                assert!(!never.is_finished());
                never.clone().abort();
                let err = set.join_next().await.unwrap().unwrap_err();
                assert!(err.is_cancelled());
                assert!(never.is_finished(), "an aborted task is finished");
                assert!(set.join_next().await.is_none());
                assert!(set.is_empty() && set.try_join_next().is_none());

                let dropped = Arc::new(AtomicUsize::new(0));
                let mut set = JoinSet::new();
                for _ in 0..10 {
                    let d = DropCount(dropped.clone());
                    set.spawn(async move {
                        let _d = d;
                        std::future::pending::<()>().await
                    });
                }
                facade::yield_now().await;
                drop(set);
                for _ in 0..1000 {
                    if dropped.load(Ordering::SeqCst) == 10 {
                        break;
                    }
                    time::sleep(Duration::from_millis(1)).await;
                }
                assert_eq!(
                    dropped.load(Ordering::SeqCst),
                    10,
                    "dropping the set aborts"
                );

                let mut set = JoinSet::new();
                for i in 0..100u32 {
                    set.spawn(async move { i });
                }
                set.shutdown().await;
                assert!(set.is_empty());
            });
        }
    });
}

/// select!: the losers are dropped before the winner's branch runs; `biased;` polls in order;
/// a pattern that does not match disables its branch; `else` runs when all are disabled; and a
/// loop over always-ready branches still yields to other tasks (the cooperative budget).
pub fn select_drops_losers_and_respects_the_budget(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let dropped = Arc::new(AtomicUsize::new(0));
                let d = DropCount(dropped.clone());
                let seen = facade::select! {
                    _ = async move { let _d = d; std::future::pending::<()>().await } => usize::MAX,
                    _ = time::sleep(Duration::from_millis(5)) => dropped.load(Ordering::SeqCst),
                };
                assert_eq!(seen, 1, "the loser was dropped before the branch ran");

                for _ in 0..20 {
                    let first = facade::select! {
                        biased;
                        v = async { 1 } => v,
                        v = async { 2 } => v,
                    };
                    assert_eq!(first, 1);
                }

                let got = facade::select! {
                    Some(v) = async { None::<u32> } => v,
                    v = async { 9 } => v,
                };
                assert_eq!(got, 9, "a branch whose pattern does not match is disabled");
                // A block handler needs no comma, even before a pattern that starts with `(`.
                let got;
                facade::select! {
                    biased;
                    _ = std::future::pending::<()>() => { got = 1 }
                    (a, b) = async { (2, 3) } => { got = a + b }
                }
                assert_eq!(got, 5);
                let flag = false;
                let got = facade::select! {
                    Some(v) = async { None::<u32> } => v,
                    v = async { 5 }, if flag => v,
                    else => 7,
                };
                assert_eq!(got, 7);

                // Always-ready branches in a loop: another task must get to run.
                let stop = Arc::new(AtomicBool::new(false));
                let s = stop.clone();
                facade::spawn(async move { s.store(true, Ordering::SeqCst) });
                while !stop.load(Ordering::SeqCst) {
                    facade::select! {
                        _ = std::future::ready(()) => {}
                        _ = std::future::ready(()) => {}
                    }
                }

                let (a, b, c) =
                    facade::join!(async { 1 }, time::sleep(Duration::from_millis(2)), async {
                        "c"
                    });
                assert_eq!((a, b, c), (1, (), "c"));
                let dropped = Arc::new(AtomicUsize::new(0));
                let d = DropCount(dropped.clone());
                let r: Result<((), ()), &str> = facade::try_join!(
                    async move {
                        let _d = d;
                        std::future::pending::<Result<(), &str>>().await
                    },
                    async { Err("boom") }
                );
                assert_eq!(r, Err("boom"));
                assert_eq!(
                    dropped.load(Ordering::SeqCst),
                    1,
                    "try_join! drops the rest on error"
                );
            });
        }
    });
}

/// `!Send` futures run on a LocalRuntime under every scheduler: local tasks spawn local tasks,
/// interleave with ordinary ones, can be aborted, and are dropped on their own thread when the
/// runtime goes; spawn_local elsewhere panics with a message that says where it works.
pub fn spawn_local_runs_not_send_futures(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers).build_local().expect("builds");
            let count = Rc::new(Cell::new(0u32));
            let c = count.clone();
            rt.block_on(async move {
                let mut handles = Vec::new();
                for _ in 0..50 {
                    let c = c.clone();
                    handles.push(facade::task::spawn_local(async move {
                        facade::yield_now().await;
                        let inner = c.clone();
                        facade::task::spawn_local(async move { inner.set(inner.get() + 1) })
                            .await
                            .unwrap();
                        time::sleep(Duration::from_millis(1)).await;
                        c.set(c.get() + 1);
                    }));
                }
                // Ordinary tasks run meanwhile.
                let send = facade::spawn(async { 40 + 2 });
                for h in handles {
                    h.await.unwrap();
                }
                assert_eq!(send.await.unwrap(), 42);
                let pending = facade::task::spawn_local(std::future::pending::<()>());
                pending.abort();
                assert!(pending.await.unwrap_err().is_cancelled());
                let panics = facade::task::spawn_local(async { panic!("local boom") });
                assert!(panics.await.unwrap_err().is_panic());
                // A set of local tasks (each holds an `Rc` across an await: not `Send`).
                let mut set = JoinSet::new();
                for i in 0..10u32 {
                    let rc = Rc::new(i);
                    set.spawn_local(async move {
                        facade::yield_now().await;
                        *rc
                    });
                }
                let mut sum = 0;
                while let Some(r) = set.join_next().await {
                    sum += r.unwrap();
                }
                assert_eq!(sum, 45);
            });
            assert_eq!(count.get(), 100);

            // A local task still waiting when the runtime goes is dropped here, once.
            let dropped = Rc::new(Cell::new(0u32));
            struct RcDrop(Rc<Cell<u32>>);
            impl Drop for RcDrop {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            let d = RcDrop(dropped.clone());
            rt.spawn_local(async move {
                let _d = d;
                std::future::pending::<()>().await
            });
            rt.block_on(facade::yield_now());
            drop(rt);
            assert_eq!(dropped.get(), 1);

            // Shut down with a bound: a waiting local task is dropped here as well.
            let rt = make(workers).build_local().expect("builds");
            let d = RcDrop(dropped.clone());
            rt.spawn_local(async move {
                let _d = d;
                std::future::pending::<()>().await
            });
            rt.block_on(facade::yield_now());
            rt.shutdown_timeout(Duration::from_secs(5));
            assert_eq!(dropped.get(), 2);

            let outside = rt_outside_panics(make, workers);
            assert!(outside.contains("build_local"), "message: {outside}");
        }
    });
}

fn rt_outside_panics(make: Make, workers: usize) -> String {
    let rt = rt(make, workers);
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { drop(facade::task::spawn_local(async {})) })
    }))
    .expect_err("spawn_local outside a LocalRuntime panics");
    panic_message(&*p)
}

/// Channels under load lose nothing, and a receiver that is always ready still yields.
pub fn channels_lose_nothing_and_spend_the_budget(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let (tx, mut rx) = mpsc::channel::<u64>(8);
                for p in 0..4u64 {
                    let tx = tx.clone();
                    facade::spawn(async move {
                        for i in 0..5_000 {
                            tx.send(p * 1_000_000 + i).await.unwrap();
                        }
                    });
                }
                drop(tx);
                let (mut n, mut sum) = (0u64, 0u64);
                while let Some(v) = rx.recv().await {
                    n += 1;
                    sum += v;
                }
                assert_eq!(n, 20_000);
                assert_eq!(
                    sum,
                    (0..4)
                        .map(|p| p * 1_000_000 * 5_000 + 4_999 * 5_000 / 2)
                        .sum::<u64>()
                );

                let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
                for i in 0..20_000 {
                    tx.send(i).unwrap();
                }
                let other_ran = Arc::new(AtomicBool::new(false));
                let o = other_ran.clone();
                facade::spawn(async move { o.store(true, Ordering::SeqCst) });
                let mut before = 0;
                for _ in 0..20_000 {
                    rx.recv().await.unwrap();
                    if !other_ran.load(Ordering::SeqCst) {
                        before += 1;
                    }
                }
                // On one thread the other task runs only if the receiver yields; with workers it
                // runs on one of them whenever the OS lets it, so only current-thread mode can
                // tell.
                if workers == 0 {
                    assert!(other_ran.load(Ordering::SeqCst));
                    assert!(before < 20_000, "the receiver never yielded");
                }

                let (btx, mut b1) = facade::sync::broadcast::channel::<u8>(16);
                let mut b2 = btx.subscribe();
                btx.send(3).unwrap();
                assert_eq!((b1.recv().await.unwrap(), b2.recv().await.unwrap()), (3, 3));
                let (otx, orx) = facade::sync::oneshot::channel();
                facade::spawn(async move { otx.send(5).unwrap() });
                assert_eq!(orx.await.unwrap(), 5);
                let m = Arc::new(facade::sync::Mutex::new(0));
                let mut set = JoinSet::new();
                for _ in 0..8 {
                    let m = m.clone();
                    set.spawn(async move {
                        for _ in 0..100 {
                            *m.lock().await += 1;
                            facade::yield_now().await;
                        }
                    });
                }
                while set.join_next().await.is_some() {}
                assert_eq!(*m.lock().await, 800);
            });
        }
    });
}

/// A file of several MiB written in small pieces reads back identical, through `fs::read`
/// and through small reads of a `File`, with seeks, `set_len` and directory listing.
pub fn fs_round_trip_with_a_large_file(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async move {
                let dir = std::env::temp_dir().join(format!(
                    "conformance-fs-{}-{workers}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                facade::fs::create_dir_all(&dir).await.unwrap();
                let path = dir.join("big.bin");
                let data: Vec<u8> = (0..3 * 1024 * 1024u32)
                    .map(|i| (i * 7 % 251) as u8)
                    .collect();
                let mut f = facade::fs::File::create(&path).await.unwrap();
                for chunk in data.chunks(1000) {
                    f.write_all(chunk).await.unwrap();
                }
                f.flush().await.unwrap();
                f.sync_all().await.unwrap();
                drop(f);
                assert_eq!(facade::fs::read(&path).await.unwrap(), data);
                let mut f = facade::fs::File::open(&path).await.unwrap();
                let mut back = Vec::new();
                let mut buf = [0u8; 777];
                loop {
                    let n = f.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    back.extend_from_slice(&buf[..n]);
                }
                assert!(back == data, "small reads give back the file");
                let pos = f.seek(std::io::SeekFrom::Start(12345)).await.unwrap();
                assert_eq!(pos, 12345);
                let mut b = [0u8; 10];
                f.read_exact(&mut b).await.unwrap();
                assert_eq!(&b, &data[12345..12355]);
                let pos = f.seek(std::io::SeekFrom::Current(0)).await.unwrap();
                assert_eq!(pos, 12355, "read-ahead does not move the logical position");

                let mut f = facade::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .await
                    .unwrap();
                f.set_len(100).await.unwrap();
                assert_eq!(f.metadata().await.unwrap().len(), 100);
                f.seek(std::io::SeekFrom::End(0)).await.unwrap();
                f.write_all(b"tail").await.unwrap();
                f.flush().await.unwrap();
                let mut all = Vec::new();
                f.seek(std::io::SeekFrom::Start(0)).await.unwrap();
                f.read_to_end(&mut all).await.unwrap();
                assert_eq!(&all[..100], &data[..100]);
                assert_eq!(&all[100..], b"tail");
                let std_file = f.into_std().await;
                assert_eq!(std_file.metadata().unwrap().len(), 104);

                facade::fs::write(dir.join("a.txt"), "a").await.unwrap();
                facade::fs::rename(dir.join("a.txt"), dir.join("b.txt"))
                    .await
                    .unwrap();
                facade::fs::copy(dir.join("b.txt"), dir.join("c.txt"))
                    .await
                    .unwrap();
                assert_eq!(
                    facade::fs::read_to_string(dir.join("c.txt")).await.unwrap(),
                    "a"
                );
                let mut names = Vec::new();
                let mut rd = facade::fs::read_dir(&dir).await.unwrap();
                while let Some(e) = rd.next_entry().await.unwrap() {
                    names.push(e.file_name().into_string().unwrap());
                }
                names.sort();
                assert_eq!(names, ["b.txt", "big.bin", "c.txt"]);
                facade::fs::remove_file(dir.join("b.txt")).await.unwrap();
                assert!(!facade::fs::try_exists(dir.join("b.txt")).await.unwrap());
                let missing = facade::fs::read(dir.join("missing")).await.unwrap_err();
                assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
                facade::fs::remove_dir_all(&dir).await.unwrap();
            });
        }
    });
}

/// Child processes: output and exit status, piped stdin, kill_on_drop, and many children
/// waited on at once.
pub fn processes_output_status_kill_and_many_waits(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                use facade::process::{Command, Stdio};
                let out = Command::new("sh")
                    .args(["-c", "echo out; echo err >&2; exit 3"])
                    .output()
                    .await
                    .unwrap();
                assert_eq!(out.status.code(), Some(3));
                assert_eq!(out.stdout, b"out\n");
                assert_eq!(out.stderr, b"err\n");

                let mut cat = Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = cat.stdin.take().unwrap();
                stdin.write_all(b"through cat").await.unwrap();
                drop(stdin);
                let out = cat.wait_with_output().await.unwrap();
                assert_eq!(out.stdout, b"through cat");

                let sleeper = Command::new("sleep")
                    .arg("30")
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                let pid = sleeper.id().unwrap();
                drop(sleeper);
                let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
                assert!(
                    !proc_dir.exists(),
                    "kill_on_drop killed and reaped the child"
                );

                // Twenty children waited on at once, each by its own task.
                let mut set = JoinSet::new();
                for i in 0..20 {
                    set.spawn(async move {
                        let script = format!("sleep 0.0{}; exit {i}", i % 5);
                        let mut kid = Command::new("sh").args(["-c", &script]).spawn().unwrap();
                        (i, kid.wait().await.unwrap().code())
                    });
                }
                let mut codes = Vec::new();
                while let Some(r) = set.join_next().await {
                    let (i, code) = r.unwrap();
                    assert_eq!(code, Some(i));
                    codes.push(i);
                }
                assert_eq!(codes.len(), 20);

                let mut long = Command::new("sleep").arg("30").spawn().unwrap();
                long.kill().await.unwrap();
                assert!(long.id().is_none());
                let missing = Command::new("/nonexistent/program").spawn().unwrap_err();
                assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
            });
        }
    });
}

/// A signal sent to ourselves reaches every listener, through the reactor.
pub fn signals_reach_every_listener(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                use facade::signal::unix::{SignalKind, signal};
                let mut a = signal(SignalKind::user_defined1()).unwrap();
                let mut b = signal(SignalKind::user_defined1()).unwrap();
                let waiter = facade::spawn(async move {
                    b.recv().await.unwrap();
                });
                rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::USR1,
                )
                .unwrap();
                time::timeout(Duration::from_secs(5), a.recv())
                    .await
                    .expect("listener a got the signal");
                time::timeout(Duration::from_secs(5), waiter)
                    .await
                    .expect("listener b got the signal")
                    .unwrap();
                let refused = signal(SignalKind::from_raw(9)).unwrap_err();
                assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
            });
        }
    });
}

/// io::copy moves a stream over TCP, and copy_bidirectional proxies both ways over duplex pipes.
pub fn io_copy_over_tcp_and_duplex(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = rt(make, workers);
            rt.block_on(async {
                let listener = facade::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
                let sent = data.clone();
                let server = facade::spawn(async move {
                    let (conn, _) = listener.accept().await.unwrap();
                    let mut sink = Vec::new();
                    facade::io::copy(conn, &mut sink).await.unwrap();
                    sink
                });
                let mut c = facade::net::TcpStream::connect(addr).await.unwrap();
                let n = facade::io::copy(&sent[..], &mut c).await.unwrap();
                assert_eq!(n, 200_000);
                c.close().await.unwrap();
                drop(c);
                assert!(server.await.unwrap() == data);

                let (mut client, mut p1) = facade::io::duplex(1024);
                let (mut p2, mut server) = facade::io::duplex(1024);
                let proxy =
                    facade::spawn(
                        async move { facade::io::copy_bidirectional(&mut p1, &mut p2).await },
                    );
                let echo = facade::spawn(async move {
                    let mut buf = vec![0u8; 50_000];
                    server.read_exact(&mut buf).await.unwrap();
                    server.write_all(&buf).await.unwrap();
                });
                let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 13) as u8).collect();
                let mut back = vec![0u8; 50_000];
                client.write_all(&payload).await.unwrap();
                client.read_exact(&mut back).await.unwrap();
                assert!(back == payload);
                echo.await.unwrap();
                drop(client);
                let (a_to_b, b_to_a) = proxy.await.unwrap().unwrap();
                assert_eq!((a_to_b, b_to_a), (50_000, 50_000));
            });
        }
    });
}
