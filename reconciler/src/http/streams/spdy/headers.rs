//! SPDY/3 header blocks: a count, then name and value pairs, each with its length as 32 bits
//! big-endian; compressed with zlib primed with the [`super::dictionary`], one compression
//! stream per direction for the whole connection (each block ends with a sync flush).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::dictionary;

/// A block that inflates past this is refused (a header bomb).
const MAX_BLOCK: usize = 64 * 1024;

pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
}

impl Default for HeaderCodec {
    fn default() -> HeaderCodec {
        HeaderCodec::new()
    }
}

impl HeaderCodec {
    pub fn new() -> HeaderCodec {
        let mut deflate = Compress::new(Compression::best(), true);
        // Only fails for a stream already begun; this one is new.
        let _ = deflate.set_dictionary(dictionary());
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate,
        }
    }

    /// The headers of one received block; why not, for a connection that must end.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let raw = self.inflate(block)?;
        parse(&raw).ok_or_else(|| "a malformed SPDY header block".to_string())
    }

    /// One block to send with `headers`.
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = Vec::new();
        let length = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        raw.extend_from_slice(&length(headers.len()));
        for (name, value) in headers {
            raw.extend_from_slice(&length(name.len()));
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(&length(value.len()));
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0;
        loop {
            let before = self.deflate.total_in();
            out.reserve(256);
            let status = self
                .deflate
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync);
            consumed += usize::try_from(self.deflate.total_in() - before).unwrap_or(0);
            // Done once every byte is in and the flush fitted with room to spare.
            let done = consumed >= raw.len() && out.len() < out.capacity();
            if done || matches!(status, Err(_) | Ok(Status::StreamEnd)) {
                return out;
            }
        }
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(block.len().min(MAX_BLOCK / 4) * 4 + 64);
        let mut consumed = 0;
        loop {
            let before = self.inflate.total_in();
            out.reserve(1024);
            let result =
                self.inflate
                    .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync);
            consumed += usize::try_from(self.inflate.total_in() - before).unwrap_or(0);
            match result {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {
                    if consumed >= block.len() && out.len() < out.capacity() {
                        return Ok(out);
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| format!("SPDY header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("SPDY header block: {e}")),
            }
            if out.len() > MAX_BLOCK {
                return Err(format!("a SPDY header block over {MAX_BLOCK} bytes"));
            }
        }
    }
}

/// The pairs of an inflated block; names are lower case on the wire.
fn parse(raw: &[u8]) -> Option<Vec<(String, String)>> {
    fn take(raw: &[u8], at: &mut usize) -> Option<String> {
        let length = u32::from_be_bytes(raw.get(*at..*at + 4)?.try_into().ok()?);
        let end = (*at + 4).checked_add(usize::try_from(length).ok()?)?;
        let text = String::from_utf8(raw.get(*at + 4..end)?.to_vec()).ok()?;
        *at = end;
        Some(text)
    }
    let count = u32::from_be_bytes(raw.get(..4)?.try_into().ok()?);
    let mut at = 4;
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = take(raw, &mut at)?;
        let value = take(raw, &mut at)?;
        headers.push((name, value));
    }
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_survive_both_directions_across_a_connection() {
        let (mut ours, mut theirs) = (HeaderCodec::new(), HeaderCodec::new());
        for port in ["8080", "9090"] {
            let block = ours.encode(&[("streamtype", "data"), ("port", port)]);
            let read = theirs.decode(&block).unwrap();
            assert_eq!(
                read,
                [
                    ("streamtype".to_string(), "data".to_string()),
                    ("port".to_string(), port.to_string())
                ]
            );
        }
        assert!(theirs.decode(&ours.encode(&[])).unwrap().is_empty());
        assert!(HeaderCodec::new().decode(b"not zlib at all").is_err());
    }
}
