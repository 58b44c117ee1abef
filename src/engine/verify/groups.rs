//! The consumer groups' part of `verify`: each root parses and is named by its key, the
//! checkpoint it names is present and at its position, the records after it are
//! contiguous and parse, and the group they replay to keeps its invariant
//! ([`GroupState::check`]). What a root reaches is the orphan judgement's
//! ([`reach::reached_group_logs`]).

use super::{
    Ctx,
    report::{Findings, Kind},
};
use crate::engine::{
    EngineResult,
    group_log::{LogRecord, RootForm},
    group_state::GroupState,
    layout::{self, DataObject, GroupLogEntry},
    reach::GroupLogRoots,
};
use crate::storage::ListedObject;

/// Checks the group whose root is `key` (named `name`) against the log objects listed in
/// `objects`; records its root in `roots`.
pub(super) async fn check_group(
    ctx: &Ctx<'_>,
    f: &mut Findings,
    objects: &[ListedObject],
    key: &str,
    name: &str,
    roots: &mut GroupLogRoots,
) -> EngineResult<()> {
    let Some(bytes) = ctx.get(key).await? else {
        return Ok(()); // deleted since the listing
    };
    f.counts.add(Kind::Group, 1);
    let form = match RootForm::parse(&bytes) {
        Ok(form) => form,
        Err(e) => {
            f.problem(key, Kind::Group, format!("does not parse: {e}"));
            return Ok(());
        }
    };
    if form.name() != name {
        let named = form.name();
        f.problem(
            key,
            Kind::Group,
            format!("names group {named:?}, its key {name:?}"),
        );
    }
    let (incarnation, checkpoint) = (form.incarnation(), form.checkpoint());
    roots.insert(name.to_owned(), (incarnation, checkpoint, form.floor()));
    let mut state = match form {
        RootForm::Inline(g) => g,
        RootForm::Log(_) => {
            let Some((id, _)) = layout::parse_data_key(key) else {
                return Ok(());
            };
            let ckey = layout::group_checkpoint_key(id, name, incarnation, checkpoint);
            let Some(bytes) = ctx.get(&ckey).await? else {
                if ctx.get(key).await?.is_some_and(|now| now == bytes) {
                    f.problem(&ckey, Kind::GroupLog, format!("missing: {key} names it"));
                }
                return Ok(());
            };
            match serde_json::from_slice::<GroupState>(&bytes) {
                Ok(g) if g.version == checkpoint && g.name == name => g,
                Ok(g) => {
                    let what = format!(
                        "holds {:?} at {}, its root says {checkpoint}",
                        g.name, g.version
                    );
                    f.problem(&ckey, Kind::GroupLog, what);
                    return Ok(());
                }
                Err(e) => {
                    f.problem(&ckey, Kind::GroupLog, format!("does not parse: {e}"));
                    return Ok(());
                }
            }
        }
    };
    // The records after the checkpoint, in position order as listed.
    let mut records: Vec<(u64, &str)> = objects
        .iter()
        .filter_map(|o| match layout::parse_data_key(&o.key) {
            Some((
                _,
                DataObject::GroupLog {
                    name: n,
                    incarnation: i,
                    entry: GroupLogEntry::Record(p),
                },
            )) if n == name && i == incarnation && p > checkpoint => Some((p, o.key.as_str())),
            _ => None,
        })
        .collect();
    records.sort_unstable();
    for (position, rkey) in records {
        if position != state.version + 1 {
            let what = format!(
                "a gap in the log: the record before it is at {}",
                state.version
            );
            f.problem(rkey, Kind::GroupLog, what);
            return Ok(());
        }
        let Some(bytes) = ctx.get(rkey).await? else {
            return Ok(()); // collected by a checkpoint since the listing
        };
        match serde_json::from_slice::<LogRecord>(&bytes) {
            Ok(r) if r.position == position => {
                r.delta.apply(&mut state);
                state.version = position;
            }
            Ok(r) => {
                f.problem(
                    rkey,
                    Kind::GroupLog,
                    format!("says it is at {}", r.position),
                );
                return Ok(());
            }
            Err(e) => {
                f.problem(rkey, Kind::GroupLog, format!("does not parse: {e}"));
                return Ok(());
            }
        }
    }
    if let Err(e) = state.check() {
        f.problem(key, Kind::Group, format!("at {}: {e}", state.version));
    }
    Ok(())
}
