//! One consumer group drained over RESP by many consumers at once, a benchmark client for
//! any Redis-protocol server (`redis-server` or Sluice's `--redis-port`): adds `--entries`
//! entries (pipelined `XADD`s), then `--consumers` connections each loop on
//! `XREADGROUP GROUP g c<i> COUNT <count> STREAMS <key> >` and an `XACK` of what it got,
//! until the group has nothing new. Prints entries/s, the `XREADGROUP` latency
//! percentiles and the error replies seen (each retried).
//!
//! ```sh
//! cargo run --release --example resp_groups -- --port 6379 --consumers 32 --entries 50000
//! ```
//!
//! With several ports (`--port 7001,7002,7003`, the nodes of one cluster) the consumers
//! take them in turn; the entries are added through the first. Written in Rust on tokio,
//! not in a scripting language, so that the client is not what bounds the figure.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// A RESP2 reply.
#[derive(Debug)]
enum Value {
    /// A status reply (`+OK`); its text is not needed.
    Simple,
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

struct Conn {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
    out: Vec<u8>,
}

impl Conn {
    async fn open(port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Self {
            read: BufReader::with_capacity(1 << 16, read),
            write,
            out: Vec::new(),
        })
    }

    /// Queues one command; sent by [`Conn::flush`].
    fn queue(&mut self, words: &[&[u8]]) {
        self.out
            .extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
        for w in words {
            self.out
                .extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
            self.out.extend_from_slice(w);
            self.out.extend_from_slice(b"\r\n");
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.write.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    async fn call(&mut self, words: &[&[u8]]) -> std::io::Result<Value> {
        self.queue(words);
        self.flush().await?;
        self.reply().await
    }

    async fn line(&mut self) -> std::io::Result<String> {
        let mut line = Vec::new();
        loop {
            let b = self.read.read_u8().await?;
            if b == b'\n' {
                break;
            }
            line.push(b);
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|e| std::io::Error::other(e.to_string()))
    }

    async fn reply(&mut self) -> std::io::Result<Value> {
        // Arrays nest: an explicit stack instead of recursion in an async fn.
        let mut stack: Vec<(Vec<Value>, usize)> = Vec::new();
        loop {
            let line = self.line().await?;
            let (kind, rest) = line.split_at(1.min(line.len()));
            let number = || {
                rest.parse::<i64>()
                    .map_err(|_| std::io::Error::other(format!("bad reply line {line:?}")))
            };
            let mut value = match kind {
                "+" => Value::Simple,
                "-" => Value::Error(rest.to_owned()),
                ":" => Value::Int(number()?),
                "$" => match number()? {
                    n if n < 0 => Value::Bulk(None),
                    n => {
                        let mut data = vec![0; n as usize + 2];
                        self.read.read_exact(&mut data).await?;
                        data.truncate(n as usize);
                        Value::Bulk(Some(data))
                    }
                },
                "*" => match number()? {
                    n if n < 0 => Value::Array(None),
                    0 => Value::Array(Some(Vec::new())),
                    n => {
                        stack.push((Vec::with_capacity(n as usize), n as usize));
                        continue;
                    }
                },
                _ => return Err(std::io::Error::other(format!("bad reply line {line:?}"))),
            };
            loop {
                let Some((items, want)) = stack.last_mut() else {
                    return Ok(value);
                };
                items.push(value);
                if items.len() < *want {
                    break;
                }
                let (items, _) = stack.pop().expect("just seen");
                value = Value::Array(Some(items));
            }
        }
    }
}

/// The entry ids of an `XREADGROUP` reply on one key (none for a nil reply).
fn delivered_ids(reply: &Value) -> Vec<Vec<u8>> {
    let Value::Array(Some(streams)) = reply else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for stream in streams {
        let Value::Array(Some(pair)) = stream else {
            continue;
        };
        let Some(Value::Array(Some(entries))) = pair.get(1) else {
            continue;
        };
        for entry in entries {
            if let Value::Array(Some(parts)) = entry
                && let Some(Value::Bulk(Some(id))) = parts.first()
            {
                ids.push(id.clone());
            }
        }
    }
    ids
}

struct Args {
    ports: Vec<u16>,
    consumers: usize,
    entries: usize,
    count: usize,
    key: String,
}

fn args() -> Args {
    let mut a = Args {
        ports: vec![6379],
        consumers: 8,
        entries: 20_000,
        count: 10,
        key: format!(
            "groups-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                a.ports = value
                    .split(',')
                    .map(|p| p.parse().expect("a port number"))
                    .collect()
            }
            "--consumers" => a.consumers = value.parse().expect("a number"),
            "--entries" => a.entries = value.parse().expect("a number"),
            "--count" => a.count = value.parse().expect("a number"),
            "--key" => a.key = value,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = args();
    let key = args.key.as_bytes();
    let mut admin = Conn::open(args.ports[0]).await?;
    let created = admin
        .call(&[b"XGROUP", b"CREATE", key, b"g", b"0", b"MKSTREAM"])
        .await?;
    if let Value::Error(e) = created {
        return Err(std::io::Error::other(format!("XGROUP CREATE: {e}")));
    }
    let payload = vec![b'x'; 90];
    for start in (0..args.entries).step_by(500) {
        let batch = (start..args.entries.min(start + 500)).collect::<Vec<_>>();
        for i in &batch {
            let n = i.to_string();
            admin.queue(&[b"XADD", key, b"*", b"n", n.as_bytes(), b"payload", &payload]);
        }
        admin.flush().await?;
        for _ in &batch {
            if let Value::Error(e) = admin.reply().await? {
                return Err(std::io::Error::other(format!("XADD: {e}")));
            }
        }
    }

    let delivered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.consumers {
        let port = args.ports[i % args.ports.len()];
        let key = args.key.clone();
        let count = args.count.to_string();
        let delivered = delivered.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(port).await?;
            let consumer = format!("c{i}");
            let mut latencies = Vec::new();
            let words: [&[u8]; 9] = [
                b"XREADGROUP",
                b"GROUP",
                b"g",
                consumer.as_bytes(),
                b"COUNT",
                count.as_bytes(),
                b"STREAMS",
                key.as_bytes(),
                b">",
            ];
            loop {
                let t0 = Instant::now();
                let reply = conn.call(&words).await?;
                latencies.push(t0.elapsed());
                if let Value::Error(e) = &reply {
                    errors.lock().push(e.clone());
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let ids = delivered_ids(&reply);
                if ids.is_empty() {
                    return Ok::<_, std::io::Error>(latencies);
                }
                loop {
                    let mut ack: Vec<&[u8]> = vec![b"XACK", key.as_bytes(), b"g"];
                    ack.extend(ids.iter().map(Vec::as_slice));
                    match conn.call(&ack).await? {
                        Value::Error(e) => errors.lock().push(e),
                        _ => break,
                    }
                }
                delivered.fetch_add(ids.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.map_err(std::io::Error::other)??);
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let pending = match admin.call(&[b"XPENDING", key, b"g"]).await? {
        Value::Array(Some(parts)) => match parts.first() {
            Some(Value::Int(n)) => *n,
            _ => -1,
        },
        _ => -1,
    };
    let total = delivered.load(Ordering::Relaxed);
    let errors = errors.lock();
    println!(
        "groups: {total} entries by {} consumers in {secs:.2} s = {:.0}/s; \
         xreadgroup p50 {:.2} ms, p99 {:.2} ms; pending after: {pending}; error replies: {}{}",
        args.consumers,
        total as f64 / secs,
        pct(0.5),
        pct(0.99),
        errors.len(),
        errors
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    if total != args.entries as u64 {
        eprintln!("delivered {total} of {} entries", args.entries);
        std::process::exit(1);
    }
    Ok(())
}
