//! Each test replays a session against Redis 7.0.15 (redis-cli, shown above it) on a
//! small model of the stream, asserting what Redis replied. Redis's times are its
//! clock's; here `now` is chosen, so idle times are asserted where they are determined.
use std::collections::BTreeSet;

use super::*;

fn id(ms: u64, seq: u64) -> EntryId {
    EntryId::new(ms, seq)
}

/// A stream as Redis keeps the facts of one.
#[derive(Default)]
struct Sim {
    entries: BTreeSet<EntryId>,
    added: u64,
    last: EntryId,
    max_deleted: EntryId,
}

impl Sim {
    fn with(ids: &[EntryId]) -> Self {
        let mut s = Self::default();
        for &i in ids {
            s.xadd(i);
        }
        s
    }
    fn xadd(&mut self, i: EntryId) {
        assert!(i > self.last);
        self.entries.insert(i);
        self.added += 1;
        self.last = i;
    }
    fn xdel(&mut self, i: EntryId) {
        if self.entries.remove(&i) {
            self.max_deleted = self.max_deleted.max(i);
        }
    }
    fn trim(&mut self, maxlen: usize) {
        while self.entries.len() > maxlen {
            self.entries.pop_first();
        }
    }
    fn facts(&self) -> StreamFacts {
        StreamFacts {
            entries_added: self.added,
            length: self.entries.len() as u64,
            first_id: self.entries.first().copied().unwrap_or_default(),
            last_id: self.last,
            max_deleted_id: self.max_deleted,
        }
    }
    fn exists(&self) -> impl Fn(EntryId) -> bool + '_ {
        |i| self.entries.contains(&i)
    }
    /// `XREADGROUP GROUP g c COUNT n STREAMS s >`: what Redis hands out.
    fn read_new(&self, g: &mut GroupState, c: &str, count: usize, now: u64, noack: bool) {
        let ids: Vec<EntryId> = self
            .entries
            .iter()
            .copied()
            .filter(|&i| i > g.last_id)
            .take(if count == 0 { usize::MAX } else { count })
            .collect();
        g.deliver_new(c, &ids, now, noack, &self.facts());
        g.check().unwrap();
    }
}

fn read_lag(g: &GroupState, s: &Sim) -> (Option<u64>, Option<i64>) {
    let info = g.info(&s.facts());
    (info.entries_read, info.lag)
}

// XADD s 1-1 f v ; XADD s 2-1 f v ; XADD s 3-1 f v
// XGROUP CREATE s g0 0
// XGROUP CREATE s gd $
// XGROUP CREATE s ge 0 ENTRIESREAD 1
// XGROUP CREATE s gbig 0 ENTRIESREAD 100
// XINFO GROUPS s  -> g0: last 0-0 entries-read nil lag 3; gbig: 0-0 100 lag -97;
//                    gd: 3-1 nil lag 0; ge: 0-0 1 lag 2
// XREADGROUP GROUP g0 alice COUNT 1 STREAMS s >   -> 1-1
// XINFO GROUPS s  -> g0: consumers 1 pending 1 last 1-1 entries-read 1 lag 2
// XREADGROUP GROUP ge bob COUNT 1 STREAMS s >     -> 1-1
// XREADGROUP GROUP gd bob COUNT 1 STREAMS s >     -> (nil)
// XINFO CONSUMERS s gd                             -> (empty array)
// XINFO GROUPS s  -> gd: consumers 0 ...; ge: consumers 1 pending 1 last 1-1
//                    entries-read 2 lag 1
#[test]
fn fresh_groups_at_zero_at_dollar_and_with_entriesread() {
    let s = Sim::with(&[id(1, 1), id(2, 1), id(3, 1)]);
    let mut g0 = GroupState::new("g0", EntryId::ZERO, None);
    let mut gd = GroupState::new("gd", s.last, None);
    let mut ge = GroupState::new("ge", EntryId::ZERO, Some(1));
    let gbig = GroupState::new("gbig", EntryId::ZERO, Some(100));
    assert_eq!(read_lag(&g0, &s), (None, Some(3)));
    assert_eq!(read_lag(&gbig, &s), (Some(100), Some(-97)));
    assert_eq!(read_lag(&gd, &s), (None, Some(0)));
    assert_eq!(read_lag(&ge, &s), (Some(1), Some(2)));

    s.read_new(&mut g0, "alice", 1, 10, false);
    let info = g0.info(&s.facts());
    assert_eq!(
        info,
        GroupInfo {
            name: "g0".into(),
            consumers: 1,
            pending: 1,
            last_delivered_id: id(1, 1),
            entries_read: Some(1),
            lag: Some(2),
        }
    );
    s.read_new(&mut ge, "bob", 1, 10, false);
    s.read_new(&mut gd, "bob", 1, 10, false);
    assert!(gd.consumers_info(10).is_empty());
    assert_eq!(gd.info(&s.facts()).consumers, 0);
    assert_eq!(read_lag(&ge, &s), (Some(2), Some(1)));
}

// XADD s 1-1 … 4-1 ; XGROUP CREATE s g 0
// XREADGROUP GROUP g c COUNT 1 STREAMS s >   -> 1-1
// XDEL s 3-1
// XINFO GROUPS s   -> last 1-1 entries-read 1 lag nil
// XREADGROUP GROUP g c COUNT 1 STREAMS s >   -> 2-1
// XINFO GROUPS s   -> last 2-1 entries-read nil lag nil
// XREADGROUP GROUP g c COUNT 1 STREAMS s >   -> 4-1
// XINFO GROUPS s   -> last 4-1 entries-read 4 lag 0
// XDEL s 1-1       (before the group's last id)
// XINFO GROUPS s   -> entries-read 4 lag 0
// XADD s 5-1 f v
// XINFO GROUPS s   -> entries-read 4 lag 1
// XREADGROUP GROUP g c COUNT 1 STREAMS s >   -> 5-1
// XINFO GROUPS s   -> last 5-1 entries-read 5 lag 0
#[test]
fn xdel_after_and_before_the_last_id() {
    let mut s = Sim::with(&[id(1, 1), id(2, 1), id(3, 1), id(4, 1)]);
    let mut g = GroupState::new("g", EntryId::ZERO, None);
    s.read_new(&mut g, "c", 1, 1, false);
    s.xdel(id(3, 1));
    assert_eq!(read_lag(&g, &s), (Some(1), None));
    s.read_new(&mut g, "c", 1, 2, false);
    assert_eq!(g.last_id, id(2, 1));
    assert_eq!(read_lag(&g, &s), (None, None));
    s.read_new(&mut g, "c", 1, 3, false);
    assert_eq!(g.last_id, id(4, 1));
    assert_eq!(read_lag(&g, &s), (Some(4), Some(0)));
    s.xdel(id(1, 1));
    assert_eq!(read_lag(&g, &s), (Some(4), Some(0)));
    s.xadd(id(5, 1));
    assert_eq!(read_lag(&g, &s), (Some(4), Some(1)));
    s.read_new(&mut g, "c", 1, 4, false);
    assert_eq!(read_lag(&g, &s), (Some(5), Some(0)));
    assert_eq!(g.info(&s.facts()).pending, 4);
}

// XADD t 1-0 … 5-0 ; XGROUP CREATE t g 0 ; XGROUP CREATE t g2 0
// XREADGROUP GROUP g2 c COUNT 2 STREAMS t >   -> 1-0 2-0
// XTRIM t MAXLEN 3                             -> 2
// XINFO GROUPS t  -> g: 0-0 nil lag 3; g2: 2-0 2 lag 3
// XREADGROUP GROUP g c COUNT 1 STREAMS t >    -> 3-0
// XREADGROUP GROUP g2 c COUNT 1 STREAMS t >   -> 3-0
// XINFO GROUPS t  -> g: 3-0 3 lag 2; g2: 3-0 3 lag 2
// XTRIM t MAXLEN 0                             -> 3
// XINFO GROUPS t  -> (unchanged) g: 3-0 3 lag 2
// XGROUP CREATE t g3 0 ; XGROUP CREATE t g4 3-0 ; XGROUP CREATE t g5 9-0
// XINFO GROUPS t  -> g3: 0-0 nil lag 0; g4: 3-0 nil lag 0; g5: 9-0 nil lag nil
// XGROUP SETID t g 2-0
// XINFO GROUPS t  -> g: consumers 1 pending 1 last 2-0 entries-read nil lag 0
#[test]
fn trims() {
    let mut s = Sim::with(&[id(1, 0), id(2, 0), id(3, 0), id(4, 0), id(5, 0)]);
    let mut g = GroupState::new("g", EntryId::ZERO, None);
    let mut g2 = GroupState::new("g2", EntryId::ZERO, None);
    s.read_new(&mut g2, "c", 2, 1, false);
    s.trim(3);
    assert_eq!(read_lag(&g, &s), (None, Some(3)));
    assert_eq!(read_lag(&g2, &s), (Some(2), Some(3)));
    s.read_new(&mut g, "c", 1, 2, false);
    s.read_new(&mut g2, "c", 1, 2, false);
    assert_eq!(read_lag(&g, &s), (Some(3), Some(2)));
    assert_eq!(read_lag(&g2, &s), (Some(3), Some(2)));
    s.trim(0);
    assert_eq!(read_lag(&g, &s), (Some(3), Some(2)));
    let g3 = GroupState::new("g3", EntryId::ZERO, None);
    let g4 = GroupState::new("g4", id(3, 0), None);
    let g5 = GroupState::new("g5", id(9, 0), None);
    assert_eq!(read_lag(&g3, &s), (None, Some(0)));
    assert_eq!(read_lag(&g4, &s), (None, Some(0)));
    assert_eq!(read_lag(&g5, &s), (None, None));
    g.set_id(id(2, 0), None);
    g.check().unwrap();
    let info = g.info(&s.facts());
    assert_eq!((info.consumers, info.pending), (1, 1));
    assert_eq!((info.last_delivered_id, info.lag), (id(2, 0), Some(0)));
    assert_eq!(info.entries_read, None);
}

// XGROUP CREATE e g 0 MKSTREAM ; XGROUP CREATE e g2 5-0
// XINFO GROUPS e  -> g: 0-0 nil lag 0; g2: 5-0 nil lag 0
// XGROUP SETID e g 7-0 ENTRIESREAD 3
// XINFO GROUPS e  -> g: 7-0 3 lag 0
#[test]
fn a_stream_that_never_had_entries() {
    let s = Sim::default();
    let mut g = GroupState::new("g", EntryId::ZERO, None);
    let g2 = GroupState::new("g2", id(5, 0), None);
    assert_eq!(read_lag(&g, &s), (None, Some(0)));
    assert_eq!(read_lag(&g2, &s), (None, Some(0)));
    g.set_id(id(7, 0), Some(3));
    assert_eq!(read_lag(&g, &s), (Some(3), Some(0)));
}

// XADD s 1-0 2-0 3-0 ; XGROUP CREATE s g 0
// XREADGROUP GROUP g alice STREAMS s >        -> 1-0 2-0 3-0
// XCLAIM s g alice 0 1-0 2-0 RETRYCOUNT 5 JUSTID
// XGROUP SETID s g 0 ENTRIESREAD 0
// XREADGROUP GROUP g bob COUNT 1 STREAMS s >          -> 1-0
// XREADGROUP GROUP g bob COUNT 1 NOACK STREAMS s >    -> 2-0
// XPENDING s g - + 10  -> 1-0 bob _ 1; 2-0 alice _ 5; 3-0 alice _ 1
// XINFO GROUPS s       -> consumers 2 pending 3 last 2-0 entries-read 2 lag 1
// XACK s g 1-0 1-0 9-0 3-0   -> 2
// XPENDING s g          -> 1 2-0 2-0 [[alice 1]]
#[test]
fn setid_backwards_redelivers_and_noack_leaves_the_pel() {
    let s = Sim::with(&[id(1, 0), id(2, 0), id(3, 0)]);
    let mut g = GroupState::new("g", EntryId::ZERO, None);
    s.read_new(&mut g, "alice", 0, 100, false);
    let opts = ClaimOptions {
        retry_count: Some(5),
        just_id: true,
        ..Default::default()
    };
    let r = g.claim("alice", &[id(1, 0), id(2, 0)], 0, 110, &opts, s.exists());
    assert_eq!(r.claimed, [id(1, 0), id(2, 0)]);
    g.set_id(EntryId::ZERO, Some(0));
    g.check().unwrap();
    s.read_new(&mut g, "bob", 1, 120, false);
    s.read_new(&mut g, "bob", 1, 130, true);
    let rows = g.pending_range(EntryId::ZERO, EntryId::MAX, 10, None, 0, 140);
    let rows: Vec<_> = rows
        .iter()
        .map(|r| (r.id, r.consumer.as_str(), r.idle_ms, r.deliveries))
        .collect();
    assert_eq!(
        rows,
        [
            (id(1, 0), "bob", 20, 1),
            (id(2, 0), "alice", 30, 5),
            (id(3, 0), "alice", 40, 1)
        ]
    );
    let info = g.info(&s.facts());
    assert_eq!((info.consumers, info.pending), (2, 3));
    assert_eq!(
        (info.last_delivered_id, info.entries_read, info.lag),
        (id(2, 0), Some(2), Some(1))
    );
    assert_eq!(g.ack(&[id(1, 0), id(1, 0), id(9, 0), id(3, 0)]), 2);
    assert_eq!(
        g.pending_summary(),
        PendingSummary {
            count: 1,
            range: Some((id(2, 0), id(2, 0))),
            consumers: vec![("alice".into(), 1)],
        }
    );
    g.check().unwrap();
}

// XADD s 1-0 … 6-0 ; XGROUP CREATE s g 0
// XREADGROUP GROUP g alice COUNT 3 STREAMS s >        -> 1-0 2-0 3-0
// XCLAIM s g bob 0 1-0 TIME 1000 JUSTID               -> 1-0
// XCLAIM s g bob 0 2-0 RETRYCOUNT 7 IDLE 5000 JUSTID  -> 2-0
// XCLAIM s g bob 0 5-0 FORCE JUSTID                   -> 5-0
// XCLAIM s g bob 0 6-0 FORCE                          -> [6-0 [f v]]
// XCLAIM s g bob 0 9-0 FORCE JUSTID                   -> (empty array)
// XPENDING s g - + 10  -> 1-0 bob (now-1000) 1; 2-0 bob 5027 7; 3-0 alice 48 1;
//                         5-0 bob 20 1; 6-0 bob 14 2
// XDEL s 3-0
// XCLAIM s g bob 0 3-0 4-0 JUSTID                     -> (empty array)
// XPENDING s g - + 10  -> 1-0 2-0 5-0 6-0 (3-0 gone)
// XCLAIM s g carol 0 1-0 TIME 99999999999999 LASTID 8-0 JUSTID  -> 1-0
// XPENDING s g - + 10  -> 1-0 carol 6 1; …
// XINFO GROUPS s       -> consumers 3 pending 4 last 8-0 entries-read 3 lag 3
// XCLAIM s g dave 3600000 1-0 JUSTID                  -> (empty array)
// XINFO CONSUMERS s g  -> alice 0, bob 3, carol 1 (no dave)
// XCLAIM s g erin 3600000 5-0 FORCE JUSTID            -> (empty array)
// XCLAIM s g erin 0 5-0 5-0 JUSTID                    -> 5-0 5-0
// XPENDING s g - + 10  -> 1-0 carol 1; 2-0 bob 7; 5-0 erin 1; 6-0 bob 2
// XINFO CONSUMERS s g  -> alice 0, bob 2, carol 1, erin 1
#[test]
fn xclaim_options() {
    let mut s = Sim::with(&[id(1, 0), id(2, 0), id(3, 0), id(4, 0), id(5, 0), id(6, 0)]);
    let mut g = GroupState::new("g", EntryId::ZERO, None);
    let t0 = 1_000_000;
    s.read_new(&mut g, "alice", 3, t0, false);
    let just = ClaimOptions {
        just_id: true,
        ..Default::default()
    };
    let claim = |g: &mut GroupState, s: &Sim, c: &str, min, ids: &[EntryId], now, o| {
        let r = g.claim(c, ids, min, now, &o, s.exists());
        g.check().unwrap();
        r
    };
    let o = ClaimOptions {
        time: Some(ClaimTime::Time(1000)),
        ..just
    };
    assert_eq!(
        claim(&mut g, &s, "bob", 0, &[id(1, 0)], t0 + 1, o).claimed,
        [id(1, 0)]
    );
    let o = ClaimOptions {
        retry_count: Some(7),
        time: Some(ClaimTime::Idle(5000)),
        ..just
    };
    assert_eq!(
        claim(&mut g, &s, "bob", 0, &[id(2, 0)], t0 + 2, o).claimed,
        [id(2, 0)]
    );
    let force = ClaimOptions {
        force: true,
        ..just
    };
    assert_eq!(
        claim(&mut g, &s, "bob", 0, &[id(5, 0)], t0 + 3, force).claimed,
        [id(5, 0)]
    );
    let o = ClaimOptions {
        force: true,
        ..Default::default()
    };
    assert_eq!(
        claim(&mut g, &s, "bob", 0, &[id(6, 0)], t0 + 4, o).claimed,
        [id(6, 0)]
    );
    assert!(
        claim(&mut g, &s, "bob", 0, &[id(9, 0)], t0 + 5, force)
            .claimed
            .is_empty()
    );
    let rows: Vec<_> = g
        .pending_range(EntryId::ZERO, EntryId::MAX, 10, None, 0, t0 + 10)
        .into_iter()
        .map(|r| (r.id, r.consumer, r.idle_ms, r.deliveries))
        .collect();
    assert_eq!(
        rows,
        [
            (id(1, 0), "bob".into(), t0 + 10 - 1000, 1),
            (id(2, 0), "bob".into(), 5008, 7),
            (id(3, 0), "alice".into(), 10, 1),
            (id(5, 0), "bob".into(), 7, 1),
            (id(6, 0), "bob".into(), 6, 2),
        ]
    );

    s.xdel(id(3, 0));
    let r = claim(&mut g, &s, "bob", 0, &[id(3, 0), id(4, 0)], t0 + 20, just);
    assert_eq!(
        r,
        ClaimResult {
            claimed: vec![],
            removed: vec![id(3, 0)]
        }
    );
    assert_eq!(
        g.pending.keys().copied().collect::<Vec<_>>(),
        [id(1, 0), id(2, 0), id(5, 0), id(6, 0)]
    );

    let o = ClaimOptions {
        time: Some(ClaimTime::Time(99_999_999_999_999)),
        last_id: Some(id(8, 0)),
        ..just
    };
    assert_eq!(
        claim(&mut g, &s, "carol", 0, &[id(1, 0)], t0 + 30, o).claimed,
        [id(1, 0)]
    );
    let p = &g.pending[&id(1, 0)];
    assert_eq!(
        (p.consumer.as_str(), p.delivered_ms, p.deliveries),
        ("carol", t0 + 30, 1)
    );
    let info = g.info(&s.facts());
    assert_eq!((info.consumers, info.pending), (3, 4));
    assert_eq!(
        (info.last_delivered_id, info.entries_read, info.lag),
        (id(8, 0), Some(3), Some(3))
    );

    let hour = 3_600_000;
    assert!(
        claim(&mut g, &s, "dave", hour, &[id(1, 0)], t0 + 40, just)
            .claimed
            .is_empty()
    );
    let names: Vec<_> = g
        .consumers_info(t0 + 40)
        .into_iter()
        .map(|c| (c.name, c.pending))
        .collect();
    assert_eq!(
        names,
        [("alice".into(), 0), ("bob".into(), 3), ("carol".into(), 1)]
    );
    assert!(
        claim(&mut g, &s, "erin", hour, &[id(5, 0)], t0 + 50, force)
            .claimed
            .is_empty()
    );
    let r = claim(&mut g, &s, "erin", 0, &[id(5, 0), id(5, 0)], t0 + 60, just);
    assert_eq!(r.claimed, [id(5, 0), id(5, 0)]);
    let rows: Vec<_> = g
        .pending
        .iter()
        .map(|(&i, p)| (i, p.consumer.as_str(), p.deliveries))
        .collect();
    assert_eq!(
        rows,
        [
            (id(1, 0), "carol", 1),
            (id(2, 0), "bob", 7),
            (id(5, 0), "erin", 1),
            (id(6, 0), "bob", 2)
        ]
    );
    let names: Vec<_> = g
        .consumers_info(t0 + 60)
        .into_iter()
        .map(|c| (c.name, c.pending, c.idle_ms))
        .collect();
    assert_eq!(
        names,
        [
            ("alice".into(), 0, 60),
            ("bob".into(), 2, 56),
            ("carol".into(), 1, 30),
            ("erin".into(), 1, 0)
        ]
    );
}

// XADD s 1-0 … 8-0 ; XGROUP CREATE s g 0
// XREADGROUP GROUP g alice STREAMS s >                 -> 1-0 … 8-0
// XCLAIM s g alice 0 2-0 4-0 6-0 TIME 1000 JUSTID      (long idle)
// XDEL s 3-0 5-0
// XAUTOCLAIM s g bob 3600000 0 COUNT 1 JUSTID          -> 3-0 [2-0] []
// XAUTOCLAIM s g bob 3600000 0 COUNT 2 JUSTID          -> 5-0 [4-0] [3-0]
// XAUTOCLAIM s g bob 3600000 5-0 COUNT 2 JUSTID        -> 7-0 [6-0] [5-0]
// XAUTOCLAIM s g bob 3600000 7-0 COUNT 2 JUSTID        -> 0-0 [] []
// XAUTOCLAIM s g carol 0 0 COUNT 1                     -> 2-0 [[1-0 [f v]]] []
// XAUTOCLAIM s g carol 0 0 COUNT 5 JUSTID              -> 8-0 [1-0 2-0 4-0 6-0 7-0] []
// XPENDING s g - + 10  -> 1-0 carol 2; 2-0 carol 1; 4-0 carol 1; 6-0 carol 1;
//                         7-0 carol 1; 8-0 alice 1
// XINFO CONSUMERS s g  -> alice 1, bob 0, carol 5
#[test]
fn xautoclaim() {
    let mut s = Sim::with(&(1..=8).map(|i| id(i, 0)).collect::<Vec<_>>());
    let mut g = GroupState::new("g", EntryId::ZERO, None);
    let t0 = 5_000_000;
    s.read_new(&mut g, "alice", 0, t0, false);
    let o = ClaimOptions {
        time: Some(ClaimTime::Time(1000)),
        just_id: true,
        ..Default::default()
    };
    g.claim(
        "alice",
        &[id(2, 0), id(4, 0), id(6, 0)],
        0,
        t0,
        &o,
        s.exists(),
    );
    s.xdel(id(3, 0));
    s.xdel(id(5, 0));
    let hour = 3_600_000;
    let auto = |g: &mut GroupState, s: &Sim, c: &str, min, start, count, now, just| {
        let r = g.autoclaim(c, start, count, min, now, just, s.exists());
        g.check().unwrap();
        (r.next, r.claimed, r.deleted)
    };
    let t = t0 + 10;
    assert_eq!(
        auto(&mut g, &s, "bob", hour, EntryId::ZERO, 1, t, true),
        (id(3, 0), vec![id(2, 0)], vec![])
    );
    assert_eq!(
        auto(&mut g, &s, "bob", hour, EntryId::ZERO, 2, t, true),
        (id(5, 0), vec![id(4, 0)], vec![id(3, 0)])
    );
    assert_eq!(
        auto(&mut g, &s, "bob", hour, id(5, 0), 2, t, true),
        (id(7, 0), vec![id(6, 0)], vec![id(5, 0)])
    );
    assert_eq!(
        auto(&mut g, &s, "bob", hour, id(7, 0), 2, t, true),
        (EntryId::ZERO, vec![], vec![])
    );
    assert_eq!(
        auto(&mut g, &s, "carol", 0, EntryId::ZERO, 1, t + 10, false),
        (id(2, 0), vec![id(1, 0)], vec![])
    );
    assert_eq!(
        auto(&mut g, &s, "carol", 0, EntryId::ZERO, 5, t + 20, true),
        (
            id(8, 0),
            vec![id(1, 0), id(2, 0), id(4, 0), id(6, 0), id(7, 0)],
            vec![]
        )
    );
    let rows: Vec<_> = g
        .pending
        .iter()
        .map(|(&i, p)| (i, p.consumer.as_str(), p.deliveries))
        .collect();
    assert_eq!(
        rows,
        [
            (id(1, 0), "carol", 2),
            (id(2, 0), "carol", 1),
            (id(4, 0), "carol", 1),
            (id(6, 0), "carol", 1),
            (id(7, 0), "carol", 1),
            (id(8, 0), "alice", 1)
        ]
    );
    let names: Vec<_> = g
        .consumers_info(t + 20)
        .into_iter()
        .map(|c| (c.name, c.pending))
        .collect();
    assert_eq!(
        names,
        [("alice".into(), 1), ("bob".into(), 0), ("carol".into(), 5)]
    );
}

// XADD s 1-0 … 12-0 ; XGROUP CREATE s g 0
// XREADGROUP GROUP g alice STREAMS s >            -> 1-0 … 12-0
// XAUTOCLAIM s g bob 3600000 0 COUNT 1 JUSTID     -> 11-0 [] []   (10 attempts)
// XAUTOCLAIM s g bob 3600000 (10-0 COUNT 1 JUSTID -> 0-0 [] []
// XAUTOCLAIM s g bob 3600000 11-0 COUNT 1 JUSTID  -> 0-0 [] []
// XINFO CONSUMERS s g                             -> only alice (12 pending)
// XINFO STREAM s FULL COUNT 2 -> groups: g last 12-0 entries-read 12 lag 0 pel-count 12
//   pending [1-0 alice T 1, 2-0 alice T 1]; consumers [alice seen-time T pel-count 12
//   pending [1-0 T 1, 2-0 T 1]]
// XPENDING s g IDLE 0 - + 0          -> (empty array)
// XPENDING s g - + 2 alice           -> 1-0 alice _ 1; 2-0 alice _ 1
// XPENDING s g - + 2 nobody          -> (empty array)
#[test]
fn xautoclaim_attempts_full_info_and_xpending() {
    let s = Sim::with(&(1..=12).map(|i| id(i, 0)).collect::<Vec<_>>());
    let mut g = GroupState::new("g", EntryId::ZERO, None);
    let t = 7_000;
    s.read_new(&mut g, "alice", 0, t, false);
    let hour = 3_600_000;
    let r = g.autoclaim("bob", EntryId::ZERO, 1, hour, t + 1, true, s.exists());
    assert_eq!(
        (r.next, r.claimed.len(), r.deleted.len()),
        (id(11, 0), 0, 0)
    );
    let r = g.autoclaim("bob", id(10, 1), 1, hour, t + 1, true, s.exists());
    assert_eq!(r.next, EntryId::ZERO);
    let r = g.autoclaim("bob", id(11, 0), 1, hour, t + 1, true, s.exists());
    assert_eq!(r.next, EntryId::ZERO);
    assert_eq!(g.consumers.len(), 1);
    g.check().unwrap();

    let full = g.full_info(&s.facts(), 2);
    assert_eq!(
        full,
        GroupFull {
            name: "g".into(),
            last_delivered_id: id(12, 0),
            entries_read: Some(12),
            lag: Some(0),
            pel_count: 12,
            pending: vec![
                (id(1, 0), "alice".into(), t, 1),
                (id(2, 0), "alice".into(), t, 1)
            ],
            consumers: vec![ConsumerFull {
                name: "alice".into(),
                seen_ms: t,
                pel_count: 12,
                pending: vec![(id(1, 0), t, 1), (id(2, 0), t, 1)],
            }],
        }
    );
    assert_eq!(g.full_info(&s.facts(), 0).pending.len(), 12);
    assert!(
        g.pending_range(EntryId::ZERO, EntryId::MAX, 0, None, 0, t)
            .is_empty()
    );
    let mine = g.pending_range(EntryId::ZERO, EntryId::MAX, 2, Some("alice"), 0, t + 5);
    assert_eq!(
        mine.iter().map(|r| (r.id, r.idle_ms)).collect::<Vec<_>>(),
        [(id(1, 0), 5), (id(2, 0), 5)]
    );
    assert!(
        g.pending_range(EntryId::ZERO, EntryId::MAX, 2, Some("nobody"), 0, t)
            .is_empty()
    );
    // IDLE filters by delivery time.
    g.claim(
        "alice",
        &[id(3, 0)],
        0,
        t + 100,
        &ClaimOptions::default(),
        s.exists(),
    );
    let idle = g.pending_range(EntryId::ZERO, EntryId::MAX, 20, None, 50, t + 100);
    assert_eq!(idle.len(), 11);
    assert!(idle.iter().all(|r| r.id != id(3, 0)));
}

// (continuing the xautoclaim session: carol has 1-0 2-0 4-0 6-0 7-0, alice 8-0)
// XDEL s 7-0
// XREADGROUP GROUP g carol STREAMS s 0   -> 1-0 2-0 4-0 6-0 with fields, [7-0 nil]
// XPENDING s g - + 10  -> 1-0 carol 3; 2-0 carol 2; 4-0 carol 2; 6-0 carol 2;
//                         7-0 carol (older) 1; 8-0 alice 1
// XREADGROUP GROUP g carol COUNT 1 STREAMS s 2-0   -> 4-0
// XREADGROUP GROUP g newbie STREAMS s 0            -> s (empty array)
// XREADGROUP GROUP g carol STREAMS s 18446744073709551615-18446744073709551615 -> (nil)
//   (that id means `>`; nothing new, so carol is not touched)
// XINFO CONSUMERS s g  -> alice 1, bob 0, carol 5, newbie 0
// XGROUP DELCONSUMER s g carol     -> 5
// XGROUP DELCONSUMER s g zed       -> 0
// XGROUP CREATECONSUMER s g carol  -> 1
// XGROUP CREATECONSUMER s g carol  -> 0
// XPENDING s g                     -> 1 8-0 8-0 [[alice 1]]
#[test]
fn history_reads_and_consumers() {
    let mut s = Sim::with(&(1..=8).map(|i| id(i, 0)).collect::<Vec<_>>());
    let mut g = GroupState::new("g", EntryId::ZERO, None);
    s.read_new(&mut g, "alice", 0, 10, false);
    g.create_consumer("bob", 11);
    let o = ClaimOptions {
        just_id: true,
        ..Default::default()
    };
    let mine = [id(1, 0), id(2, 0), id(4, 0), id(6, 0), id(7, 0)];
    g.claim("carol", &mine, 0, 20, &o, s.exists());
    // In the session 3-0 and 5-0 left the PEL through XAUTOCLAIM.
    g.ack(&[id(3, 0), id(5, 0)]);
    s.xdel(id(3, 0));
    s.xdel(id(5, 0));
    s.xdel(id(7, 0));
    let read = g.read_history("carol", EntryId::ZERO, 0, 30, s.exists());
    assert_eq!(
        read,
        [
            (id(1, 0), true),
            (id(2, 0), true),
            (id(4, 0), true),
            (id(6, 0), true),
            (id(7, 0), false)
        ]
    );
    assert_eq!(g.pending[&id(7, 0)].delivered_ms, 20);
    assert_eq!(g.pending[&id(7, 0)].deliveries, 1);
    assert_eq!(g.pending[&id(1, 0)].delivered_ms, 30);
    assert_eq!(g.pending[&id(1, 0)].deliveries, 2);
    assert_eq!(
        g.read_history("carol", id(2, 0), 1, 40, s.exists()),
        [(id(4, 0), true)]
    );
    assert!(
        g.read_history("newbie", EntryId::ZERO, 0, 50, s.exists())
            .is_empty()
    );
    // `>` with nothing new: Redis does not serve, so carol stays as she was.
    s.read_new(&mut g, "carol", 0, 60, false);
    let info: Vec<_> = g
        .consumers_info(70)
        .into_iter()
        .map(|c| (c.name, c.pending, c.idle_ms))
        .collect();
    assert_eq!(
        info,
        [
            ("alice".into(), 1, 60),
            ("bob".into(), 0, 59),
            ("carol".into(), 5, 30),
            ("newbie".into(), 0, 20)
        ]
    );
    assert_eq!(g.delete_consumer("carol"), 5);
    g.check().unwrap();
    assert_eq!(g.delete_consumer("zed"), 0);
    assert!(g.create_consumer("carol", 80));
    assert!(!g.create_consumer("carol", 90));
    assert_eq!(g.consumers["carol"].seen_ms, 80);
    assert_eq!(
        g.pending_summary(),
        PendingSummary {
            count: 1,
            range: Some((id(8, 0), id(8, 0))),
            consumers: vec![("alice".into(), 1)],
        }
    );
    g.check().unwrap();
}

#[test]
fn estimates_follow_redis_cases() {
    // Never had entries: 0.
    assert_eq!(
        StreamFacts::default().estimate_entries_read(id(9, 9)),
        Some(0)
    );
    let f = StreamFacts {
        entries_added: 10,
        length: 4,
        first_id: id(7, 0),
        last_id: id(10, 0),
        max_deleted_id: EntryId::ZERO,
    };
    assert_eq!(f.estimate_entries_read(id(10, 0)), Some(10));
    assert_eq!(f.estimate_entries_read(id(11, 0)), None);
    assert_eq!(f.estimate_entries_read(id(7, 0)), Some(7));
    assert_eq!(f.estimate_entries_read(id(3, 0)), Some(6));
    assert_eq!(f.estimate_entries_read(id(8, 0)), None);
    // A tombstone below the first entry (its node trimmed since) does not fragment.
    let f2 = StreamFacts {
        max_deleted_id: id(5, 0),
        ..f
    };
    assert!(!f2.has_tombstones_from(EntryId::ZERO));
    assert_eq!(f2.estimate_entries_read(id(7, 0)), Some(7));
    let f3 = StreamFacts {
        max_deleted_id: id(8, 0),
        ..f
    };
    assert!(f3.has_tombstones_from(id(8, 0)) && !f3.has_tombstones_from(id(8, 1)));
    assert_eq!(f3.estimate_entries_read(id(3, 0)), None);
}

#[test]
fn json_round_trip() {
    let s = Sim::with(&[id(1, 0), id(2, 5), id(3, 0)]);
    let mut g = GroupState::new("grüppe", EntryId::ZERO, None);
    s.read_new(&mut g, "alice", 2, 1_700_000_000_000, false);
    g.create_consumer("bob", 1_700_000_000_001);
    g.version = 3;
    let json = serde_json::to_string(&g).unwrap();
    assert_eq!(
        json,
        r#"{"version":3,"name":"grüppe","last_id":"2-5","entries_read":2,"pending":{"1-0":["alice",1700000000000,1],"2-5":["alice",1700000000000,1]},"consumers":{"alice":1700000000000,"bob":1700000000001}}"#
    );
    let back: GroupState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, g);
    let unknown = GroupState::new("g", id(u64::MAX, u64::MAX), Some(u64::MAX));
    let back: GroupState = serde_json::from_str(&serde_json::to_string(&unknown).unwrap()).unwrap();
    assert_eq!(back, unknown);
    assert!(
        serde_json::from_str::<GroupState>(
            r#"{"version":1,"name":"g","last_id":"1","entries_read":null,"pending":{},"consumers":{}}"#
        )
        .is_err()
    );
}

/// Found by `fuzz_group_stored`: a stored delivery count or `entries_read` at
/// `u64::MAX` overflowed on the next delivery (not a Redis session: Redis's counters
/// are C integers and wrap).
#[test]
fn counters_at_the_top_wrap() {
    let mut g = GroupState::new("g", id(0, 0), Some(u64::MAX));
    g.deliver_new("c", &[id(1, 0)], 5, false, &StreamFacts::default());
    assert_eq!(g.entries_read, Some(0));
    g.pending.get_mut(&id(1, 0)).unwrap().deliveries = u64::MAX;
    g.read_history("c", id(0, 0), 0, 6, |_| true);
    g.claim("c", &[id(1, 0)], 0, 7, &ClaimOptions::default(), |_| true);
    assert_eq!(g.pending[&id(1, 0)].deliveries, 1);
    g.pending.get_mut(&id(1, 0)).unwrap().deliveries = u64::MAX;
    g.autoclaim("c", id(0, 0), 1, 0, 8, false, |_| true);
    assert_eq!(g.pending[&id(1, 0)].deliveries, 0);
}
