//! The answer to an upload-pack POST (protocol v0/v1, stateless RPC, request ending in
//! `done`), parsed incrementally as the body arrives in chunks of any size.
//!
//! ```text
//! ACK <oid> common|ready|continue\n    zero or more (multi_ack / multi_ack_detailed)
//! NAK\n  or  ACK <oid>\n                ends the negotiation
//! -- with side-band(-64k): pkt-lines whose first payload byte is the channel --
//!   \x01<pack bytes>                   channel 1: the pack
//!   \x02<progress>                     channel 2: progress text (ignored)
//!   \x03<message>                      channel 3: fatal error
//! 0000                                 flush: the end
//! -- without side-band: the raw pack follows the NAK/ACK directly, to the end of the body --
//! ```
//!
//! [`ResponseParser::push`] returns the pack bytes found in a chunk as slices *of that chunk*:
//! nothing is copied but a pending 4-byte pkt-line length and the small negotiation/error lines.
//! A caller streams like this:
//!
//! ```text
//! let mut response = ResponseParser::new(request.side_band);
//! let mut pack = PackVerifier::new();
//! upload(bundle_header);
//! for chunk in body {
//!     for piece in response.push(&chunk)? { pack.push(piece)?; upload(piece); }
//! }
//! response.finish()?;           // ended on the flush (side-band) or after negotiation (raw)
//! let summary = pack.finish()?; // the pack is whole and its SHA-1 trailer matches
//! ```
//!
//! Without side-band the response cannot tell where the pack ends: the [`super::pack`] verifier
//! does. An `ERR <message>` pkt-line during negotiation is [`ResponseError::Server`]; a channel-3
//! message is [`ResponseError::Remote`]. Errors stick: every later call returns the same error.

use super::oid::Oid;
use super::pktline::{Piece, PktFramer, PktLineError};
use super::refs::sanitize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    Pkt(PktLineError),
    /// `ERR <message>` from the server.
    Server(String),
    /// A side-band channel-3 message: the server gave up.
    Remote(String),
    /// A negotiation line that is not `NAK` or `ACK <oid> [status]` (shown escaped).
    UnexpectedLine(String),
    /// A flush or v2 marker where none belongs.
    UnexpectedMarker(&'static str),
    /// A side-band pkt-line for a channel other than 1, 2 or 3.
    BadChannel(u8),
    /// A side-band pkt-line with no channel byte.
    EmptySideBandPacket,
    /// The body ended early: during negotiation, or before the side-band's closing flush.
    Truncated(&'static str),
    /// Bytes after the side-band's closing flush.
    TrailingData,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Pkt(e) => write!(f, "upload-pack response: {e}"),
            ResponseError::Server(m) => write!(f, "the git server refused: {m}"),
            ResponseError::Remote(m) => write!(f, "the git server failed: {m}"),
            ResponseError::UnexpectedLine(l) => {
                write!(f, "unexpected upload-pack negotiation line {l}")
            }
            ResponseError::UnexpectedMarker(m) => {
                write!(f, "unexpected {m} in upload-pack response")
            }
            ResponseError::BadChannel(c) => write!(f, "unknown side-band channel {c}"),
            ResponseError::EmptySideBandPacket => f.write_str("side-band packet without a channel"),
            ResponseError::Truncated(at) => write!(f, "upload-pack response ended early ({at})"),
            ResponseError::TrailingData => {
                f.write_str("data after the end of the upload-pack response")
            }
        }
    }
}

impl std::error::Error for ResponseError {}

impl From<PktLineError> for ResponseError {
    fn from(e: PktLineError) -> ResponseError {
        ResponseError::Pkt(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Negotiation,
    SideBand,
    RawPack,
    Done,
}

/// Largest channel-3 message kept (the rest is dropped).
const MAX_MESSAGE: usize = 1024;

/// Incremental parser of an upload-pack answer.
#[derive(Debug)]
pub struct ResponseParser {
    side_band: bool,
    phase: Phase,
    framer: PktFramer,
    /// The negotiation line (or channel-3 message) being assembled.
    line: Vec<u8>,
    /// Channel of the side-band pkt-line in progress.
    channel: u8,
    acks: usize,
    last_ack: Option<Oid>,
    failed: Option<ResponseError>,
}

impl ResponseParser {
    /// `side_band`: whether the request asked for `side-band` or `side-band-64k`.
    pub fn new(side_band: bool) -> ResponseParser {
        ResponseParser {
            side_band,
            phase: Phase::Negotiation,
            framer: PktFramer::new(),
            line: Vec::new(),
            channel: 0,
            acks: 0,
            last_ack: None,
            failed: None,
        }
    }

    /// Takes the next chunk of the body; returns the pack bytes in it, in order, as slices of
    /// `chunk` (possibly none).
    pub fn push<'a>(&mut self, chunk: &'a [u8]) -> Result<Vec<&'a [u8]>, ResponseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        match self.parse(chunk, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn parse<'a>(
        &mut self,
        mut input: &'a [u8],
        out: &mut Vec<&'a [u8]>,
    ) -> Result<(), ResponseError> {
        while !input.is_empty() {
            match self.phase {
                Phase::RawPack => {
                    out.push(input);
                    return Ok(());
                }
                Phase::Done => return Err(ResponseError::TrailingData),
                Phase::Negotiation => {
                    let Some(piece) = self.framer.next_piece(&mut input)? else {
                        continue;
                    };
                    match piece {
                        Piece::Flush => {
                            return Err(ResponseError::UnexpectedMarker("flush during negotiation"))
                        }
                        Piece::Delim | Piece::ResponseEnd => {
                            return Err(ResponseError::UnexpectedMarker("protocol v2 marker"))
                        }
                        Piece::Data { bytes, last, .. } => {
                            self.line.extend_from_slice(bytes);
                            if last {
                                let line = std::mem::take(&mut self.line);
                                if self.negotiation_line(&line)? {
                                    self.phase = if self.side_band {
                                        Phase::SideBand
                                    } else {
                                        Phase::RawPack
                                    };
                                }
                            }
                        }
                    }
                }
                Phase::SideBand => {
                    let Some(piece) = self.framer.next_piece(&mut input)? else {
                        continue;
                    };
                    match piece {
                        Piece::Flush => self.phase = Phase::Done,
                        Piece::Delim | Piece::ResponseEnd => {
                            return Err(ResponseError::UnexpectedMarker("protocol v2 marker"))
                        }
                        Piece::Data { bytes, first, last } => {
                            let mut data = bytes;
                            if first {
                                let Some((&channel, rest)) = bytes.split_first() else {
                                    return Err(ResponseError::EmptySideBandPacket);
                                };
                                self.channel = channel;
                                data = rest;
                            }
                            match self.channel {
                                1 if !data.is_empty() => out.push(data),
                                1 | 2 => {}
                                3 => {
                                    let room = MAX_MESSAGE.saturating_sub(self.line.len());
                                    self.line.extend_from_slice(
                                        data.get(..room.min(data.len())).unwrap_or_default(),
                                    );
                                    if last {
                                        return Err(ResponseError::Remote(sanitize(&self.line)));
                                    }
                                }
                                other => return Err(ResponseError::BadChannel(other)),
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Handles one negotiation line; true when it ends the negotiation.
    fn negotiation_line(&mut self, line: &[u8]) -> Result<bool, ResponseError> {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if text == b"NAK" {
            return Ok(true);
        }
        if let Some(msg) = text.strip_prefix(b"ERR ") {
            return Err(ResponseError::Server(sanitize(msg)));
        }
        let unexpected = || ResponseError::UnexpectedLine(format!("{:?}", sanitize(line)));
        let rest = text.strip_prefix(b"ACK ").ok_or_else(unexpected)?;
        let oid =
            Oid::from_hex_bytes(rest.get(..40).ok_or_else(unexpected)?).ok_or_else(unexpected)?;
        self.acks += 1;
        self.last_ack = Some(oid);
        match rest.get(40..) {
            Some(b"") => Ok(true),
            Some(b" common") | Some(b" ready") | Some(b" continue") => Ok(false),
            _ => Err(unexpected()),
        }
    }

    /// Number of `ACK` lines received (common objects the server found).
    pub fn acks(&self) -> usize {
        self.acks
    }

    /// The last acknowledged oid, if any.
    pub fn last_ack(&self) -> Option<Oid> {
        self.last_ack
    }

    /// Whether the negotiation is over (pack bytes, if any, are flowing).
    pub fn negotiated(&self) -> bool {
        self.phase != Phase::Negotiation
    }

    /// Call at the end of the body: Ok when the response is complete as far as framing can
    /// tell (side-band: the closing flush was seen; raw: the negotiation ended, and the pack
    /// verifier judges the rest).
    pub fn finish(&self) -> Result<(), ResponseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.phase {
            Phase::Negotiation => {
                self.framer.finish()?;
                Err(ResponseError::Truncated("during negotiation"))
            }
            Phase::SideBand => {
                self.framer.finish()?;
                Err(ResponseError::Truncated(
                    "no flush after the side-band pack",
                ))
            }
            Phase::RawPack | Phase::Done => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::pktline::{write_flush, write_pkt};

    const A: &str = "1111111111111111111111111111111111111111";

    fn sideband(negotiation: &[&str], packets: &[(u8, &[u8])], flush: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for l in negotiation {
            write_pkt(&mut out, l.as_bytes()).unwrap();
        }
        for (channel, data) in packets {
            let mut p = vec![*channel];
            p.extend_from_slice(data);
            write_pkt(&mut out, &p).unwrap();
        }
        if flush {
            write_flush(&mut out);
        }
        out
    }

    /// Feeds `body` split at every `step` bytes; returns the concatenated pack bytes.
    fn run(side_band: bool, body: &[u8], step: usize) -> Result<Vec<u8>, ResponseError> {
        let mut p = ResponseParser::new(side_band);
        let mut pack = Vec::new();
        for chunk in body.chunks(step.max(1)) {
            for piece in p.push(chunk)? {
                assert!(!piece.is_empty());
                // Zero copy: every piece lies inside the chunk it came from.
                let range = chunk.as_ptr_range();
                assert!(range.contains(&piece.as_ptr()));
                pack.extend_from_slice(piece);
            }
        }
        p.finish()?;
        Ok(pack)
    }

    #[test]
    fn sideband_pack_is_reassembled_for_every_chunk_size() {
        let ack_common = format!("ACK {A} common\n");
        let ack_final = format!("ACK {A}\n");
        let body = sideband(
            &[&ack_common, &ack_final],
            &[
                (2, b"Counting objects\r"),
                (1, b"PACK\0\0\0\x02"),
                (2, b"done\n"),
                (1, b"rest of pack"),
            ],
            true,
        );
        for step in 1..=body.len() {
            assert_eq!(
                run(true, &body, step).unwrap(),
                b"PACK\0\0\0\x02rest of pack",
                "step {step}"
            );
        }
        let mut p = ResponseParser::new(true);
        p.push(&body).unwrap();
        assert_eq!(p.acks(), 2);
        assert_eq!(p.last_ack(), Oid::from_hex(A));
    }

    #[test]
    fn raw_pack_follows_nak_directly() {
        let mut body = Vec::new();
        write_pkt(&mut body, b"NAK\n").unwrap();
        body.extend_from_slice(b"PACK raw bytes 0000 not pkt-lines");
        for step in 1..=body.len() {
            assert_eq!(
                run(false, &body, step).unwrap(),
                b"PACK raw bytes 0000 not pkt-lines"
            );
        }
    }

    #[test]
    fn multi_ack_continue_lines_then_final_ack() {
        let body = sideband(
            &[
                &format!("ACK {A} continue\n"),
                &format!("ACK {A} ready\n"),
                &format!("ACK {A}\n"),
            ],
            &[(1, b"xyz")],
            true,
        );
        assert_eq!(run(true, &body, 3).unwrap(), b"xyz");
    }

    #[test]
    fn channel_three_is_a_remote_error() {
        let body = sideband(
            &["NAK\n"],
            &[(1, b"PA"), (3, b"upload-pack: out of memory\n")],
            true,
        );
        for step in [1, 2, 5, body.len()] {
            assert_eq!(
                run(true, &body, step),
                Err(ResponseError::Remote("upload-pack: out of memory".into()))
            );
        }
    }

    #[test]
    fn errors_and_truncations() {
        // ERR during negotiation.
        let body = sideband(&["ERR upload-pack: not our ref 1111\n"], &[], false);
        assert_eq!(
            run(true, &body, 4),
            Err(ResponseError::Server(
                "upload-pack: not our ref 1111".into()
            ))
        );
        // Garbage negotiation lines.
        for line in [
            "HELLO\n",
            "ACK 12\n",
            &format!("ACK {A} maybe\n"),
            &format!("ACK {}g\n", &A[..39]),
        ] {
            let body = sideband(&[line], &[], false);
            assert!(
                matches!(run(true, &body, 7), Err(ResponseError::UnexpectedLine(_))),
                "{line:?}"
            );
        }
        // Ended during negotiation (empty body, or after a common ACK).
        assert_eq!(
            run(true, b"", 1),
            Err(ResponseError::Truncated("during negotiation"))
        );
        let body = sideband(&[&format!("ACK {A} common\n")], &[], false);
        assert_eq!(
            run(true, &body, 1),
            Err(ResponseError::Truncated("during negotiation"))
        );
        // Side-band without its closing flush.
        let body = sideband(&["NAK\n"], &[(1, b"PACK")], false);
        assert_eq!(
            run(true, &body, 3),
            Err(ResponseError::Truncated(
                "no flush after the side-band pack"
            ))
        );
        // Inside a pkt-line.
        let body = sideband(&["NAK\n"], &[(1, b"PACK")], false);
        assert!(matches!(
            run(true, &body[..body.len() - 2], 3),
            Err(ResponseError::Pkt(PktLineError::Truncated { missing: 2 }))
        ));
        // Unknown channel, empty side-band packet, data after the flush, bad length.
        let body = sideband(&["NAK\n"], &[(9, b"x")], true);
        assert_eq!(run(true, &body, 2), Err(ResponseError::BadChannel(9)));
        let mut body = sideband(&["NAK\n"], &[], false);
        body.extend_from_slice(b"00040000");
        assert_eq!(run(true, &body, 2), Err(ResponseError::EmptySideBandPacket));
        let mut body = sideband(&["NAK\n"], &[(1, b"x")], true);
        body.extend_from_slice(b"0000");
        assert_eq!(run(true, &body, 2), Err(ResponseError::TrailingData));
        let body = b"zzzzNAK";
        assert!(matches!(
            run(true, body, 2),
            Err(ResponseError::Pkt(PktLineError::BadLength(_)))
        ));
        // A flush where the negotiation should answer.
        assert_eq!(
            run(false, b"0000", 4),
            Err(ResponseError::UnexpectedMarker("flush during negotiation"))
        );
    }

    #[test]
    fn errors_stick() {
        let mut p = ResponseParser::new(true);
        let body = sideband(&["NAK\n"], &[(7, b"x")], false);
        assert_eq!(p.push(&body), Err(ResponseError::BadChannel(7)));
        assert_eq!(p.push(b"0000"), Err(ResponseError::BadChannel(7)));
        assert_eq!(p.finish(), Err(ResponseError::BadChannel(7)));
    }

    #[test]
    fn long_channel_three_message_is_capped() {
        let long = vec![b'e'; 5000];
        let body = sideband(&["NAK\n"], &[(3, &long)], true);
        match run(true, &body, 100) {
            Err(ResponseError::Remote(m)) => assert!(m.chars().count() <= 201),
            other => panic!("{other:?}"),
        }
    }
}
