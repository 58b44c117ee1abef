//! `sluice verify` as a process: its exit code and what it prints, on a directory a node
//! wrote, then damaged, then with an orphan, then locked by a running server.

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use s2_common::config::{BasinConfig, OptionalStreamConfig};
use sluice::{
    engine::{AppendInput, AutoCreate, Engine, EngineConfig, RecordBatchBuilder},
    internals::{Manifest, layout},
    storage::{DynStore, LocalStore},
};

fn env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("SLUICE_BUCKET")
}

fn verify(dir: &Path, args: &[&str]) -> Output {
    env(Command::new(env!("CARGO_BIN_EXE_sluice")).arg("verify"))
        .arg("--local-root")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn body(bytes: &[u8]) -> AppendInput {
    let mut b = RecordBatchBuilder::new();
    b.push(None, std::iter::empty(), bytes).unwrap();
    AppendInput {
        batch: b.finish().unwrap(),
        match_seq_num: None,
        fencing_token: None,
    }
}

/// Writes a stream into `dir` through the engine, in a runtime of its own that is gone
/// (and with it the directory's lock) when this returns; the stream's data id and the key
/// of a chunk with an object of its own.
fn prepare(dir: &Path) -> (String, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let id = runtime.block_on(async {
        let store: DynStore = Arc::new(LocalStore::open(dir).unwrap());
        let config = EngineConfig {
            poll: None,
            ..EngineConfig::default()
        };
        let engine = Engine::new(store, config);
        engine
            .create_basin("cli-basin", BasinConfig::default(), None)
            .await
            .unwrap();
        engine
            .create_stream("cli-basin", "s", OptionalStreamConfig::default(), None)
            .await
            .unwrap();
        let h = engine.open("cli-basin", "s", AutoCreate::No).await.unwrap();
        for i in 0..20 {
            let input = if i == 3 {
                body(&vec![9u8; 300 * 1024])
            } else {
                body(format!("record {i}").as_bytes())
            };
            engine.append(&h, input, None).await.unwrap();
        }
        h.core.id.clone()
    });
    drop(runtime);
    let manifest = std::fs::read(dir.join(layout::manifest_key(&id))).unwrap();
    let m = Manifest::decode_object(&manifest).unwrap();
    let own = m
        .chunks
        .iter()
        .find(|c| !c.inline && c.pack.is_none())
        .expect("the big chunk")
        .key(&id);
    (id, own)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn verify_exits_zero_only_on_a_sound_directory_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (id, chunk) = prepare(dir.path());

    let out = verify(dir.path(), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("manifests"), "{stdout}");
    assert!(stdout.contains("chunk objects"), "{stdout}");
    assert!(stdout.trim_end().ends_with("result: sound"), "{stdout}");

    let out = verify(dir.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["counts"]["records"], 20, "{json}");

    // A young orphan passes with the default grace and fails with none.
    let orphan = layout::chunk_key(&id, 1_000, 0xdead);
    let path = dir.path().join(&orphan);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"a failed attempt").unwrap();
    let out = verify(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains(&orphan));
    let out = verify(dir.path(), &["--grace-secs", "0"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("{orphan}  chunk")), "{stdout}");
    assert!(stdout.contains("[FAIL]"), "{stdout}");
    std::fs::remove_file(&path).unwrap();

    // A flipped byte in a chunk.
    let path = dir.path().join(&chunk);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, Bytes::from(bytes)).unwrap();
    let out = verify(dir.path(), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{chunk} (chunk): chunk 3..4: corrupt chunk: checksum mismatch"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("result: NOT SOUND"), "{stdout}");
}

#[test]
fn verify_refuses_a_directory_a_server_is_using() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = env(Command::new(env!("CARGO_BIN_EXE_sluice")).arg("serve"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--local-root")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = verify(dir.path(), &[]);
    server.kill().unwrap();
    server.wait().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another Sluice process"),
        "{stderr}"
    );
}
