//! The `sluice` binary as a process: the embedded default's directory lock, graceful
//! shutdown on SIGTERM, and transparent huge pages turned off.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sluice(dir: &std::path::Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--local-root")
        .arg(dir)
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "server did not become healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_process_on_the_same_directory_fails_fast_and_sigterm_stops_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = sluice(dir.path(), port).spawn().unwrap();
    wait_healthy(port);

    let started = Instant::now();
    let second = sluice(dir.path(), free_port()).output().unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another Sluice process"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");

    // SAFETY: sending a signal to a child we own.
    let rc = unsafe { kill(first.id() as i32, 15) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit: {status:?}");
    // The lock went with the process.
    let mut third = sluice(dir.path(), port).spawn().unwrap();
    wait_healthy(port);
    third.kill().unwrap();
    third.wait().unwrap();
}

/// The kernel reports the process's `PR_SET_THP_DISABLE` as `THP_enabled: 0` (since
/// Linux 5.0); a kernel without the line has nothing to check.
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = sluice(dir.path(), port).spawn().unwrap();
    wait_healthy(port);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        return;
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// The orphan sweep's grace is a flag: a duration is taken, anything else refused by name.
#[test]
fn the_orphan_grace_is_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let refused = sluice(dir.path(), free_port())
        .args(["--orphan-grace", "soon"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--orphan-grace"));

    let port = free_port();
    let mut server = sluice(dir.path(), port)
        .args(["--orphan-grace", "10s"])
        .spawn()
        .unwrap();
    wait_healthy(port);
    server.kill().unwrap();
    server.wait().unwrap();
}
