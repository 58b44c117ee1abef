//! `INFO [section …]`: a few of Redis's sections, enough for clients that read it on
//! connect (ioredis's ready check waits while `loading:1`; others look at
//! `redis_version`). Sections: `server`, `clients`, `persistence`; with no argument,
//! `default`, `all` or `everything`, all three. Like Redis, an unknown section adds
//! nothing.

use std::{fmt::Write, sync::atomic::Ordering};

use bytes::Bytes;

use super::Shared;
use crate::redis::{Reply, cmd::is};

const SECTIONS: [&str; 3] = ["server", "clients", "persistence"];

pub fn reply(shared: &Shared, args: &[Bytes]) -> Reply {
    let everything = args.is_empty()
        || args
            .iter()
            .any(|a| is(a, "default") || is(a, "all") || is(a, "everything"));
    let mut text = String::new();
    for section in SECTIONS {
        if !everything && !args.iter().any(|a| is(a, section)) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        write_section(shared, section, &mut text);
    }
    Reply::Verbatim(Bytes::from(text))
}

fn write_section(shared: &Shared, section: &str, out: &mut String) {
    let uptime = shared.started.elapsed().as_secs();
    let lines: Vec<(&str, String)> = match section {
        "server" => vec![
            ("redis_version", super::REDIS_VERSION.into()),
            ("redis_mode", "standalone".into()),
            ("sluice_version", env!("CARGO_PKG_VERSION").into()),
            ("os", std::env::consts::OS.into()),
            ("arch_bits", (usize::BITS).to_string()),
            ("process_id", std::process::id().to_string()),
            ("tcp_port", shared.port.to_string()),
            ("uptime_in_seconds", uptime.to_string()),
            ("uptime_in_days", (uptime / 86_400).to_string()),
        ],
        "clients" => vec![
            (
                "connected_clients",
                shared.connected.load(Ordering::Relaxed).to_string(),
            ),
            ("maxclients", shared.config.max_clients.to_string()),
        ],
        _ => vec![("loading", "0".into())],
    };
    let mut title = section.to_owned();
    title[..1].make_ascii_uppercase();
    let _ = write!(out, "# {title}\r\n");
    for (k, v) in lines {
        let _ = write!(out, "{k}:{v}\r\n");
    }
}
