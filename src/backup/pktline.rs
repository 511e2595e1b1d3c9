//! Git's pkt-line framing (gitprotocol-common(5)), the envelope of every smart-HTTP message.
//!
//! A pkt-line is four hex digits giving the total length (the four digits included), then the
//! payload: `0006a\n` carries `a\n`. Three lengths below 4 are markers, not lines: `0000` flush
//! (end of a section), `0001` delimiter and `0002` response end (both protocol v2 only). `0003`
//! is invalid, and no pkt-line is longer than [`MAX_PKT_LEN`] (65520) bytes.
//!
//! Three tools, for three consumers:
//! - [`write_pkt`] / [`write_flush`] / [`write_delim`] build request bodies ([`super::request`]);
//! - [`PktDecoder`] buffers pushed bytes and hands out whole pkt-lines: for messages that are
//!   read whole anyway (the ref advertisement, [`super::refs`]);
//! - [`PktFramer`] cuts a stream into pieces of pkt-lines *without copying*: each
//!   [`Piece::Data`] borrows from the caller's chunk, and only an unfinished 4-byte length is
//!   kept between chunks. [`super::response`] uses it to pass side-band pack data through.
//!
//! Neither decoder panics on any input; a bad length is an error that sticks (the decoders do
//! not resynchronise: after a framing error nothing in the stream can be trusted).

use std::fmt;

/// Longest pkt-line, length digits included (git's `LARGE_PACKET_MAX`).
pub const MAX_PKT_LEN: usize = 65520;
/// Longest payload of one pkt-line.
pub const MAX_PKT_PAYLOAD: usize = MAX_PKT_LEN - 4;
/// The flush marker.
pub const FLUSH: &[u8; 4] = b"0000";
/// The delimiter marker (protocol v2).
pub const DELIM: &[u8; 4] = b"0001";
/// The response-end marker (protocol v2, stateless).
pub const RESPONSE_END: &[u8; 4] = b"0002";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PktLineError {
    /// The four length bytes are not hex digits.
    BadLength([u8; 4]),
    /// `0003`: a length that can hold neither a marker nor a payload.
    ReservedLength,
    /// A length above [`MAX_PKT_LEN`].
    TooLong(usize),
    /// A payload handed to [`write_pkt`] longer than [`MAX_PKT_PAYLOAD`].
    PayloadTooLong(usize),
    /// The stream ended inside a pkt-line (`missing` bytes short, when known).
    Truncated { missing: usize },
}

impl fmt::Display for PktLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PktLineError::BadLength(b) => write!(
                f,
                "pkt-line length {:?} is not four hex digits",
                String::from_utf8_lossy(b)
            ),
            PktLineError::ReservedLength => f.write_str("pkt-line length 0003 is invalid"),
            PktLineError::TooLong(n) => {
                write!(
                    f,
                    "pkt-line of {n} bytes exceeds the maximum of {MAX_PKT_LEN}"
                )
            }
            PktLineError::PayloadTooLong(n) => write!(
                f,
                "payload of {n} bytes does not fit in one pkt-line (max {MAX_PKT_PAYLOAD})"
            ),
            PktLineError::Truncated { missing } => {
                write!(
                    f,
                    "stream ended inside a pkt-line ({missing} bytes missing)"
                )
            }
        }
    }
}

impl std::error::Error for PktLineError {}

/// Appends `payload` as one pkt-line.
pub fn write_pkt(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), PktLineError> {
    if payload.len() > MAX_PKT_PAYLOAD {
        return Err(PktLineError::PayloadTooLong(payload.len()));
    }
    out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// `payload` as one pkt-line.
pub fn pkt(payload: &[u8]) -> Result<Vec<u8>, PktLineError> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    write_pkt(&mut out, payload)?;
    Ok(out)
}

pub fn write_flush(out: &mut Vec<u8>) {
    out.extend_from_slice(FLUSH);
}

pub fn write_delim(out: &mut Vec<u8>) {
    out.extend_from_slice(DELIM);
}

/// What a 4-byte length announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Flush,
    Delim,
    ResponseEnd,
    /// A pkt-line whose payload is this many bytes (0 for the legal but odd `0004`).
    Data(usize),
}

/// Reads a 4-byte pkt-line length.
pub fn parse_header(len: [u8; 4]) -> Result<Header, PktLineError> {
    let mut n = 0usize;
    for b in len {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(PktLineError::BadLength(len)),
        };
        n = (n << 4) | digit as usize;
    }
    match n {
        0 => Ok(Header::Flush),
        1 => Ok(Header::Delim),
        2 => Ok(Header::ResponseEnd),
        3 => Err(PktLineError::ReservedLength),
        n if n > MAX_PKT_LEN => Err(PktLineError::TooLong(n)),
        n => Ok(Header::Data(n - 4)),
    }
}

/// One whole pkt-line or marker, borrowed from a [`PktDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    Flush,
    Delim,
    ResponseEnd,
    Data(&'a [u8]),
}

/// Buffers pushed bytes and yields whole pkt-lines. Memory is what was pushed and not yet read
/// (at most one pkt-line if the caller reads after every push).
#[derive(Debug, Default)]
pub struct PktDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl PktDecoder {
    pub fn new() -> PktDecoder {
        PktDecoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The next whole pkt-line or marker, `None` if more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, PktLineError> {
        let rest = self.buf.get(self.start..).unwrap_or_default();
        let Some(len) = rest.get(..4) else {
            return Ok(None);
        };
        let mut digits = [0u8; 4];
        digits.copy_from_slice(len);
        let (used, packet) = match parse_header(digits)? {
            Header::Flush => (4, Packet::Flush),
            Header::Delim => (4, Packet::Delim),
            Header::ResponseEnd => (4, Packet::ResponseEnd),
            Header::Data(n) => match rest.get(4..4 + n) {
                Some(payload) => (4 + n, Packet::Data(payload)),
                None => return Ok(None),
            },
        };
        self.start += used;
        Ok(Some(packet))
    }

    /// Ok when the stream ended on a pkt-line boundary.
    pub fn finish(&self) -> Result<(), PktLineError> {
        let rest = self.buf.get(self.start..).unwrap_or_default();
        match rest.len() {
            0 => Ok(()),
            n if n < 4 => Err(PktLineError::Truncated { missing: 4 - n }),
            n => {
                let mut digits = [0u8; 4];
                digits.copy_from_slice(rest.get(..4).unwrap_or(&[b'0'; 4]));
                match parse_header(digits)? {
                    Header::Data(len) if n < len + 4 => Err(PktLineError::Truncated {
                        missing: len + 4 - n,
                    }),
                    // A complete pkt-line or marker is waiting to be read: not truncated.
                    _ => Ok(()),
                }
            }
        }
    }
}

/// A piece of a pkt-line stream, borrowed from the chunk handed to [`PktFramer::next_piece`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Flush,
    Delim,
    ResponseEnd,
    /// Some payload bytes of one pkt-line: `first` when they start it, `last` when they end it.
    /// A payload split across chunks comes as several pieces; an empty pkt-line (`0004`) as one
    /// empty piece with both flags. Otherwise `bytes` is never empty.
    Data {
        bytes: &'a [u8],
        first: bool,
        last: bool,
    },
}

/// Zero-copy pkt-line framing of a stream pushed in chunks of any size.
#[derive(Debug, Default)]
pub struct PktFramer {
    len: [u8; 4],
    len_have: usize,
    /// Payload bytes still to come in the current pkt-line.
    remaining: usize,
    /// The next payload piece starts its pkt-line.
    first_pending: bool,
    failed: Option<PktLineError>,
}

impl PktFramer {
    pub fn new() -> PktFramer {
        PktFramer::default()
    }

    /// Takes the next piece off the front of `input` (advancing it); `None` once `input` is
    /// used up without completing a piece.
    pub fn next_piece<'a>(
        &mut self,
        input: &mut &'a [u8],
    ) -> Result<Option<Piece<'a>>, PktLineError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.remaining > 0 {
            if input.is_empty() {
                return Ok(None);
            }
            let n = self.remaining.min(input.len());
            let (bytes, rest) = input.split_at(n);
            *input = rest;
            self.remaining -= n;
            let first = std::mem::take(&mut self.first_pending);
            return Ok(Some(Piece::Data {
                bytes,
                first,
                last: self.remaining == 0,
            }));
        }
        let need = 4 - self.len_have;
        let n = need.min(input.len());
        let (digits, rest) = input.split_at(n);
        if let Some(dst) = self.len.get_mut(self.len_have..self.len_have + n) {
            dst.copy_from_slice(digits);
        }
        self.len_have += n;
        *input = rest;
        if self.len_have < 4 {
            return Ok(None);
        }
        self.len_have = 0;
        match parse_header(self.len) {
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
            Ok(Header::Flush) => Ok(Some(Piece::Flush)),
            Ok(Header::Delim) => Ok(Some(Piece::Delim)),
            Ok(Header::ResponseEnd) => Ok(Some(Piece::ResponseEnd)),
            Ok(Header::Data(0)) => Ok(Some(Piece::Data {
                bytes: &[],
                first: true,
                last: true,
            })),
            Ok(Header::Data(len)) => {
                self.remaining = len;
                self.first_pending = true;
                self.next_piece(input)
            }
        }
    }

    /// Whether the stream so far ends on a pkt-line boundary.
    pub fn at_boundary(&self) -> bool {
        self.failed.is_none() && self.len_have == 0 && self.remaining == 0
    }

    /// Ok when the stream ended on a pkt-line boundary.
    pub fn finish(&self) -> Result<(), PktLineError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.len_have > 0 {
            return Err(PktLineError::Truncated {
                missing: 4 - self.len_have,
            });
        }
        if self.remaining > 0 {
            return Err(PktLineError::Truncated {
                missing: self.remaining,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `bytes` at every position in `cuts` (sorted), for feeding in chunks.
    fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts {
            out.push(&bytes[at..c]);
            at = c;
        }
        out.push(&bytes[at..]);
        out
    }

    #[test]
    fn encodes_lines_and_markers() {
        assert_eq!(pkt(b"a\n").unwrap(), b"0006a\n");
        assert_eq!(pkt(b"").unwrap(), b"0004");
        let mut out = Vec::new();
        write_pkt(&mut out, b"# service=git-upload-pack\n").unwrap();
        write_flush(&mut out);
        write_delim(&mut out);
        assert_eq!(out, b"001e# service=git-upload-pack\n00000001");
        let max = vec![b'x'; MAX_PKT_PAYLOAD];
        let line = pkt(&max).unwrap();
        assert_eq!(&line[..4], b"fff0");
        assert_eq!(line.len(), MAX_PKT_LEN);
        assert_eq!(
            pkt(&[0; MAX_PKT_PAYLOAD + 1]),
            Err(PktLineError::PayloadTooLong(MAX_PKT_PAYLOAD + 1))
        );
    }

    #[test]
    fn parses_lengths() {
        assert_eq!(parse_header(*b"0000"), Ok(Header::Flush));
        assert_eq!(parse_header(*b"0001"), Ok(Header::Delim));
        assert_eq!(parse_header(*b"0002"), Ok(Header::ResponseEnd));
        assert_eq!(parse_header(*b"0003"), Err(PktLineError::ReservedLength));
        assert_eq!(parse_header(*b"0004"), Ok(Header::Data(0)));
        assert_eq!(parse_header(*b"00Ff"), Ok(Header::Data(251)));
        assert_eq!(parse_header(*b"fff0"), Ok(Header::Data(MAX_PKT_PAYLOAD)));
        assert_eq!(parse_header(*b"fff1"), Err(PktLineError::TooLong(65521)));
        assert_eq!(parse_header(*b"ffff"), Err(PktLineError::TooLong(65535)));
        assert_eq!(
            parse_header(*b"00g0"),
            Err(PktLineError::BadLength(*b"00g0"))
        );
        assert_eq!(
            parse_header(*b"PACK"),
            Err(PktLineError::BadLength(*b"PACK"))
        );
    }

    #[test]
    fn decoder_yields_whole_lines_across_any_split() {
        let mut stream = Vec::new();
        write_pkt(&mut stream, b"a\n").unwrap();
        write_flush(&mut stream);
        write_pkt(&mut stream, b"").unwrap();
        write_pkt(&mut stream, b"hello").unwrap();
        write_delim(&mut stream);
        write_pkt(&mut stream, b"world").unwrap();
        stream.extend_from_slice(RESPONSE_END);
        let want = vec!["D:a\n", "F", "D:", "D:hello", "d", "D:world", "E"];
        for split in 0..=stream.len() {
            for split2 in split..=stream.len() {
                let mut dec = PktDecoder::new();
                let mut got = Vec::new();
                for part in chunks(&stream, &[split, split2]) {
                    dec.push(part);
                    while let Some(p) = dec.next_packet().unwrap() {
                        got.push(match p {
                            Packet::Flush => "F".to_string(),
                            Packet::Delim => "d".to_string(),
                            Packet::ResponseEnd => "E".to_string(),
                            Packet::Data(d) => format!("D:{}", String::from_utf8_lossy(d)),
                        });
                    }
                }
                assert_eq!(got, want, "split at {split},{split2}");
                assert_eq!(dec.finish(), Ok(()));
                assert_eq!(dec.buffered(), 0);
            }
        }
    }

    #[test]
    fn decoder_reports_truncation_and_bad_lengths() {
        let mut dec = PktDecoder::new();
        dec.push(b"000");
        assert_eq!(dec.next_packet(), Ok(None));
        assert_eq!(dec.finish(), Err(PktLineError::Truncated { missing: 1 }));
        let mut dec = PktDecoder::new();
        dec.push(b"000ahel");
        assert_eq!(dec.next_packet(), Ok(None));
        assert_eq!(dec.finish(), Err(PktLineError::Truncated { missing: 3 }));
        let mut dec = PktDecoder::new();
        dec.push(b"0006a\n000");
        assert_eq!(dec.finish(), Ok(()), "a whole line is still to be read");
        assert_eq!(dec.next_packet(), Ok(Some(Packet::Data(b"a\n"))));
        assert_eq!(dec.finish(), Err(PktLineError::Truncated { missing: 1 }));
        let mut dec = PktDecoder::new();
        dec.push(b"zzzz");
        assert_eq!(dec.next_packet(), Err(PktLineError::BadLength(*b"zzzz")));
        // Sticky: the same error again, never a panic.
        assert_eq!(dec.next_packet(), Err(PktLineError::BadLength(*b"zzzz")));
        let mut dec = PktDecoder::new();
        dec.push(b"fff1");
        assert_eq!(dec.next_packet(), Err(PktLineError::TooLong(65521)));
    }

    fn frame_all(stream: &[u8], cuts: &[usize]) -> (Vec<String>, PktFramer) {
        let mut framer = PktFramer::new();
        let mut got = Vec::new();
        let mut line = Vec::new();
        let mut in_line = false;
        for mut part in chunks(stream, cuts) {
            while let Some(piece) = framer.next_piece(&mut part).unwrap() {
                match piece {
                    Piece::Flush => got.push("F".to_string()),
                    Piece::Delim => got.push("d".to_string()),
                    Piece::ResponseEnd => got.push("E".to_string()),
                    Piece::Data { bytes, first, last } => {
                        assert_eq!(first, !in_line);
                        in_line = !last;
                        assert!(!bytes.is_empty() || (first && last));
                        line.extend_from_slice(bytes);
                        if last {
                            got.push(format!("D:{}", String::from_utf8_lossy(&line)));
                            line.clear();
                        }
                    }
                }
            }
            assert!(part.is_empty());
        }
        (got, framer)
    }

    #[test]
    fn framer_splits_without_losing_or_duplicating_bytes() {
        let mut stream = Vec::new();
        write_pkt(&mut stream, b"\x01pack data").unwrap();
        write_pkt(&mut stream, b"").unwrap();
        write_pkt(&mut stream, b"\x02progress").unwrap();
        write_flush(&mut stream);
        let want = vec!["D:\x01pack data", "D:", "D:\x02progress", "F"];
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let (got, framer) = frame_all(&stream, &[a, b]);
                assert_eq!(got, want, "cuts {a},{b}");
                assert!(framer.at_boundary());
                assert_eq!(framer.finish(), Ok(()));
            }
        }
        // Byte by byte.
        let cuts: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(frame_all(&stream, &cuts).0, want);
    }

    #[test]
    fn framer_pieces_borrow_from_the_chunk() {
        let mut stream = Vec::new();
        write_pkt(&mut stream, b"0123456789").unwrap();
        let mut framer = PktFramer::new();
        let mut input: &[u8] = &stream;
        let Some(Piece::Data { bytes, first, last }) = framer.next_piece(&mut input).unwrap()
        else {
            panic!("expected data");
        };
        assert!(first && last);
        assert_eq!(bytes.as_ptr(), stream[4..].as_ptr());
    }

    #[test]
    fn framer_truncation_and_errors() {
        let mut framer = PktFramer::new();
        let mut input: &[u8] = b"000ahe";
        assert!(matches!(
            framer.next_piece(&mut input),
            Ok(Some(Piece::Data {
                bytes: b"he",
                first: true,
                last: false
            }))
        ));
        assert!(!framer.at_boundary());
        assert_eq!(framer.finish(), Err(PktLineError::Truncated { missing: 4 }));
        let mut framer = PktFramer::new();
        let mut input: &[u8] = b"00";
        assert_eq!(framer.next_piece(&mut input), Ok(None));
        assert_eq!(framer.finish(), Err(PktLineError::Truncated { missing: 2 }));
        let mut framer = PktFramer::new();
        let mut input: &[u8] = b"0003rest";
        assert_eq!(
            framer.next_piece(&mut input),
            Err(PktLineError::ReservedLength)
        );
        let mut more: &[u8] = b"0000";
        assert_eq!(
            framer.next_piece(&mut more),
            Err(PktLineError::ReservedLength)
        );
        assert_eq!(framer.finish(), Err(PktLineError::ReservedLength));
    }
}
