//! The protocol's codec: prost's, with a 1 KiB buffer per call instead of tonic's 8 KiB.
//!
//! tonic allocates the buffer when a call starts and grows it as a message needs, so a
//! small start costs a large message (a whole desired set) nothing but a few regrowths. It
//! matters for the calls that stay open: each agent's status stream lives as long as its
//! node, and at 5,000 nodes the default buffers held 40 MB of room for heartbeats of a
//! hundred bytes.

use std::marker::PhantomData;

use tonic::codec::BufferSettings;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Where each call's encode and decode buffers start.
const BUFFER_BYTES: usize = 1024;
/// How much a stream batches before it sends: tonic's default.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// Named by the generated clients and servers (`codec_path` in build.rs).
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
