//! Retrying: one read-modify-write primitive for every conditional object the engine
//! changes outside the appender (catalog entries, manifests, consumer groups), and the
//! jittered back-off every retry loop sleeps with.
//!
//! Any number of nodes may change the same object at once; each change is a read, a
//! decision, and a write conditional on the version read. A lost race re-reads and decides
//! again after a random pause, so writers that collided spread out instead of colliding
//! again; the budget is bounded so a client gets a retryable error rather than a hang.

use std::time::Duration;

use super::{
    error::{EngineError, EngineResult},
    random::Random,
};

/// A jittered exponential back-off: before retry `n` (from 1), a uniformly random pause
/// up to `base · 2^(n-1)`, capped at `cap`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub async fn pause(&self, retry: usize, random: &Random) {
        if retry == 0 {
            return;
        }
        let max = (self.base * (1u32 << (retry - 1).min(16))).min(self.cap);
        let jitter = random.in_range(0..max.as_micros() as u64 + 1);
        tokio::time::sleep(Duration::from_micros(jitter)).await;
    }
}

/// Tries of a read-modify-write before it gives up; with [`RACE_BACKOFF`] they span a
/// few seconds, below the S2 SDKs' request timeout.
pub const MAX_RACES: usize = 32;
/// The pause between tries of a read-modify-write that lost a race.
pub const RACE_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(1),
    cap: Duration::from_millis(64),
};

/// The tries of one read-modify-write of a conditional object. Every such change is the
/// same loop: `races.next().await?`, read, decide (returning if nothing needs writing),
/// write conditionally on the version read, and return if the write won; a lost race goes
/// round again. `next` pauses before every try after the first and fails once the budget
/// is spent.
pub struct Races {
    what: &'static str,
    tries: usize,
    random: Random,
}

impl Races {
    /// A read-modify-write of `what` (named in the error when the budget runs out).
    pub fn new(what: &'static str, random: &Random) -> Self {
        Self {
            what,
            tries: 0,
            random: random.clone(),
        }
    }

    /// Call before every try: pauses after a lost race, and after [`MAX_RACES`] tries
    /// fails with the retryable `TransactionConflict`.
    pub async fn next(&mut self) -> EngineResult<()> {
        if self.tries >= MAX_RACES {
            return Err(EngineError::TransactionConflict(format!(
                "{} kept changing concurrently; retry",
                self.what
            )));
        }
        RACE_BACKOFF.pause(self.tries, &self.random).await;
        self.tries += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_change_that_keeps_losing_gives_up_with_a_conflict() {
        let mut races = Races::new("the thing", &Random::os());
        let mut tries = 0;
        let error = loop {
            if let Err(e) = races.next().await {
                break e;
            }
            tries += 1;
        };
        assert_eq!(tries, MAX_RACES);
        assert!(
            matches!(&error, EngineError::TransactionConflict(m) if m.contains("the thing")),
            "{error:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_retries_pause() {
        let mut races = Races::new("x", &Random::os());
        let start = tokio::time::Instant::now();
        races.next().await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_and_stay_under_the_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(2),
            cap: Duration::from_millis(10),
        };
        for retry in 0..20 {
            let start = tokio::time::Instant::now();
            backoff.pause(retry, &Random::os()).await;
            let max = match retry {
                0 => Duration::ZERO,
                n => (backoff.base * (1 << (n - 1).min(16))).min(backoff.cap),
            };
            assert!(start.elapsed() <= max + Duration::from_millis(1));
        }
    }

    /// Creates, reconfigurations and deletions of one basin and one stream from 16 tasks
    /// on two nodes at once, over a store whose requests take a random while: in each
    /// phase every task changes the same object, one change after another, and every
    /// change ends in its own answer (or a refusal the race makes legitimate), none in an
    /// exhausted budget.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn catalog_changes_at_16_way_contention_never_run_out_of_tries() {
        use std::sync::Arc;

        use s2_common::{
            config::{
                BasinConfig, BasinReconfiguration, OptionalStreamConfig, StreamReconfiguration,
            },
            maybe::Maybe,
        };

        use crate::{
            engine::{Engine, EngineConfig},
            storage::{
                self,
                faulty::{Faults, FaultyStore},
            },
        };

        const TASKS: usize = 16;
        const CHANGES: usize = 30;
        let store: storage::DynStore = Arc::new(FaultyStore::new(
            storage::memory(),
            5,
            Faults {
                delay: 1.0,
                max_delay: Duration::from_millis(2),
                ..Faults::default()
            },
        ));
        let config = EngineConfig {
            poll: None,
            deletion_grace: Duration::from_millis(5),
            maintenance_interval: Duration::from_secs(3600),
            ..EngineConfig::default()
        };
        let nodes = [
            Engine::new(store.clone(), config.clone()),
            Engine::new(store, config),
        ];
        nodes[0]
            .create_basin("race", BasinConfig::default(), None)
            .await
            .unwrap();
        for phase in 0..6 {
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let engine = nodes[t % 2].clone();
                    tokio::spawn(async move {
                        let mut outcomes = Vec::new();
                        for i in 0..CHANGES {
                            let flip = (t + i) % 2 == 0;
                            let class = if flip { "express" } else { "standard" };
                            let result = match phase {
                                0 => engine
                                    .ensure_basin(
                                        "race",
                                        BasinConfig {
                                            create_stream_on_append: flip,
                                            ..BasinConfig::default()
                                        },
                                    )
                                    .await
                                    .map(drop),
                                1 => engine
                                    .reconfigure_basin(
                                        "race",
                                        BasinReconfiguration {
                                            create_stream_on_read: Maybe::Specified(flip),
                                            ..BasinReconfiguration::default()
                                        },
                                    )
                                    .await
                                    .map(drop),
                                2 => {
                                    let config = OptionalStreamConfig {
                                        storage_class: Some(class.into()),
                                        ..OptionalStreamConfig::default()
                                    };
                                    match engine
                                        .create_stream("race", "s", config.clone(), None)
                                        .await
                                    {
                                        Ok(_) | Err(EngineError::AlreadyExists(_)) => engine
                                            .ensure_stream("race", "s", config)
                                            .await
                                            .map(drop),
                                        Err(e) => Err(e),
                                    }
                                }
                                3 => engine
                                    .reconfigure_stream(
                                        "race",
                                        "s",
                                        StreamReconfiguration {
                                            storage_class: Maybe::Specified(Some(class.into())),
                                            ..StreamReconfiguration::default()
                                        },
                                    )
                                    .await
                                    .map(drop),
                                4 => engine.delete_stream("race", "s").await,
                                _ => match engine
                                    .create_basin(
                                        &format!("race-{i}"),
                                        BasinConfig::default(),
                                        None,
                                    )
                                    .await
                                {
                                    Ok(_) => engine.delete_basin(&format!("race-{i}")).await,
                                    Err(e) => Err(e),
                                },
                            };
                            outcomes.push(result);
                        }
                        outcomes
                    })
                })
                .collect();
            for task in tasks {
                for outcome in task.await.unwrap() {
                    match outcome {
                        Ok(())
                        | Err(
                            EngineError::AlreadyExists(_)
                            | EngineError::StreamNotFound(_)
                            | EngineError::BasinNotFound(_)
                            | EngineError::StreamDeletionPending(_)
                            | EngineError::BasinDeletionPending(_),
                        ) => {}
                        Err(e) => panic!("a change in phase {phase} failed: {e:?}"),
                    }
                }
            }
        }
    }
}
