//! SPDY/3 frames. Every frame has an 8-byte header: control frames
//! `1 | version (15) | type (16) | flags (8) | length (24)`, data frames
//! `0 | stream id (31) | flags (8) | length (24)`. Header blocks stay compressed here
//! ([`crate::headers`] handles them). Decoding is incremental ([`decode`] returns `None` until a
//! whole frame is buffered) and bounded by a maximum frame length.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol version in control frames.
pub const VERSION: u16 = 3;
/// FLAG_FIN on SYN_STREAM, SYN_REPLY, HEADERS and DATA.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// The initial per-stream (and, in 3.1, per-session) window.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// SETTINGS id of the initial window size.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// SETTINGS id of the maximum number of concurrent streams.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u32 = 4;

/// RST_STREAM status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const UNSUPPORTED_VERSION: u32 = 4;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
    pub const FRAME_TOO_LARGE: u32 = 11;
}

/// GOAWAY status codes.
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
}

/// A frame, header blocks compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        header_block: Bytes,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        header_block: Bytes,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        header_block: Bytes,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame of a type this implementation does not know (ignored, as the draft says).
    Unknown {
        kind: u16,
    },
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("SPDY version {0} is not 3")]
    Version(u16),
    #[error("frame of {len} bytes is over the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("{kind} frame of {len} bytes is malformed")]
    Malformed { kind: &'static str, len: usize },
}

const HEADER: usize = 8;

fn malformed(kind: &'static str, len: usize) -> FrameError {
    FrameError::Malformed { kind, len }
}

/// Decodes one frame from the front of `buf`: `Ok(None)` until all of it is there; consumes it.
pub fn decode(buf: &mut BytesMut, max_len: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if len > max_len {
        return Err(FrameError::TooLarge {
            len,
            limit: max_len,
        });
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let flags = buf[4];
    buf.advance(HEADER);
    let body = buf.split_to(len).freeze();
    if first & 0x8000_0000 == 0 {
        return Ok(Some(Frame::Data {
            stream_id: first & 0x7fff_ffff,
            fin: flags & FLAG_FIN != 0,
            data: body,
        }));
    }
    let version = ((first >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    control((first & 0xffff) as u16, flags, body).map(Some)
}

fn id31(b: &mut Bytes) -> u32 {
    b.get_u32() & 0x7fff_ffff
}

fn control(kind: u16, flags: u8, mut b: Bytes) -> Result<Frame, FrameError> {
    let len = b.len();
    let need = |n: usize, name| {
        if len < n {
            Err(malformed(name, len))
        } else {
            Ok(())
        }
    };
    let exact = |n: usize, name| {
        if len != n {
            Err(malformed(name, len))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        1 => {
            need(10, "SYN_STREAM")?;
            let stream_id = id31(&mut b);
            let associated_to = id31(&mut b);
            let priority = b.get_u8() >> 5;
            b.advance(1); // slot
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                header_block: b,
            }
        }
        2 => {
            need(4, "SYN_REPLY")?;
            Frame::SynReply {
                stream_id: id31(&mut b),
                fin: flags & FLAG_FIN != 0,
                header_block: b,
            }
        }
        3 => {
            exact(8, "RST_STREAM")?;
            Frame::RstStream {
                stream_id: id31(&mut b),
                status: b.get_u32(),
            }
        }
        4 => settings(b)?,
        6 => {
            exact(4, "PING")?;
            Frame::Ping { id: b.get_u32() }
        }
        7 => {
            // SPDY/3 GOAWAY carries a status; a 4-byte SPDY/2-style one is tolerated.
            if len != 8 && len != 4 {
                return Err(malformed("GOAWAY", len));
            }
            let last_good_stream_id = id31(&mut b);
            let status = if b.remaining() >= 4 { b.get_u32() } else { 0 };
            Frame::GoAway {
                last_good_stream_id,
                status,
            }
        }
        8 => {
            need(4, "HEADERS")?;
            Frame::Headers {
                stream_id: id31(&mut b),
                fin: flags & FLAG_FIN != 0,
                header_block: b,
            }
        }
        9 => {
            exact(8, "WINDOW_UPDATE")?;
            Frame::WindowUpdate {
                stream_id: id31(&mut b),
                delta: b.get_u32() & 0x7fff_ffff,
            }
        }
        kind => Frame::Unknown { kind },
    })
}

fn settings(mut b: Bytes) -> Result<Frame, FrameError> {
    let len = b.len();
    if len < 4 {
        return Err(malformed("SETTINGS", len));
    }
    let n = b.get_u32() as usize;
    if n.checked_mul(8).is_none_or(|need| need != b.remaining()) {
        return Err(malformed("SETTINGS", len));
    }
    let entries = (0..n)
        .map(|_| {
            let flags_id = b.get_u32();
            ((flags_id >> 24) as u8, flags_id & 0x00ff_ffff, b.get_u32())
        })
        .collect();
    Ok(Frame::Settings { entries })
}

fn control_header(out: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    out.put_u32(0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind));
    out.put_u32((u32::from(flags) << 24) | (len as u32 & 0x00ff_ffff));
}

/// SYN_REPLY or HEADERS: a stream id and a header block.
fn block_frame(out: &mut BytesMut, kind: u16, stream_id: u32, fin: bool, block: &[u8]) {
    control_header(out, kind, if fin { FLAG_FIN } else { 0 }, 4 + block.len());
    out.put_u32(stream_id);
    out.put_slice(block);
}

/// Appends `frame` to `out`. Bodies over 2^24 - 1 bytes cannot be framed: callers split data.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            out.put_u32(stream_id & 0x7fff_ffff);
            let flags = if *fin { FLAG_FIN } else { 0 };
            out.put_u32((u32::from(flags) << 24) | (data.len() as u32 & 0x00ff_ffff));
            out.put_slice(data);
        }
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            flags,
            header_block,
        } => {
            control_header(out, 1, *flags, 10 + header_block.len());
            out.put_u32(*stream_id);
            out.put_u32(*associated_to);
            out.put_u8(priority << 5);
            out.put_u8(0);
            out.put_slice(header_block);
        }
        Frame::SynReply {
            stream_id,
            fin,
            header_block,
        } => block_frame(out, 2, *stream_id, *fin, header_block),
        Frame::RstStream { stream_id, status } => {
            control_header(out, 3, 0, 8);
            out.put_u32(*stream_id);
            out.put_u32(*status);
        }
        Frame::Settings { entries } => {
            control_header(out, 4, 0, 4 + 8 * entries.len());
            out.put_u32(entries.len() as u32);
            for (flags, id, value) in entries {
                out.put_u32((u32::from(*flags) << 24) | (id & 0x00ff_ffff));
                out.put_u32(*value);
            }
        }
        Frame::Ping { id } => {
            control_header(out, 6, 0, 4);
            out.put_u32(*id);
        }
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            control_header(out, 7, 0, 8);
            out.put_u32(*last_good_stream_id);
            out.put_u32(*status);
        }
        Frame::Headers {
            stream_id,
            fin,
            header_block,
        } => block_frame(out, 8, *stream_id, *fin, header_block),
        Frame::WindowUpdate { stream_id, delta } => {
            control_header(out, 9, 0, 8);
            out.put_u32(*stream_id);
            out.put_u32(*delta);
        }
        Frame::Unknown { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(&f, &mut out);
        let bytes = out.to_vec();
        let mut buf = out.clone();
        assert_eq!(decode(&mut buf, 1 << 24).unwrap(), Some(f));
        assert!(buf.is_empty());
        bytes
    }

    /// Byte layouts from the draft's frame diagrams.
    #[test]
    fn control_frames_match_the_draft() {
        assert_eq!(
            round_trip(Frame::Ping { id: 1 }),
            [0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1]
        );
        assert_eq!(
            round_trip(Frame::RstStream {
                stream_id: 3,
                status: rst::CANCEL
            }),
            [0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 3, 0, 0, 0, 5]
        );
        assert_eq!(
            round_trip(Frame::WindowUpdate {
                stream_id: 1,
                delta: 0x1000
            }),
            [0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0x10, 0]
        );
        assert_eq!(
            round_trip(Frame::GoAway {
                last_good_stream_id: 5,
                status: goaway::OK
            }),
            [0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 5, 0, 0, 0, 0]
        );
        let settings = round_trip(Frame::Settings {
            entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 65536)],
        });
        assert_eq!(
            settings,
            [0x80, 0x03, 0x00, 0x04, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0]
        );
        let syn = round_trip(Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 7,
            flags: FLAG_FIN,
            header_block: Bytes::from_static(b"hb"),
        });
        assert_eq!(&syn[..8], [0x80, 0x03, 0x00, 0x01, 0x01, 0x00, 0x00, 12]);
        assert_eq!(syn[16], 0xe0, "priority in the top 3 bits");
    }

    #[test]
    fn data_frames_and_partial_input() {
        let bytes = round_trip(Frame::Data {
            stream_id: 7,
            fin: true,
            data: Bytes::from_static(b"hello"),
        });
        assert_eq!(&bytes[..8], [0, 0, 0, 7, 0x01, 0, 0, 5]);
        let mut partial = BytesMut::from(&bytes[..10]);
        assert_eq!(decode(&mut partial, 1 << 24).unwrap(), None);
        assert_eq!(partial.len(), 10, "nothing consumed");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut too_big = BytesMut::from(&[0x80u8, 3, 0, 1, 0, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decode(&mut too_big, 1 << 16),
            Err(FrameError::TooLarge { .. })
        ));
        let mut v2 = BytesMut::from(&[0x80u8, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert_eq!(decode(&mut v2, 1 << 16), Err(FrameError::Version(2)));
        let mut short = BytesMut::from(&[0x80u8, 3, 0, 3, 0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(
            decode(&mut short, 1 << 16),
            Err(FrameError::Malformed { .. })
        ));
        let mut bad_settings =
            BytesMut::from(&[0x80u8, 3, 0, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(decode(&mut bad_settings, 1 << 16).is_err());
        let mut unknown = BytesMut::from(&[0x80u8, 3, 0, 0x42, 0, 0, 0, 0][..]);
        assert_eq!(
            decode(&mut unknown, 1 << 16).unwrap(),
            Some(Frame::Unknown { kind: 0x42 })
        );
    }
}
