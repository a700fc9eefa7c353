//! Compiles the Open API `.proto` subset with prost-build, using the vendored `protoc` so the build
//! needs neither a system protoc nor the network.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("proto");
    let files = [
        "OpenApiCommonModelMessages.proto",
        "OpenApiCommonMessages.proto",
        "OpenApiModelMessages.proto",
        "OpenApiMessages.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed=proto/{f}");
    }
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    let paths: Vec<PathBuf> = files.iter().map(|f| proto_dir.join(f)).collect();
    config.compile_protos(&paths, &[proto_dir])?;
    Ok(())
}
