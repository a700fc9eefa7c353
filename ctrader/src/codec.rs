//! Framing of the Open API TCP stream: each frame is a 4-byte big-endian length followed by that
//! many bytes of an encoded [`ProtoMessage`].
//!
//! A frame is first *checked* (is all of it here?) and only then *parsed*: "not enough bytes yet"
//! is `Ok(None)` and the decoder waits, whereas bytes that are all here but do not decode are
//! [`FrameError::Malformed`]. A length above the configured maximum is refused before any
//! buffering, so a corrupt or hostile length prefix cannot make us allocate gigabytes.

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::messages::ProtoMessage;

/// Default largest frame accepted or sent: 15,000,000 bytes, the bound Spotware's own Python SDK
/// reads with (`TcpProtocol.MAX_LENGTH` in spotware/OpenApiPy `ctrader_open_api/tcpProtocol.py`;
/// the .NET SDK, spotware/OpenAPI.Net `OpenClient.cs`, has none beyond `int`). A broker's symbols
/// list or a reconcile of a busy account can run to megabytes, so a smaller cap turns a valid
/// answer into a read error and a reconnect loop; a bound is still kept so a corrupt or hostile
/// length prefix cannot make us allocate gigabytes.
pub const DEFAULT_MAX_FRAME_LEN: usize = 15_000_000;

const LEN_PREFIX: usize = 4;
/// Most bytes reserved ahead of their arrival.
const RESERVE_STEP: usize = 64 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix (or the message to send) exceeds the configured maximum.
    #[error(
        "frame of {len} bytes exceeds the maximum of {max} bytes (raise FrameCodec max_frame_len if the peer is trusted)"
    )]
    TooLarge {
        /// Declared or encoded frame length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A complete frame whose bytes are not a `ProtoMessage`.
    #[error("frame of {len} bytes is not a valid ProtoMessage: {reason}")]
    Malformed {
        /// The frame length.
        len: usize,
        /// prost's description of the failure.
        reason: String,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes received")]
    Truncated {
        /// Bytes buffered when the stream ended.
        have: usize,
        /// Bytes the frame (with its prefix) needed.
        need: usize,
    },
    /// The underlying socket failed.
    #[error("i/o error on the Open API stream: {0}")]
    Io(#[from] std::io::Error),
}

/// Decoder and encoder of length-prefixed [`ProtoMessage`] frames.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    /// A codec refusing frames longer than `max_frame_len` bytes (the prefix not counted).
    pub fn new(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    /// The configured maximum frame length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Length of the frame at the start of `src`, if its prefix is complete.
    fn peek_len(&self, src: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = src.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let mut p = [0u8; LEN_PREFIX];
        p.copy_from_slice(prefix);
        let len = u32::from_be_bytes(p) as usize;
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        Ok(Some(len))
    }
}

impl Decoder for FrameCodec {
    type Item = ProtoMessage;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ProtoMessage>, FrameError> {
        let Some(len) = self.peek_len(src)? else {
            return Ok(None);
        };
        let need = LEN_PREFIX + len;
        if src.len() < need {
            // Grow towards the frame as its bytes arrive, not all at once: a peer that announces
            // 15 MB and sends nothing more must not pin 15 MB per connection.
            src.reserve((need - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        src.advance(LEN_PREFIX);
        let frame = src.split_to(len);
        ProtoMessage::decode(frame.freeze())
            .map(Some)
            .map_err(|e| FrameError::Malformed {
                len,
                reason: e.to_string(),
            })
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<ProtoMessage>, FrameError> {
        match self.decode(src)? {
            Some(msg) => Ok(Some(msg)),
            None if src.is_empty() => Ok(None),
            None => {
                let need = match self.peek_len(src)? {
                    Some(len) => LEN_PREFIX + len,
                    None => LEN_PREFIX,
                };
                Err(FrameError::Truncated {
                    have: src.len(),
                    need,
                })
            }
        }
    }
}

impl Encoder<ProtoMessage> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: ProtoMessage, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&item, dst)
    }
}

impl Encoder<&ProtoMessage> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &ProtoMessage, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = item.encoded_len();
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let len_u32 = u32::try_from(len).map_err(|_| FrameError::TooLarge {
            len,
            max: self.max_frame_len,
        })?;
        dst.reserve(LEN_PREFIX + len);
        dst.put_u32(len_u32);
        item.encode(dst).map_err(|e| FrameError::Malformed {
            len,
            reason: e.to_string(),
        })
    }
}

/// Encodes one envelope as a complete frame (prefix included), for tests and tools.
pub fn encode_frame(msg: &ProtoMessage, max_frame_len: usize) -> Result<Vec<u8>, FrameError> {
    let mut buf = BytesMut::new();
    FrameCodec::new(max_frame_len).encode(msg, &mut buf)?;
    Ok(buf.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(payload_type: u32, payload: Vec<u8>, id: Option<String>) -> ProtoMessage {
        ProtoMessage {
            payload_type,
            payload: Some(payload),
            client_msg_id: id,
        }
    }

    #[test]
    fn known_bytes_on_the_wire() {
        // payloadType 51 (heartbeat), empty payload: field 1 varint 51, field 2 length 0.
        let frame = encode_frame(&msg(51, vec![], None), DEFAULT_MAX_FRAME_LEN).expect("encodes");
        assert_eq!(frame, vec![0, 0, 0, 4, 0x08, 51, 0x12, 0]);
    }

    #[test]
    fn incomplete_waits_and_eof_inside_a_frame_is_truncated() {
        let frame =
            encode_frame(&msg(2104, vec![1, 2, 3], Some("a".into())), 1024).expect("encodes");
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&frame[..frame.len() - 1]);
        assert!(
            codec
                .decode(&mut buf)
                .expect("incomplete is not an error")
                .is_none()
        );
        match codec.decode_eof(&mut buf) {
            Err(FrameError::Truncated { have, need }) => {
                assert_eq!((have, need), (frame.len() - 1, frame.len()));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
    }

    #[test]
    fn oversized_prefix_is_refused_before_buffering() {
        let mut codec = FrameCodec::new(16);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 17][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        ));
        let mut out = BytesMut::new();
        let big = msg(1, vec![0; 32], None);
        assert!(matches!(
            codec.encode(&big, &mut out),
            Err(FrameError::TooLarge { max: 16, .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn answers_of_several_megabytes_decode_and_the_bound_still_holds() {
        // A symbols list of a large broker: ~40,000 light symbols is a few MiB.
        let big = msg(2115, vec![7; 4 * 1024 * 1024], Some("syms".into()));
        let frame = encode_frame(&big, DEFAULT_MAX_FRAME_LEN).expect("encodes");
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&frame[..]);
        assert_eq!(codec.decode(&mut buf).expect("within the bound"), Some(big));
        let over = u32::try_from(DEFAULT_MAX_FRAME_LEN + 1).expect("fits");
        let mut buf = BytesMut::from(&over.to_be_bytes()[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge {
                max: DEFAULT_MAX_FRAME_LEN,
                ..
            })
        ));
    }

    #[test]
    fn complete_garbage_is_malformed() {
        let mut codec = FrameCodec::default();
        // Field 1 declared as a length-delimited field of 100 bytes inside a 3-byte frame.
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 0x0a, 100, 1][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::Malformed { len: 3, .. })
        ));
    }

    fn arb_msg() -> impl Strategy<Value = ProtoMessage> {
        (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::option::of("[ -~]{0,20}"),
        )
            .prop_map(|(t, p, id)| msg(t, p, id))
    }

    proptest! {
        #[test]
        fn frames_round_trip_under_any_chunking(
            msgs in proptest::collection::vec(arb_msg(), 1..6),
            chunk in 1usize..64,
        ) {
            let mut codec = FrameCodec::default();
            let mut wire = BytesMut::new();
            for m in &msgs {
                codec.encode(m, &mut wire).expect("encodes");
            }
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(m) = codec.decode(&mut buf).expect("valid stream") {
                    got.push(m);
                }
            }
            prop_assert!(codec.decode_eof(&mut buf).expect("clean end").is_none());
            prop_assert_eq!(got, msgs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut codec = FrameCodec::new(64);
            let mut buf = BytesMut::from(&bytes[..]);
            // Any outcome is fine as long as it is a value, not a panic.
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }
}
