//! The wire types and gRPC stubs generated from `proto/dspex/v1/bridge.proto` by `build.rs`.
//!
//! Generated code: the messages mirror the proto file one to one, so their documentation is
//! the proto file's comments.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::unwrap_used,
    rust_2018_idioms
)]

include!(concat!(env!("OUT_DIR"), "/dspex.v1.rs"));
