//! The storage trait's contract, including racing conditional writes, on real S3 servers:
//! ministack (the suite's S3) and moto (a second implementation of conditional writes).

use std::sync::Arc;

use sluice::storage::{RemoteStore, Store, conformance};

use crate::harness::{S3Server, s3_settings, unique};

async fn check(server: S3Server) {
    let store: Arc<dyn Store> =
        Arc::new(RemoteStore::s3(&s3_settings(server), Some(&unique("conformance"))).unwrap());
    conformance::check(store.as_ref()).await;
    conformance::check_races(store, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ministack_honours_the_storage_contract() {
    check(S3Server::Ministack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_honours_the_storage_contract() {
    check(S3Server::Moto).await;
}
