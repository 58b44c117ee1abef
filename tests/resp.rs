//! The RESP listener of a real `sluice` process (`--redis-port`), over raw sockets: its
//! limits (a client that pipelines without reading is cut off and the node's memory
//! stays bounded; a malformed request closes that connection only; the client limit;
//! the idle timeout), authentication errors, the nil replies RESP2 and RESP3 tell apart,
//! a blocked read woken by another connection, shutdown with a blocked read open, and
//! encrypted streams refused, and pipelined `XADD`s sharing commits with their replies and
//! effects in request order.
//! Replies are compared byte for byte with what Redis 7.0.15 sends.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout},
};

struct Server {
    child: Child,
    http: u16,
    resp: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const PLATE: &str = "resp-test-plate";

/// A node with `--redis-port`, its plate created, `args` added to `sluice serve`.
async fn start(args: &[&str], token: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (http, resp) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["serve", "--host", "127.0.0.1", "--cache-mib", "64"])
        .args([
            "--port",
            &http.to_string(),
            "--redis-port",
            &resp.to_string(),
        ])
        .args(["--redis-plate", PLATE])
        .args(args)
        .arg("--local-root")
        .arg(dir.path())
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(t) = token {
        cmd.env("SLUICE_ROOT_TOKEN", t);
    }
    let child = cmd.spawn().expect("start sluice");
    let server = Server {
        child,
        http,
        resp,
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let created = client
            .post(format!("http://127.0.0.1:{http}/v1/basins"))
            .bearer_auth(token.unwrap_or("x"))
            .json(&serde_json::json!({"basin": PLATE}))
            .send()
            .await;
        if let Ok(r) = created
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.resp))
        .await
        .unwrap()
}

/// Sends `request` and reads until `expected.len()` bytes came (or 10 s passed).
async fn exchange(conn: &mut TcpStream, request: &str, expected: &str) {
    conn.write_all(request.as_bytes()).await.unwrap();
    let got = read_n(conn, expected.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        expected,
        "reply to {request:?}"
    );
}

async fn read_n(conn: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    timeout(Duration::from_secs(10), conn.read_exact(&mut got))
        .await
        .expect("a reply within 10 s")
        .expect("the connection open");
    got
}

/// Whether the server closes `conn` within `within` (reads up to the end).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut sink = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + within;
    loop {
        match timeout(deadline - Instant::now(), conn.read(&mut sink)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_and_memory_stays_bounded() {
    let server = start(&["--redis-output-buffer-limit", "1048576"], None).await;
    let mut other = connect(&server).await;
    exchange(&mut other, "PING\r\n", "+PONG\r\n").await;
    let before = rss_kib(server.child.id());
    // 64 KiB echoed per command; up to 512 MiB of replies asked for, none read.
    let mut greedy = connect(&server).await;
    let arg = "x".repeat(64 * 1024);
    let command = format!("*2\r\n$4\r\nECHO\r\n${}\r\n{arg}\r\n", arg.len()).repeat(16);
    let mut sent = 0usize;
    let mut cut = false;
    while sent < 512 * 1024 * 1024 {
        match timeout(
            Duration::from_secs(10),
            greedy.write_all(command.as_bytes()),
        )
        .await
        {
            Ok(Ok(())) => sent += command.len(),
            Ok(Err(_)) => {
                cut = true;
                break;
            }
            Err(_) => break, // the server stopped reading: it is closing the connection
        }
    }
    cut = cut || closed_within(&mut greedy, Duration::from_secs(10)).await;
    let after = rss_kib(server.child.id());
    println!(
        "sent {} MiB before the cut; RSS {before} KiB -> {after} KiB",
        sent >> 20
    );
    assert!(cut, "the client that never read was not disconnected");
    assert!(
        sent < 256 * 1024 * 1024,
        "the cut came late: {sent} bytes sent"
    );
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    exchange(&mut other, "PING\r\n", "+PONG\r\n").await;
}

#[tokio::test]
async fn malformed_requests_close_that_connection_only() {
    let server = start(&["--redis-proto-max-bulk-len", "1024"], None).await;
    let mut bystander = connect(&server).await;
    exchange(&mut bystander, "PING\r\n", "+PONG\r\n").await;
    for (request, error) in [
        (
            "*1\r\n+PING\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            "*x\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            "*1\r\n$1025\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "ECHO \"a\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ] {
        let mut conn = connect(&server).await;
        // A command before the bad frame is answered first.
        exchange(
            &mut conn,
            &format!("PING\r\n{request}"),
            &format!("+PONG\r\n{error}"),
        )
        .await;
        assert!(
            closed_within(&mut conn, Duration::from_secs(10)).await,
            "{request:?}"
        );
    }
    exchange(&mut bystander, "ECHO hi\r\n", "$2\r\nhi\r\n").await;
}

#[tokio::test]
async fn the_client_past_the_limit_is_refused() {
    let server = start(&["--redis-maxclients", "2"], None).await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    exchange(&mut a, "PING\r\n", "+PONG\r\n").await;
    exchange(&mut b, "PING\r\n", "+PONG\r\n").await;
    let mut c = connect(&server).await;
    let refusal = "-ERR max number of clients reached\r\n";
    assert_eq!(read_n(&mut c, refusal.len()).await, refusal.as_bytes());
    assert!(closed_within(&mut c, Duration::from_secs(10)).await);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = connect(&server).await;
        d.write_all(b"PING\r\n").await.unwrap();
        let mut first = [0u8; 1];
        if matches!(
            timeout(Duration::from_secs(5), d.read_exact(&mut first)).await,
            Ok(Ok(_))
        ) && first[0] == b'+'
        {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idle_connections_close_after_the_timeout() {
    let server = start(&["--redis-timeout", "1"], None).await;
    let mut conn = connect(&server).await;
    exchange(&mut conn, "PING\r\n", "+PONG\r\n").await;
    assert!(closed_within(&mut conn, Duration::from_secs(1 + 10)).await);
}

#[tokio::test]
async fn authentication_errors_are_redis_words() {
    let server = start(&[], Some("root-secret")).await;
    let mut conn = connect(&server).await;
    let noauth = "-NOAUTH Authentication required.\r\n";
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    exchange(&mut conn, "PING\r\n", noauth).await;
    exchange(&mut conn, "XLEN k\r\n", noauth).await;
    // Existence and arity come before NOAUTH, as in Redis.
    exchange(
        &mut conn,
        "GET k\r\n",
        "-ERR unknown command 'GET', with args beginning with: 'k' \r\n",
    )
    .await;
    exchange(
        &mut conn,
        "XLEN\r\n",
        "-ERR wrong number of arguments for 'xlen' command\r\n",
    )
    .await;
    exchange(&mut conn, "AUTH wrong\r\n", wrongpass).await;
    exchange(&mut conn, "AUTH no-such-plate-1 root-secret\r\n", wrongpass).await;
    exchange(&mut conn, &format!("AUTH {PLATE} wrong\r\n"), wrongpass).await;
    exchange(
        &mut conn,
        "HELLO 3\r\n",
        "-NOAUTH HELLO must be called with the client already authenticated, otherwise the \
         HELLO AUTH <user> <pass> option can be used to authenticate the client and select \
         the RESP protocol version at the same time\r\n",
    )
    .await;
    exchange(&mut conn, "AUTH a b c\r\n", "-ERR syntax error\r\n").await;
    exchange(&mut conn, "AUTH root-secret\r\n", "+OK\r\n").await;
    exchange(&mut conn, "XLEN k\r\n", ":0\r\n").await;
    // A second connection logs in with HELLO.
    let mut hello = connect(&server).await;
    hello
        .write_all(format!("HELLO 3 AUTH {PLATE} root-secret SETNAME app\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_n(&mut hello, 4).await;
    assert_eq!(&head, b"%7\r\n");
    // Before authenticating, a request may not be large (Redis 7.0's bounds).
    let mut big = connect(&server).await;
    exchange(
        &mut big,
        "*11\r\n",
        "-ERR Protocol error: unauthenticated multibulk length\r\n",
    )
    .await;
    let mut big = connect(&server).await;
    exchange(
        &mut big,
        "*1\r\n$16385\r\n",
        "-ERR Protocol error: unauthenticated bulk length\r\n",
    )
    .await;
}

#[tokio::test]
async fn nil_replies_are_told_apart_as_redis_does() {
    let server = start(&[], None).await;
    let mut conn = connect(&server).await;
    exchange(&mut conn, "XGROUP CREATE k g $ MKSTREAM\r\n", "+OK\r\n").await;
    // Bytes as Redis 7.0.15 sends them.
    exchange(
        &mut conn,
        "XREAD STREAMS k 0\r\nXRANGE k - + COUNT 0\r\nXPENDING k g\r\n\
         XREAD BLOCK 10 STREAMS k $\r\nXADD k NOMKSTREAM 1-1 f v\r\nXADD nokey NOMKSTREAM * f v\r\n",
        "*-1\r\n*-1\r\n*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n*-1\r\n$3\r\n1-1\r\n$-1\r\n",
    )
    .await;
    exchange(
        &mut conn,
        "HELLO 3\r\n",
        "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n",
    )
    .await;
    // The rest of HELLO's map: id (this connection's), mode, role, modules.
    let mut rest = Vec::new();
    while !rest.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        rest.extend(read_n(&mut conn, 1).await);
    }
    exchange(
        &mut conn,
        "XREAD STREAMS k 0\r\nXPENDING nokey g\r\nXPENDING k g\r\nXREAD STREAMS k 1-1\r\n",
        "%1\r\n$1\r\nk\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n\
         -NOGROUP No such key 'nokey' or consumer group 'g'\r\n\
         *4\r\n:0\r\n_\r\n_\r\n_\r\n_\r\n",
    )
    .await;
}

#[tokio::test]
async fn a_blocked_read_wakes_on_another_connections_append() {
    let server = start(&[], None).await;
    let mut reader = connect(&server).await;
    let mut writer = connect(&server).await;
    exchange(
        &mut writer,
        "XGROUP CREATE jobs g $ MKSTREAM\r\n",
        "+OK\r\n",
    )
    .await;
    reader
        .write_all(b"XREADGROUP GROUP g c1 BLOCK 0 STREAMS jobs >\r\n")
        .await
        .unwrap();
    // Pipelined behind the blocked read: answered after it.
    reader.write_all(b"PING\r\n").await.unwrap();
    exchange(&mut writer, "XADD jobs 5-1 task a\r\n", "$3\r\n5-1\r\n").await;
    let expected = "*1\r\n*2\r\n$4\r\njobs\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$4\r\ntask\r\n$1\r\na\r\n+PONG\r\n";
    assert_eq!(
        String::from_utf8_lossy(&read_n(&mut reader, expected.len()).await),
        expected
    );
    exchange(&mut reader, "XACK jobs g 5-1\r\n", ":1\r\n").await;
}

#[tokio::test]
async fn shutdown_closes_a_blocked_read_and_the_process_exits() {
    let mut server = start(&[], None).await;
    let mut blocked = connect(&server).await;
    exchange(&mut blocked, "PING\r\n", "+PONG\r\n").await;
    blocked
        .write_all(b"XREAD BLOCK 0 STREAMS never $\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // SAFETY: signalling our own child, which is still running.
    assert_eq!(unsafe { kill(server.child.id() as i32, 15) }, 0);
    assert!(closed_within(&mut blocked, Duration::from_secs(10)).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A RESP2 reply, as far as these tests read them.
#[derive(Debug, PartialEq)]
enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Value>),
}

/// One reply off the front of `buf` (with how many bytes it took), if complete.
fn parse(buf: &[u8]) -> Option<(Value, usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..end]).unwrap();
    let after = end + 2;
    Some(match buf[0] {
        b'+' => (Value::Simple(line.into()), after),
        b'-' => (Value::Error(line.into()), after),
        b':' => (Value::Int(line.parse().unwrap()), after),
        b'$' if line == "-1" => (Value::Nil, after),
        b'$' => {
            let n: usize = line.parse().unwrap();
            let data = buf.get(after..after + n)?.to_vec();
            buf.get(after + n..after + n + 2)?;
            (Value::Bulk(data), after + n + 2)
        }
        b'*' if line == "-1" => (Value::Nil, after),
        b'*' => {
            let mut at = after;
            let mut items = Vec::new();
            for _ in 0..line.parse::<usize>().unwrap() {
                let (v, used) = parse(&buf[at..])?;
                items.push(v);
                at += used;
            }
            (Value::Array(items), at)
        }
        other => panic!("not a RESP2 reply: {:?}", other as char),
    })
}

/// Reads `n` replies.
async fn replies(conn: &mut TcpStream, n: usize) -> Vec<Value> {
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    let mut chunk = vec![0u8; 64 * 1024];
    while out.len() < n {
        while out.len() < n
            && let Some((v, used)) = parse(&buf)
        {
            out.push(v);
            buf.drain(..used);
        }
        if out.len() == n {
            break;
        }
        let read = timeout(Duration::from_secs(30), conn.read(&mut chunk))
            .await
            .expect("replies within 30 s")
            .unwrap();
        assert!(read > 0, "closed after {} replies", out.len());
        buf.extend_from_slice(&chunk[..read]);
    }
    out
}

fn resp_command(words: &[&str]) -> String {
    let mut out = format!("*{}\r\n", words.len());
    for w in words {
        out += &format!("${}\r\n{w}\r\n", w.len());
    }
    out
}

/// A counter or a histogram's count from `/metrics`.
async fn metric(server: &Server, name: &str) -> u64 {
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", server.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics")) as u64
}

/// 1,000 `XADD`s sent at once, an id not above the top in the middle, then reads: every
/// reply in request order and as Redis gives it, the entries in request order, and the
/// writes sharing commits (one commit per `XADD` when each waits for the one before).
#[tokio::test]
async fn pipelined_xadds_share_commits_and_replies_keep_request_order() {
    let server = start(&[], None).await;
    let mut conn = connect(&server).await;
    let commits_before = metric(&server, "sluice_commit_bytes_count").await;
    let mut request = String::new();
    for i in 0..1000 {
        request += &if i == 500 {
            resp_command(&["XADD", "pipe", "1-1", "n", "bad"])
        } else {
            resp_command(&["XADD", "pipe", "*", "n", &i.to_string()])
        };
    }
    request += &resp_command(&["XLEN", "pipe"]);
    request += &resp_command(&["XRANGE", "pipe", "-", "+"]);
    request += &resp_command(&["XADD", "pipe", "MAXLEN", "2", "*", "n", "last"]);
    request += &resp_command(&["XLEN", "pipe"]);
    conn.write_all(request.as_bytes()).await.unwrap();
    let got = replies(&mut conn, 1004).await;

    let mut ids = Vec::new();
    for (i, reply) in got[..1000].iter().enumerate() {
        match reply {
            Value::Error(e) if i == 500 => assert_eq!(
                e,
                "ERR The ID specified in XADD is equal or smaller than the target stream top item"
            ),
            Value::Bulk(id) if i != 500 => ids.push(String::from_utf8(id.clone()).unwrap()),
            other => panic!("reply {i}: {other:?}"),
        }
    }
    assert_eq!(got[1000], Value::Int(999));
    let Value::Array(entries) = &got[1001] else {
        panic!("XRANGE: {:?}", got[1001]);
    };
    let expected: Vec<Value> = (0..1000)
        .filter(|&i| i != 500)
        .zip(&ids)
        .map(|(i, id)| {
            Value::Array(vec![
                Value::Bulk(id.clone().into_bytes()),
                Value::Array(vec![
                    Value::Bulk(b"n".to_vec()),
                    Value::Bulk(i.to_string().into_bytes()),
                ]),
            ])
        })
        .collect();
    assert_eq!(
        entries, &expected,
        "entries in request order, ids as replied"
    );
    assert!(matches!(&got[1002], Value::Bulk(_)), "{:?}", got[1002]);
    assert_eq!(got[1003], Value::Int(2));

    let commits = metric(&server, "sluice_commit_bytes_count").await - commits_before;
    println!("1,000 pipelined XADDs and a trimming one: {commits} commits");
    assert!(
        commits <= 250,
        "{commits} commits for 1,000 pipelined XADDs: they do not share commits"
    );
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// No RESP command can carry an encrypted stream's key: commands on one are refused, and
/// so is creating a key where the plate's basin would encrypt it; plain keys still work.
#[tokio::test]
async fn encrypted_streams_are_refused_with_an_err_reply() {
    let server = start(&[], None).await;
    let mut conn = connect(&server).await;
    exchange(&mut conn, "XADD plain 1-1 f v\r\n", "$3\r\n1-1\r\n").await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}/v1", server.http);
    let reply = http
        .patch(format!("{base}/basins/{PLATE}"))
        .json(&serde_json::json!({"stream_cipher": "aegis-256"}))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{reply:?}");
    let reply = http
        .post(format!("{base}/streams"))
        .header("s2-basin", PLATE)
        .json(&serde_json::json!({"stream": "secret"}))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{reply:?}");
    let refused = "-ERR the key is an encrypted stream (aegis-256): Redis commands cannot \
                   carry its encryption key; use the S2 API with s2-encryption-key\r\n";
    exchange(
        &mut conn,
        "XADD secret * f v\r\nXRANGE secret - +\r\nXADD fresh * f v\r\nXLEN plain\r\n",
        &format!("{refused}{refused}{refused}:1\r\n"),
    )
    .await;
    let listed: serde_json::Value = http
        .get(format!("{base}/streams?prefix=fresh"))
        .header("s2-basin", PLATE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["streams"],
        serde_json::json!([]),
        "no stream created"
    );
}
