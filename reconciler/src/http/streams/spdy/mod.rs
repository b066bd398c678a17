//! The part of SPDY/3.1 that `kubectl port-forward` speaks (client-go's SPDY streams, since
//! kubectl 1.30 carried inside a WebSocket): frames read from and written to a byte stream,
//! with their header blocks ([`headers`], primed with the [`dictionary`]).
//!
//! Flow control is not kept: client-go's SPDY library neither sends nor obeys window
//! updates.

pub mod dictionary;
pub mod headers;

/// `DATA` and `SYN_STREAM` flag: the sender will send nothing more on the stream.
pub const FLAG_FIN: u8 = 0x01;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;

/// A frame received, as far as the server acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A new stream; `block` is its compressed header block.
    SynStream {
        id: u32,
        flags: u8,
        block: Vec<u8>,
    },
    Data {
        id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// The peer reset (abandoned) a stream.
    Reset {
        id: u32,
    },
    Ping {
        id: u32,
    },
    GoAway,
    /// Extra headers for a stream. The server wants none of them, but their block must still
    /// pass through the session's one inflater, whose dictionary every later block depends on.
    Headers {
        block: Vec<u8>,
    },
    /// SETTINGS, WINDOW_UPDATE and others, which need nothing from the server.
    Ignored,
}

/// The next whole frame at the start of `buffer` and its length in bytes; `Ok(None)` while
/// it has not all arrived.
pub fn read(buffer: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let Some(header) = buffer.get(..8) else {
        return Ok(None);
    };
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let (first, second) = (word(0), word(4));
    let flags = (second >> 24) as u8;
    let length = usize::try_from(second & 0x00ff_ffff).unwrap_or(usize::MAX);
    let Some(body) = buffer.get(8..8 + length) else {
        return Ok(None);
    };
    let total = 8 + length;
    if first & 0x8000_0000 == 0 {
        let data = Frame::Data {
            id: first,
            flags,
            data: body.to_vec(),
        };
        return Ok(Some((data, total)));
    }
    let version = ((first >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(format!("SPDY version {version} (only 3 is spoken)"));
    }
    let id_at = |at: usize| -> Result<u32, String> {
        body.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
            .ok_or_else(|| "a truncated SPDY control frame".to_string())
    };
    let frame = match (first & 0xffff) as u16 {
        SYN_STREAM => Frame::SynStream {
            id: id_at(0)?,
            flags,
            block: body.get(10..).unwrap_or_default().to_vec(),
        },
        RST_STREAM => Frame::Reset { id: id_at(0)? },
        PING => Frame::Ping { id: id_at(0)? },
        GOAWAY => Frame::GoAway,
        HEADERS => Frame::Headers {
            block: body.get(4..).unwrap_or_default().to_vec(),
        },
        _ => Frame::Ignored,
    };
    Ok(Some((frame, total)))
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + body.len());
    frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    frame.extend_from_slice(&kind.to_be_bytes());
    let length = u32::try_from(body.len()).unwrap_or(0) & 0x00ff_ffff;
    frame.extend_from_slice(&((u32::from(flags) << 24) | length).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// `SYN_REPLY` for stream `id`, with its compressed header `block`.
pub fn syn_reply(id: u32, block: &[u8]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(block);
    control(SYN_REPLY, 0, &body)
}

/// A `DATA` frame; `fin` ends the stream from this side.
pub fn data(id: u32, bytes: &[u8], fin: bool) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + bytes.len());
    frame.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    let length = u32::try_from(bytes.len()).unwrap_or(0) & 0x00ff_ffff;
    let flags = if fin { FLAG_FIN } else { 0 };
    frame.extend_from_slice(&((u32::from(flags) << 24) | length).to_be_bytes());
    frame.extend_from_slice(bytes);
    frame
}

/// The answer to a `PING`.
pub fn ping(id: u32) -> Vec<u8> {
    control(PING, 0, &id.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_whole_or_not_at_all() {
        let frame = data(5, b"hello", true);
        assert_eq!(read(&frame[..10]).unwrap(), None);
        let (read_back, used) = read(&frame).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(
            read_back,
            Frame::Data {
                id: 5,
                flags: FLAG_FIN,
                data: b"hello".to_vec()
            }
        );
        let (pinged, _) = read(&ping(7)).unwrap().unwrap();
        assert_eq!(pinged, Frame::Ping { id: 7 });
        let mut wrong = ping(1);
        wrong[1] = 2;
        assert!(read(&wrong).unwrap_err().contains("version 2"));
        let (reply, _) = read(&syn_reply(3, b"x")).unwrap().unwrap();
        assert_eq!(reply, Frame::Ignored);
    }
}
