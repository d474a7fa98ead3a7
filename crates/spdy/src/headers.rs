//! SPDY/3 header blocks: `count (32)` then `len (32) name len (32) value` pairs, names
//! lowercase, a value holding several values separated by NUL. Blocks are zlib-compressed with
//! the SPDY/3 dictionary, one context per direction for the whole session (each block ends
//! with a sync flush). Decompression is bounded: a header block may not inflate past a limit.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The header names the SPDY/3 dictionary starts with, each stored with a 4-byte length.
const DICTIONARY_NAMES: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's tail: status codes and phrases, dates, types and encodings, as raw text.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 ",
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 ",
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, ",
    "Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,",
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary (draft section 2.6.10.1).
pub fn dictionary() -> Vec<u8> {
    let mut out = Vec::with_capacity(1423);
    for name in DICTIONARY_NAMES {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    out.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    out
}

/// Header name -> values (a name appears once; several values are kept in order).
pub type Headers = BTreeMap<String, Vec<String>>;

/// Why a header block is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header block inflates past {0} bytes")]
    TooLarge(usize),
    #[error("header block is not valid zlib: {0}")]
    Zlib(String),
    #[error("header block is malformed: {0}")]
    Malformed(&'static str),
}

/// Compresses this side's header blocks.
pub struct Compressor {
    z: Compress,
}

impl Compressor {
    pub fn new() -> Compressor {
        let mut z = Compress::new(Compression::default(), true);
        // A fresh deflate stream always takes a dictionary.
        let _ = z.set_dictionary(&dictionary());
        Compressor { z }
    }

    /// The compressed form of `headers` (names lowercased).
    pub fn compress(&mut self, headers: &[(&str, &str)]) -> Bytes {
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input: &[u8] = &raw;
        loop {
            out.reserve(256);
            let before_in = self.z.total_in();
            let _ = self.z.compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(self.z.total_in() - before_in) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        Bytes::from(out)
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor::new()
    }
}

/// Decompresses the peer's header blocks.
pub struct Decompressor {
    z: Decompress,
    limit: usize,
}

impl Decompressor {
    /// A context whose blocks may inflate to at most `limit` bytes each.
    pub fn new(limit: usize) -> Decompressor {
        Decompressor {
            z: Decompress::new(true),
            limit,
        }
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            let before_in = self.z.total_in();
            let before_out = out.len();
            let status = match self
                .z
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(&dictionary())
                        .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                    Status::Ok
                }
                Err(e) => return Err(HeaderError::Zlib(e.to_string())),
                Ok(s) => s,
            };
            input = &input[(self.z.total_in() - before_in) as usize..];
            if out.len() > self.limit {
                return Err(HeaderError::TooLarge(self.limit));
            }
            let progressed = out.len() > before_out || self.z.total_in() > before_in;
            if status == Status::StreamEnd || (input.is_empty() && out.len() < out.capacity()) {
                return Ok(out);
            }
            if !progressed && out.len() < out.capacity() {
                return Err(HeaderError::Malformed("truncated compressed block"));
            }
            out.reserve(out.capacity().min(self.limit + 1));
        }
    }

    /// The headers of a compressed block.
    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        parse(&self.inflate(block)?)
    }
}

fn take<'a>(raw: &mut &'a [u8], n: usize) -> Result<&'a [u8], HeaderError> {
    if raw.len() < n {
        return Err(HeaderError::Malformed("a length runs past the block"));
    }
    let (head, rest) = raw.split_at(n);
    *raw = rest;
    Ok(head)
}

fn take_u32(raw: &mut &[u8]) -> Result<usize, HeaderError> {
    let b = take(raw, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Parses an uncompressed header block.
pub fn parse(mut raw: &[u8]) -> Result<Headers, HeaderError> {
    let count = take_u32(&mut raw)?;
    if count > raw.len() / 8 {
        return Err(HeaderError::Malformed("more pairs than bytes"));
    }
    let mut out = Headers::new();
    for _ in 0..count {
        let n = take_u32(&mut raw)?;
        let name = String::from_utf8_lossy(take(&mut raw, n)?).to_ascii_lowercase();
        let n = take_u32(&mut raw)?;
        let value = String::from_utf8_lossy(take(&mut raw, n)?).into_owned();
        if name.is_empty() {
            return Err(HeaderError::Malformed("an empty header name"));
        }
        out.entry(name)
            .or_default()
            .extend(value.split('\0').map(str::to_string));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_drafts() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // zlib names a preset dictionary by its Adler-32 in every stream that uses it.
        let (mut a, mut b) = (1u32, 0u32);
        for byte in &d {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn blocks_round_trip_across_one_context_per_direction() {
        let (mut c, mut d) = (Compressor::new(), Decompressor::new(1 << 16));
        for i in 0..3 {
            let port = i.to_string();
            let block = c.compress(&[("streamType", "data"), ("port", &port), ("X", "a\0b")]);
            let h = d.decompress(&block).unwrap();
            assert_eq!(h["streamtype"], ["data"]);
            assert_eq!(h["port"], [port]);
            assert_eq!(h["x"], ["a", "b"], "NUL-separated values");
        }
    }

    #[test]
    fn hostile_blocks_are_errors() {
        let mut d = Decompressor::new(1024);
        assert!(d.decompress(b"\x00\x01garbage").is_err());
        // A block that inflates far past the limit.
        let mut c = Compressor::new();
        let big = "v".repeat(100_000);
        let block = c.compress(&[("k", &big)]);
        assert_eq!(
            Decompressor::new(1024).decompress(&block),
            Err(HeaderError::TooLarge(1024))
        );
        assert!(parse(&[0, 0, 0, 9]).is_err(), "count past the block");
        assert!(
            parse(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "empty name"
        );
        assert!(parse(&[0, 0, 0, 1, 0xff, 0, 0, 0]).is_err());
    }
}
