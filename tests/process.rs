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

/// Bad TLS files stop the start with an error naming the flag and the file.
#[test]
fn bad_tls_files_are_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let out = sluice(dir.path(), free_port())
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read --tls-cert"), "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = sluice(dir.path(), free_port())
        .arg("--tls-cert")
        .arg(&not_pem)
        .arg("--tls-key")
        .arg(&not_pem)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no CERTIFICATE"), "{stderr}");

    // --tls-cert without --tls-key, and --tls-self with files, are usage errors.
    let out = sluice(dir.path(), free_port())
        .arg("--tls-cert")
        .arg(&not_pem)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = sluice(dir.path(), free_port())
        .args(["--tls-self", "--tls-cert"])
        .arg(&not_pem)
        .arg("--tls-key")
        .arg(&not_pem)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

const INIT_ROOT: &str = "init-file-root-token";
/// The secret of the token `reader`: the id in hex, a dot, 32 bytes in hex.
const READER_SECRET: &str =
    "726561646572.00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn init_file(retention: &str) -> String {
    format!(
        r#"{{
          "basins": [{{
            "name": "init-basin",
            "config": {{"create_stream_on_append": true,
                        "default_stream_config": {{"storage_class": "standard"}}}},
            "streams": [
              {{"name": "events", "config": {{"retention_policy": "{retention}",
                                             "timestamping": {{"mode": "client-require"}}}}}},
              {{"name": "plain"}}
            ]
          }}],
          "access_tokens": [{{
            "id": "reader",
            "secret": "{READER_SECRET}",
            "scope": {{"basins": {{"exact": "init-basin"}}, "streams": {{"prefix": ""}}, "op_groups": {{"stream": {{"read": true}}}},
                       "ops": ["list-streams"]}}
          }}]
        }}"#
    )
}

/// What the node holds of the init file's resources, as JSON.
async fn init_state(port: u16) -> serde_json::Value {
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/v1");
    let get = |path: String, token: &str| {
        http.get(format!("{base}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .header("s2-basin", "init-basin")
            .send()
    };
    let json = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200, "{:?}", r.url().clone());
        r.json::<serde_json::Value>().await.unwrap()
    };
    let basins = json(get("/basins".into(), INIT_ROOT).await.unwrap()).await;
    let basin = json(get("/basins/init-basin".into(), INIT_ROOT).await.unwrap()).await;
    let streams = json(get("/streams".into(), READER_SECRET).await.unwrap()).await;
    let events = json(get("/streams/events".into(), INIT_ROOT).await.unwrap()).await;
    let plain = json(get("/streams/plain".into(), INIT_ROOT).await.unwrap()).await;
    let tokens = json(get("/access-tokens".into(), INIT_ROOT).await.unwrap()).await;
    // The declared token is scoped: it may not list basins.
    let denied = get("/basins".into(), READER_SECRET).await.unwrap().status();
    serde_json::json!({
        "basins": basins, "basin": basin, "streams": streams, "events": events,
        "plain": plain, "tokens": tokens, "reader_lists_basins": denied.as_u16(),
    })
}

fn with_init_file(dir: &std::path::Path, port: u16, file: &std::path::Path) -> std::process::Child {
    sluice(dir, port)
        .arg("--init-file")
        .arg(file)
        .env("SLUICE_ROOT_TOKEN", INIT_ROOT)
        .spawn()
        .unwrap()
}

/// An init file's basins, streams (with configs) and token exist after start; a restart
/// with the same file changes nothing; a changed config in the file is applied; a bad file
/// stops the start with an error naming the problem.
#[test]
fn an_init_file_is_applied_idempotently() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("init.json");
    std::fs::write(&file, init_file("7days")).unwrap();

    let port = free_port();
    let mut node = with_init_file(&data, port, &file);
    wait_healthy(port);
    let first = runtime.block_on(init_state(port));
    node.kill().unwrap();
    node.wait().unwrap();
    assert_eq!(
        first["basins"]["basins"].as_array().unwrap().len(),
        1,
        "{first}"
    );
    assert_eq!(first["basin"]["create_stream_on_append"], true, "{first}");
    let names: Vec<_> = first["streams"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["events", "plain"], "{first}");
    assert_eq!(
        first["events"]["retention_policy"]["age"],
        7 * 24 * 3600,
        "{first}"
    );
    assert_eq!(
        first["events"]["timestamping"]["mode"], "client-require",
        "{first}"
    );
    // Fields the stream leaves out come from the basin's defaults.
    assert_eq!(first["events"]["storage_class"], "standard", "{first}");
    assert_eq!(first["plain"]["storage_class"], "standard", "{first}");
    assert_eq!(
        first["tokens"]["access_tokens"][0]["id"], "reader",
        "{first}"
    );
    assert_eq!(first["reader_lists_basins"], 403, "{first}");

    // The same file again: nothing changes, nothing is duplicated.
    let mut node = with_init_file(&data, port, &file);
    wait_healthy(port);
    let second = runtime.block_on(init_state(port));
    node.kill().unwrap();
    node.wait().unwrap();
    assert_eq!(second, first);

    // A changed config is applied.
    std::fs::write(&file, init_file("infinite")).unwrap();
    let mut node = with_init_file(&data, port, &file);
    wait_healthy(port);
    let third = runtime.block_on(init_state(port));
    node.kill().unwrap();
    node.wait().unwrap();
    assert_eq!(
        third["events"]["retention_policy"]["infinite"],
        serde_json::json!({}),
        "{third}"
    );
    assert_eq!(third["streams"], first["streams"]);

    // A bad file: the node does not start, and says why.
    std::fs::write(&file, init_file("0s")).unwrap();
    let out = sluice(&data, free_port())
        .arg("--init-file")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("init.json"), "{stderr}");
    assert!(
        stderr.contains("stream \"events\" in basin \"init-basin\""),
        "{stderr}"
    );
    std::fs::write(&file, r#"{"basins": [], "tokens": []}"#).unwrap();
    let out = sluice(&data, free_port())
        .arg("--init-file")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `tokens`"));
}
