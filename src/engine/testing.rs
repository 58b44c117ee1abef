//! What the engine's unit tests share: engines over the memory store, batches, and ways
//! to look at what a stream wrote.

use std::{sync::Arc, time::Duration};

use s2_common::{
    config::{BasinConfig, OptionalStreamConfig},
    stream::{ReadEnd, ReadFrom, ReadStart},
};

use super::{
    AppendInput, AutoCreate, Engine, EngineConfig, StreamHandle, layout, reader,
    record::RecordBatchBuilder,
};
use crate::storage::{DynStore, counting::StoreCounters};

pub(crate) fn batch(bodies: &[&[u8]]) -> AppendInput {
    let mut b = RecordBatchBuilder::new();
    for body in bodies {
        b.push(None, std::iter::empty(), body).unwrap();
    }
    AppendInput {
        batch: b.finish().unwrap(),
        match_seq_num: None,
        fencing_token: None,
    }
}

pub(crate) fn trim(point: u64) -> AppendInput {
    let mut b = RecordBatchBuilder::new();
    b.push(
        None,
        [(&b""[..], &b"trim"[..])].into_iter(),
        &point.to_be_bytes(),
    )
    .unwrap();
    AppendInput {
        batch: b.finish().unwrap(),
        match_seq_num: None,
        fencing_token: None,
    }
}

/// An engine without polling or periodic upkeep, and the stream `s` on it.
pub(crate) async fn engine_with_stream(
    store: DynStore,
    gc_grace: Duration,
) -> (Engine, Arc<StreamHandle>) {
    engine_configured_with_stream(
        store,
        EngineConfig {
            poll: None,
            gc_grace,
            maintenance_interval: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
    )
    .await
}

/// An engine on `config`, and the stream `s` on it.
pub(crate) async fn engine_configured_with_stream(
    store: DynStore,
    config: EngineConfig,
) -> (Engine, Arc<StreamHandle>) {
    let engine = Engine::new(store, config);
    engine
        .create_basin("test-basin", BasinConfig::default(), None)
        .await
        .unwrap();
    engine
        .create_stream("test-basin", "s", OptionalStreamConfig::default(), None)
        .await
        .unwrap();
    let handle = engine
        .open("test-basin", "s", AutoCreate::No)
        .await
        .unwrap();
    (engine, handle)
}

pub(crate) async fn chunk_keys(store: &DynStore, id: &str) -> Vec<String> {
    store
        .list(
            &format!("{}chunks/", layout::stream_data_dir(id)),
            None,
            1000,
        )
        .await
        .unwrap()
        .keys
}

/// Waits for this node's packs of inline chunks to be written.
pub(crate) async fn spills_settled(handle: &StreamHandle) {
    if let Some(appender) = handle.started_appender() {
        appender.spills_settled().await;
    }
}

pub(crate) async fn read_all(engine: &Engine, handle: &StreamHandle) -> Vec<Vec<u8>> {
    let start = ReadStart {
        from: ReadFrom::SeqNum(0),
        clamp: false,
    };
    let session = engine
        .read(handle, start, ReadEnd::default(), true)
        .await
        .unwrap();
    let read = reader::read_unary(session).await.unwrap();
    read.records()
        .map(|r| r.view().parts().unwrap().1.to_vec())
        .collect()
}

/// Another node on `store`, every request it makes counted, with the stream `s` open.
pub(crate) async fn counted_node(
    store: DynStore,
    config: EngineConfig,
) -> (Engine, Arc<StreamHandle>, Arc<StoreCounters>) {
    use crate::storage::counting::CountingStore;
    let counters = Arc::new(StoreCounters::default());
    let engine = Engine::new(
        Arc::new(CountingStore::new(store, counters.clone())),
        config,
    );
    let handle = engine
        .open("test-basin", "s", AutoCreate::No)
        .await
        .unwrap();
    (engine, handle, counters)
}

pub(crate) fn two_engines_config() -> EngineConfig {
    EngineConfig {
        poll: None,
        maintenance_interval: Duration::from_secs(3600),
        gc_grace: Duration::ZERO,
        ..EngineConfig::default()
    }
}

/// The first seq_num in a chunk or pack key.
pub(crate) fn first_seq_of_key(key: &str) -> u64 {
    layout::first_seq_in_key(key).expect("a chunk key")
}
