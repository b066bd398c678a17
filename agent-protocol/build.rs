//! Compiles the node agent's wire protocol. Needs `protoc` (Debian: protobuf-compiler), which
//! the README's commands and `.ci/run` install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/agent.proto");
    // NodeDesired carries Secrets: no derived Debug that could print them.
    tonic_prost_build::configure()
        .skip_debug(["keel.agent.v1.NodeDesired"])
        // Smaller starting buffers than tonic's for every call (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .compile_protos(&["proto/agent.proto"], &["proto"])?;
    Ok(())
}
