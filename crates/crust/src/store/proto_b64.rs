//! Serde for protobuf messages kept inside JSON records (the CRI configs of sandboxes and
//! containers): the message's wire encoding, in base64. Use with `#[serde(with = "...")]`.

use base64::Engine as _;
use serde::Deserialize as _;

/// Encodes `message` as base64 of its protobuf bytes.
pub fn serialize<M: prost::Message, S: serde::Serializer>(
    message: &M,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(message.encode_to_vec()))
}

/// Decodes what [`serialize`] wrote.
pub fn deserialize<'de, M: prost::Message + Default, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<M, D::Error> {
    let text = String::deserialize(d)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(serde::de::Error::custom)?;
    M::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
}
