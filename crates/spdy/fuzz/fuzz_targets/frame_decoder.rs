//! The SPDY frame decoder and header-block decompressor on arbitrary bytes: never a panic,
//! never more than the limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    while let Ok(Some(frame)) = spdy::frame::decode(&mut buf, 1 << 16) {
        if let spdy::Frame::SynStream { header_block, .. } = frame {
            let _ = spdy::headers::Decompressor::new(1 << 14).decompress(&header_block);
        }
    }
    let _ = spdy::headers::parse(data);
});
