//! Encoding values for remote tiers: a [`Codec`] trait (serde-based), the default [`Bincode`]
//! codec (bincode 2, serde API), and the framed payload every remote entry is stored as.
//!
//! A payload starts with a small header: a magic byte, the format version and the codec's id,
//! then whether the entry is a value or a negative result, then the full encoded key, then the
//! value. A reader checks all of it: a payload written by another codec or format version, a
//! corrupt one, or one whose key differs from the key asked for (two keys whose hashes collide)
//! reads as a miss, never as a wrong value or a panic. Decoding is bounded: no payload may claim
//! more than [`MAX_PAYLOAD`] bytes, so a hostile or corrupt payload cannot allocate without bound.
//!
//! ```
//! use cache_runtime::codec::{Bincode, Codec, CodecError};
//!
//! let mut bytes = Vec::new();
//! Bincode::encode(&vec![("tea", 3u32), ("coffee", 4)], &mut bytes)?;
//! let back: Vec<(String, u32)> = Bincode::decode(&bytes)?;
//! assert_eq!(back[1], ("coffee".to_string(), 4));
//! // Bytes of another type are an error, never a wrong value or a panic.
//! assert!(Bincode::decode::<Vec<(String, u32)>>(&bytes[..5]).is_err());
//! # Ok::<(), CodecError>(())
//! ```

use crate::invalidate::stamps::{Remote, RemoteKind};
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest payload (and the most any decoded value may allocate): 64 MiB.
///
/// ```
/// use cache_runtime::codec::{Bincode, Codec, MAX_PAYLOAD};
///
/// // A corrupt or hostile payload claiming a huge length is refused before allocating it.
/// let mut claim = Vec::new();
/// Bincode::encode(&(MAX_PAYLOAD as u64 + 1), &mut claim)?;
/// assert!(Bincode::decode::<Vec<u8>>(&claim).is_err());
/// # Ok::<(), cache_runtime::codec::CodecError>(())
/// ```
pub const MAX_PAYLOAD: usize = 64 << 20;

const MAGIC: u8 = 0xCA;
/// 2: the stamps of tags and dependencies follow the key (see [`crate::invalidate`]).
const FORMAT_VERSION: u8 = 2;

/// Why a value could not be encoded or decoded.
///
/// ```
/// use cache_runtime::codec::{Bincode, Codec, CodecError};
///
/// let err = Bincode::decode::<u32>(&[]).unwrap_err(); // no bytes: no value
/// assert!(matches!(err, CodecError::Decode(_)));
/// assert!(err.to_string().starts_with("decoding failed"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec failed to encode the value.
    Encode(String),
    /// The bytes are not a value of the expected type.
    Decode(String),
    /// The payload is larger than [`MAX_PAYLOAD`].
    TooLarge(usize),
    /// The header names another format version or codec, or is cut short.
    Header(&'static str),
    /// The payload is for another key (a hash collision in the store's key space).
    KeyMismatch,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encode(e) => write!(f, "encoding failed: {e}"),
            Self::Decode(e) => write!(f, "decoding failed: {e}"),
            Self::TooLarge(n) => write!(
                f,
                "payload of {n} bytes is over the {MAX_PAYLOAD}-byte limit"
            ),
            Self::Header(why) => write!(f, "bad payload header: {why}"),
            Self::KeyMismatch => f.write_str("payload belongs to another key"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Turns serde values into bytes and back, for remote tiers. Replace [`Bincode`] with another
/// codec (postcard, say) without touching the code of memoized functions.
///
/// ```
/// use cache_runtime::codec::{Bincode, Codec, CodecError};
/// use serde::{Serialize, de::DeserializeOwned};
///
/// /// Encodes and decodes `value` with any codec.
/// fn round_trip<C: Codec, T: Serialize + DeserializeOwned>(value: &T) -> Result<T, CodecError> {
///     let mut bytes = Vec::new();
///     C::encode(value, &mut bytes)?;
///     C::decode(&bytes)
/// }
///
/// assert_eq!(round_trip::<Bincode, _>(&(7u64, "ada".to_string()))?, (7, "ada".to_string()));
/// assert_eq!(Bincode::ID, 1); // written into every payload's header
/// # Ok::<(), CodecError>(())
/// ```
pub trait Codec: Send + Sync + 'static {
    /// Written into every payload's header; a payload of another codec reads as a miss.
    const ID: u8;

    /// Appends `value`'s encoding to `out`.
    ///
    /// ```
    /// use cache_runtime::codec::{Bincode, Codec};
    ///
    /// let mut out = vec![0xAA]; // a header, written before
    /// Bincode::encode(&7u32, &mut out)?;
    /// assert_eq!(out[0], 0xAA);
    /// assert_eq!(Bincode::decode::<u32>(&out[1..])?, 7);
    /// # Ok::<(), cache_runtime::codec::CodecError>(())
    /// ```
    ///
    /// # Errors
    /// When the value cannot be encoded by this codec.
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes a whole value from `bytes`, allocating at most about [`MAX_PAYLOAD`] bytes.
    ///
    /// ```
    /// use cache_runtime::codec::{Bincode, Codec};
    ///
    /// let mut bytes = Vec::new();
    /// Bincode::encode(&7u32, &mut bytes)?;
    /// assert_eq!(Bincode::decode::<u32>(&bytes)?, 7);
    /// bytes.push(0);
    /// assert!(Bincode::decode::<u32>(&bytes).is_err()); // a whole value, nothing more
    /// # Ok::<(), cache_runtime::codec::CodecError>(())
    /// ```
    ///
    /// # Errors
    /// When the bytes are not exactly one value of type `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError>;
}

/// bincode 2.0.1 through its serde API, standard configuration, with an allocation limit.
///
/// ```
/// use cache_runtime::codec::{Bincode, Codec};
///
/// let mut bytes = Vec::new();
/// Bincode::encode(&("ada", 36u8), &mut bytes)?;
/// let back: (String, u8) = Bincode::decode(&bytes)?;
/// assert_eq!(back, ("ada".to_string(), 36));
/// // Trailing or missing bytes are errors, never a wrong value.
/// assert!(Bincode::decode::<(String, u8)>(&bytes[..bytes.len() - 1]).is_err());
/// # Ok::<(), cache_runtime::codec::CodecError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Bincode;

impl Codec for Bincode {
    const ID: u8 = 1;

    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let config = bincode::config::standard().with_limit::<MAX_PAYLOAD>();
        bincode::serde::encode_into_std_write(value, out, config)
            .map(|_| ())
            .map_err(|e| CodecError::Encode(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        let config = bincode::config::standard().with_limit::<MAX_PAYLOAD>();
        match bincode::serde::decode_from_slice::<T, _>(bytes, config) {
            Ok((v, used)) if used == bytes.len() => Ok(v),
            Ok((_, used)) => Err(CodecError::Decode(format!(
                "{} trailing bytes",
                bytes.len() - used
            ))),
            Err(e) => Err(CodecError::Decode(e.to_string())),
        }
    }
}

/// What a payload holds besides its key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<V, N> {
    Value(V),
    Negative(N),
}

const KIND_VALUE: u8 = 0;
const KIND_NEGATIVE: u8 = 1;

/// The encoded form of a key: what a payload stores and what a reader compares.
///
/// # Errors
/// When the key cannot be encoded.
pub(crate) fn encode_key<C: Codec, K: Serialize + ?Sized>(key: &K) -> Result<Vec<u8>, CodecError> {
    // Most keys are a few bytes: one allocation, not a growth from 8.
    let mut out = Vec::with_capacity(32);
    C::encode(key, &mut out)?;
    Ok(out)
}

/// A framed payload: header, key, value.
#[cfg(test)]
pub(crate) fn encode_payload<C: Codec, V: Serialize, N: Serialize>(
    key: &[u8],
    entry: &Decoded<&V, &N>,
) -> Result<Vec<u8>, CodecError> {
    encode_stamped::<C, V, N>(key, &[], entry)
}

/// A framed payload: header, key, the entry's stamps (what it depends on), value.
pub(crate) fn encode_stamped<C: Codec, V: Serialize, N: Serialize>(
    key: &[u8],
    stamps: &[Remote],
    entry: &Decoded<&V, &N>,
) -> Result<Vec<u8>, CodecError> {
    let key_len = u32::try_from(key.len()).map_err(|_| CodecError::TooLarge(key.len()))?;
    let mut out = Vec::with_capacity(10 + key.len() + 32);
    out.extend_from_slice(&[MAGIC, FORMAT_VERSION, C::ID]);
    out.push(match entry {
        Decoded::Value(_) => KIND_VALUE,
        Decoded::Negative(_) => KIND_NEGATIVE,
    });
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key);
    let n = u16::try_from(stamps.len()).map_err(|_| CodecError::TooLarge(stamps.len()))?;
    out.extend_from_slice(&n.to_le_bytes());
    for r in stamps {
        let len = u16::try_from(r.key.len()).map_err(|_| CodecError::TooLarge(r.key.len()))?;
        out.push(r.kind as u8);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(r.key.as_bytes());
        out.extend_from_slice(&r.token.to_le_bytes());
    }
    match entry {
        Decoded::Value(v) => C::encode(*v, &mut out)?,
        Decoded::Negative(n) => C::encode(*n, &mut out)?,
    }
    if out.len() > MAX_PAYLOAD {
        return Err(CodecError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Reads a payload written by [`encode_stamped`] for `key` with the same codec.
#[cfg(test)]
pub(crate) fn decode_payload<C: Codec, V: DeserializeOwned, N: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<Decoded<V, N>, CodecError> {
    decode_stamped::<C, V, N>(key, bytes).map(|(d, _)| d)
}

/// Reads a payload written by [`encode_stamped`] for `key` with the same codec: the entry and
/// its stamps.
pub(crate) fn decode_stamped<C: Codec, V: DeserializeOwned, N: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<(Decoded<V, N>, Vec<Remote>), CodecError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    let Some((header, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(CodecError::Header("shorter than the header"));
    };
    let [magic, version, codec, kind, l0, l1, l2, l3] = *header;
    if magic != MAGIC {
        return Err(CodecError::Header("not a cache-runtime payload"));
    }
    if version != FORMAT_VERSION {
        return Err(CodecError::Header("another format version"));
    }
    if codec != C::ID {
        return Err(CodecError::Header("written by another codec"));
    }
    let key_len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if rest.len() < key_len {
        return Err(CodecError::Header("cut short inside the key"));
    }
    let (stored_key, rest) = rest.split_at(key_len);
    if stored_key != key {
        return Err(CodecError::KeyMismatch);
    }
    let (stamps, value) = read_stamps(rest)?;
    let entry = match kind {
        KIND_VALUE => C::decode(value).map(Decoded::Value)?,
        KIND_NEGATIVE => C::decode(value).map(Decoded::Negative)?,
        _ => return Err(CodecError::Header("unknown entry kind")),
    };
    Ok((entry, stamps))
}

/// The stamps section of a payload, and what follows it.
fn read_stamps(bytes: &[u8]) -> Result<(Vec<Remote>, &[u8]), CodecError> {
    const CUT: CodecError = CodecError::Header("cut short inside the stamps");
    let (n, mut rest) = bytes.split_first_chunk::<2>().ok_or(CUT)?;
    let n = usize::from(u16::from_le_bytes(*n));
    // Each stamp takes 11 bytes at least: a count beyond that is corruption, not an allocation.
    let mut stamps = Vec::with_capacity(n.min(rest.len() / 11));
    for _ in 0..n {
        let (&kind, r) = rest.split_first().ok_or(CUT)?;
        let (len, r) = r.split_first_chunk::<2>().ok_or(CUT)?;
        let len = usize::from(u16::from_le_bytes(*len));
        if r.len() < len {
            return Err(CUT);
        }
        let (key, r) = r.split_at(len);
        let (token, r) = r.split_first_chunk::<8>().ok_or(CUT)?;
        let kind = match kind {
            0 => RemoteKind::Local,
            1 => RemoteKind::Global,
            _ => return Err(CodecError::Header("unknown stamp kind")),
        };
        let key = String::from_utf8(key.to_vec()).map_err(|_| CUT)?;
        stamps.push(Remote {
            kind,
            key,
            token: u64::from_le_bytes(*token),
        });
        rest = r;
    }
    Ok((stamps, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    type P = Decoded<Vec<String>, ()>;

    fn payload(key: &str, v: &Vec<String>) -> Vec<u8> {
        let k = encode_key::<Bincode, _>(key).unwrap();
        encode_payload::<Bincode, Vec<String>, ()>(&k, &Decoded::Value(v)).unwrap()
    }

    #[test]
    fn round_trip_value_and_negative() {
        let v = vec!["a".to_string(), "bc".to_string()];
        let k = encode_key::<Bincode, _>("user:1").unwrap();
        let p = payload("user:1", &v);
        assert_eq!(
            decode_payload::<Bincode, Vec<String>, ()>(&k, &p),
            Ok(Decoded::Value(v))
        );
        let n = encode_payload::<Bincode, u8, String>(&k, &Decoded::Negative(&"gone".to_string()))
            .unwrap();
        assert_eq!(
            decode_payload::<Bincode, u8, String>(&k, &n),
            Ok(Decoded::Negative("gone".to_string()))
        );
    }

    #[test]
    fn other_key_codec_version_or_corruption_is_an_error_not_a_value() {
        let v = vec!["x".to_string()];
        let p = payload("k1", &v);
        let k2 = encode_key::<Bincode, _>("k2").unwrap();
        assert_eq!(
            decode_payload::<Bincode, Vec<String>, ()>(&k2, &p),
            Err::<P, _>(CodecError::KeyMismatch)
        );
        let k1 = encode_key::<Bincode, _>("k1").unwrap();
        for i in 0..3 {
            let mut bad = p.clone();
            bad[i] ^= 0xFF;
            assert!(matches!(
                decode_payload::<Bincode, Vec<String>, ()>(&k1, &bad),
                Err(CodecError::Header(_))
            ));
        }
        // Every truncation and every single-byte corruption: an error or (rarely) a value, never a panic.
        for cut in 0..p.len() {
            let _ = decode_payload::<Bincode, Vec<String>, ()>(&k1, &p[..cut]);
        }
        for i in 0..p.len() {
            for b in [0u8, 1, 0x7F, 0xFF] {
                let mut bad = p.clone();
                bad[i] = b;
                let _ = decode_payload::<Bincode, Vec<String>, ()>(&k1, &bad);
            }
        }
        // The wrong type reads as an error too.
        assert!(decode_payload::<Bincode, u64, ()>(&k1, &p).is_err());
    }

    #[test]
    fn stamps_round_trip_and_bad_ones_are_errors() {
        let k = encode_key::<Bincode, _>("page:1").unwrap();
        let stamps = vec![
            Remote {
                kind: RemoteKind::Local,
                key: "app:pages:1:tag:catalog".into(),
                token: 42,
            },
            Remote {
                kind: RemoteKind::Global,
                key: "app:tag:catalog".into(),
                token: 0,
            },
        ];
        let p = encode_stamped::<Bincode, u32, ()>(&k, &stamps, &Decoded::Value(&7)).unwrap();
        let (d, back) = decode_stamped::<Bincode, u32, ()>(&k, &p).unwrap();
        assert_eq!((d, back), (Decoded::Value(7), stamps));
        for cut in 0..p.len() {
            assert!(decode_stamped::<Bincode, u32, ()>(&k, &p[..cut]).is_err());
        }
    }

    #[test]
    fn hostile_lengths_do_not_allocate_without_bound() {
        let k = encode_key::<Bincode, _>("k").unwrap();
        // A header, then a Vec claiming about 2^60 elements.
        let mut p = vec![MAGIC, FORMAT_VERSION, Bincode::ID, KIND_VALUE];
        p.extend_from_slice(&u32::try_from(k.len()).unwrap().to_le_bytes());
        p.extend_from_slice(&k);
        p.extend_from_slice(&0u16.to_le_bytes()); // no stamps
        p.push(0xFD); // bincode varint: a u64 follows
        p.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let r = decode_payload::<Bincode, Vec<u64>, ()>(&k, &p);
        assert!(matches!(r, Err(CodecError::Decode(_))), "{r:?}");
        let huge = vec![0u8; MAX_PAYLOAD + 1];
        assert_eq!(
            decode_payload::<Bincode, Vec<u8>, ()>(&k, &huge),
            Err(CodecError::TooLarge(MAX_PAYLOAD + 1))
        );
    }
}
