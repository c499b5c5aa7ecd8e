//! Generates the gRPC server and client from `proto/`, with the protoc the
//! `protoc-bin-vendored` crate ships: a fresh machine needs no system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("seat_descriptor.bin"))
        .compile_with_config(config, &["proto/studycafe/seat/v1/seat.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
