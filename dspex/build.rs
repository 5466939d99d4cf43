//! Generates the Rust code of the wire contract (`proto/dspex/v1/bridge.proto`) with
//! `tonic-prost-build`: the messages for the `proto` feature, and the gRPC services too for the
//! `python` feature. `protoc` comes from `protoc-bin-vendored` unless `PROTOC` names one, so a
//! fresh machine needs nothing installed by hand. Without `proto` (a native-only build) there is
//! nothing to generate.

#[cfg(not(feature = "proto"))]
fn main() {}

#[cfg(feature = "proto")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::path::PathBuf;

    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest.join("../proto");
    let bridge = proto_root.join("dspex/v1/bridge.proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());
    println!("cargo:rerun-if-changed={}", bridge.display());
    println!("cargo:rerun-if-env-changed=PROTOC");

    let mut config = prost_build::Config::new();
    let mut includes = vec![proto_root.clone()];
    match std::env::var_os("PROTOC") {
        Some(protoc) if !protoc.is_empty() => {
            config.protoc_executable(protoc);
        }
        _ => {
            config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        }
    }
    // The well-known types (`google/protobuf/timestamp.proto`) ship with the vendored protoc.
    includes.push(protoc_bin_vendored::include_path()?);

    tonic_prost_build::configure()
        .build_server(cfg!(feature = "python"))
        .build_client(cfg!(feature = "python"))
        .emit_rerun_if_changed(false)
        .compile_with_config(config, &[bridge], &includes)?;
    Ok(())
}
