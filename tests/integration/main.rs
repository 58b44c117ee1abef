//! End-to-end tests: a real Sluice node per test, over a local directory and over a
//! real S3 server (ministack), driven by plain HTTP and by the official Rust SDK.

mod harness;
mod http;

mod access_tokens;
mod bad_input;
mod concurrency;
mod control_plane;
mod dashboard;
mod data_plane;
mod encryption;
mod faults;
mod key_homes;
mod limits;
mod linearizability;
mod linearizable_workload;
mod listener;
mod locations;
mod metrics;
mod multi_node;
mod overload;
mod peer_notices;
mod plate_api;
mod plate_groups;
mod plate_ranges;
mod restart;
mod sdk_unary;
mod sessions;
mod storage_conformance;
mod stream_listing;
mod usage_metrics;
mod verify;
