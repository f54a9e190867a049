//! A tokio-style program that uses nothing but facade: JoinSet, select!/join!, sync, fs,
//! process, signal, io, the prelude and a LocalRuntime.
//!
//! Run: `cargo run -p facade --example toolbox` (any `RUNTIME_SCHEDULER`).

use std::rc::Rc;
use std::time::Duration;

use facade::prelude::*;
use facade::signal::unix::{SignalKind, signal};
use facade::sync::{Mutex, mpsc, oneshot};
use facade::task::JoinSet;

#[facade::main(scheduler = "fifo", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    // Tasks in a set, results through a channel, a shared counter behind an async mutex.
    let total = std::sync::Arc::new(Mutex::new(0u64));
    let (tx, mut rx) = mpsc::channel(16);
    let mut set = JoinSet::new();
    for i in 1..=10u64 {
        let (tx, total) = (tx.clone(), total.clone());
        set.spawn(async move {
            *total.lock().await += i;
            tx.send(i * i).await.unwrap();
        });
    }
    drop(tx);
    while let Some(done) = set.join_next().await {
        done?;
    }
    let mut squares = 0;
    loop {
        facade::select! {
            v = rx.recv() => match v {
                Some(v) => squares += v,
                None => break, // every sender is gone
            },
            _ = facade::time::sleep(Duration::from_secs(5)) => panic!("the channel stalled"),
        }
    }
    assert_eq!((*total.lock().await, squares), (55, 385));

    // Files: write, read back, append through a File, copy with io::copy.
    let dir = std::env::temp_dir().join(format!("facade-toolbox-{}", std::process::id()));
    facade::fs::create_dir_all(&dir).await?;
    let path = dir.join("numbers.txt");
    facade::fs::write(&path, format!("{squares}\n")).await?;
    let mut f = facade::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await?;
    f.write_all(b"done\n").await?;
    f.flush().await?;
    let text = facade::fs::read_to_string(&path).await?;
    assert_eq!(text, "385\ndone\n");
    let mut copy = Vec::new();
    facade::io::copy(facade::fs::File::open(&path).await?, &mut copy).await?;
    assert_eq!(copy, text.as_bytes());

    // A child process, and a signal sent to ourselves.
    let out = facade::process::Command::new("wc")
        .arg("-l")
        .arg(&path)
        .output()
        .await?;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with('2'));
    let mut usr1 = signal(SignalKind::user_defined1())?;
    facade::process::Command::new("kill")
        .args(["-USR1", &std::process::id().to_string()])
        .status()
        .await?;
    usr1.recv().await;

    // join!, and a oneshot answered from the blocking pool.
    let (otx, orx) = oneshot::channel();
    facade::spawn_blocking(move || otx.send(6 * 7).unwrap());
    let (answer, ()) = facade::join!(orx, facade::time::sleep(Duration::from_millis(1)));
    assert_eq!(answer.unwrap(), 42);

    // !Send futures on a LocalRuntime, on a thread of its own.
    let local = std::thread::spawn(|| {
        let rt = facade::Builder::new_current_thread().build_local().unwrap();
        rt.block_on(async {
            let shared = Rc::new(std::cell::Cell::new(0));
            let s = shared.clone();
            facade::task::spawn_local(async move { s.set(7) })
                .await
                .unwrap();
            shared.get()
        })
    });
    assert_eq!(local.join().unwrap(), 7);

    facade::fs::remove_dir_all(&dir).await?;
    println!(
        "toolbox: all parts ran on the {} scheduler",
        facade::Handle::current().as_core().scheduler_name()
    );
    Ok(())
}
