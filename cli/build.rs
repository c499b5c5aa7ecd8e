//! The gRPC client of `studycafe seat-grpc`, generated from seat's own `.proto` (the contract
//! lives with its server), with the protoc the `protoc-bin-vendored` crate ships.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_server(false)
        .compile_with_config(
            config,
            &["../services/seat/proto/studycafe/seat/v1/seat.proto"],
            &["../services/seat/proto"],
        )?;
    println!("cargo:rerun-if-changed=../services/seat/proto");
    Ok(())
}
