//! Fault: the process has no file descriptors left. Opening a file, binding a socket and
//! listening for a signal each fail with an error (EMFILE); a child still starts and its exit is
//! seen through the fallback wait (no pidfd); nothing panics or hangs, and all of them work
//! again once descriptors are free. In a test binary of its own: the
//! limit is process-wide.

use std::time::Duration;

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

#[test]
fn every_resource_reports_emfile_and_works_again() {
    let rt = facade::Builder::new_current_thread().build().unwrap();
    let dir = std::env::temp_dir().join(format!("facade-no-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f");
    std::fs::write(&path, b"x").unwrap();
    let saved = getrlimit(Resource::Nofile);
    rt.block_on(async {
        // Let the blocking pool start its thread while it still can (threads need no fd).
        facade::spawn_blocking(|| ()).await.unwrap();
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(fd_ceiling()),
                maximum: saved.maximum,
            },
        )
        .unwrap();
        // Fill the free numbers below the limit: now no descriptor is left.
        let mut fillers = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            fillers.push(f);
        }
        let emfile = |e: std::io::Error, what: &str| {
            assert_eq!(e.raw_os_error(), Some(24), "{what}: {e}"); // EMFILE
        };
        emfile(
            facade::fs::File::open(&path).await.unwrap_err(),
            "fs::File::open",
        );
        emfile(facade::fs::read(&path).await.unwrap_err(), "fs::read");
        emfile(
            facade::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_err(),
            "TcpListener::bind",
        );
        emfile(
            facade::signal::unix::signal(facade::signal::unix::SignalKind::user_defined2())
                .unwrap_err(),
            "signal",
        );
        // A child needs no descriptor of ours to start (std spawns without a pipe here), but
        // its pidfd cannot be opened: its exit is then waited for on the timer (the fallback).
        let mut child = facade::process::Command::new("true").spawn().unwrap();
        let status = facade::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the fallback wait sees the exit")
            .unwrap();
        assert!(status.success());
        // Timers need no descriptor: the runtime itself keeps working.
        facade::time::sleep(Duration::from_millis(1)).await;
        drop(fillers);
        setrlimit(Resource::Nofile, saved).unwrap();
        assert_eq!(facade::fs::read(&path).await.unwrap(), b"x");
        facade::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        drop(
            facade::signal::unix::signal(facade::signal::unix::SignalKind::user_defined2())
                .unwrap(),
        );
        let status = facade::process::Command::new("true")
            .status()
            .await
            .unwrap();
        assert!(status.success());
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
