//! The appender task comes and goes: the first append starts it, and it ends once it has
//! had nothing to do for [`AppenderSettings::idle_exit`], so that a stream nobody appends
//! to holds no task and no mailbox (a mailbox's queue allocates its first block of slots
//! up front).
//!
//! Requests keep their order across tasks. A task retires by taking its mailbox out of
//! the slot and closing it; it still commits what was queued before the close. A request
//! the closed mailbox refuses goes to a new task, which begins only once the one before
//! it has ended (both hold the stream's `turn` for their whole life), so whatever the old
//! task accepted is settled before anything the new one accepts.

use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::{AppendRequest, AppenderSettings, Writer, run, spill::Spills};
use crate::engine::handle::StreamCore;

/// A stream's appender on this node, as its [`StreamHandle`](crate::engine::StreamHandle)
/// holds it: the running task's mailbox, if one runs, and what outlives each task.
pub struct Appender(Arc<Shared>);

struct Shared {
    core: Arc<StreamCore>,
    settings: AppenderSettings,
    /// The running task's mailbox; `None` while no task runs.
    mailbox: Slot,
    /// Held by a task from its start to its end: the next one waits for it.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// The packs written out for the stream, which the next task's commits build on.
    spills: Arc<Spills>,
}

/// Where the running task's mailbox is found; the task takes it out to retire.
pub(super) type Slot = parking_lot::Mutex<Option<mpsc::Sender<AppendRequest>>>;

impl Appender {
    /// An appender that starts its task on the first request.
    pub fn new(core: Arc<StreamCore>, settings: AppenderSettings) -> Self {
        Self(Arc::new(Shared {
            core,
            settings,
            mailbox: Slot::default(),
            turn: Arc::default(),
            spills: Arc::default(),
        }))
    }

    /// Queues `req` with the running task, starting one if none runs; requests sent one
    /// after another are committed in that order.
    pub async fn send(&self, mut req: AppendRequest) {
        loop {
            let mailbox = self.mailbox();
            match mailbox.send(req).await {
                Ok(()) => return,
                // That task retired after the mailbox was taken: the next one gets it.
                Err(mpsc::error::SendError(back)) => req = back,
            }
        }
    }

    /// The running task's mailbox, from a task started now if none runs.
    fn mailbox(&self) -> mpsc::Sender<AppendRequest> {
        let shared = &self.0;
        let mut slot = shared.mailbox.lock();
        if let Some(tx) = slot.as_ref().filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(shared.settings.queue_depth);
        *slot = Some(tx.clone());
        let writer = Writer {
            core: shared.core.clone(),
            spills: shared.spills.clone(),
        };
        let (settings, turn) = (shared.settings, shared.turn.clone());
        let retire: Weak<Shared> = Arc::downgrade(shared);
        tokio::spawn(async move {
            let _turn = turn.lock_owned().await;
            run(writer, rx, settings, move || {
                // Without the handle the slot is gone, and with it the last sender.
                if let Some(shared) = retire.upgrade() {
                    shared.mailbox.lock().take();
                }
            })
            .await;
        });
        tx
    }

    /// Whether a task is running (or retiring with requests still queued).
    #[cfg(test)]
    pub(super) fn is_running(&self) -> bool {
        self.0.mailbox.lock().is_some() || self.0.turn.try_lock().is_err()
    }

    /// Keys of the packs this appender is writing out, or has written and the manifest
    /// still carries inline: the orphan sweep leaves them alone.
    pub fn pack_keys(&self) -> Vec<String> {
        self.0
            .spills
            .lock()
            .iter()
            .map(|s| s.pack.key.clone())
            .collect()
    }

    /// Waits until every pack of inline chunks under way has been written.
    #[cfg(test)]
    pub(in crate::engine) async fn spills_settled(&self) {
        let writes: Vec<_> = self
            .0
            .spills
            .lock()
            .iter()
            .map(|s| s.done.clone())
            .collect();
        for w in writes {
            w.await;
        }
    }
}
