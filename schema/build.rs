//! Compiles the node agent's wire protocol. Needs `protoc` (Debian: protobuf-compiler), which
//! the README's commands and `.ci/run` install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/agent.proto");
    tonic_prost_build::configure().compile_protos(&["proto/agent.proto"], &["proto"])?;
    Ok(())
}
