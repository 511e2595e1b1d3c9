//! What a git server sends a backup: pkt-line streams, the ref advertisement, the upload-pack
//! answer and the pack in it; and the bundles the gateway stores and reads back.
//!
//! Bodies arrive in chunks of any size, so every streaming parser here is run on the same bytes
//! in two chunkings (all at once, and cut where the input says) and must reach the same verdict.

use super::{tamper_bytes, Input};
use crate::backup::bundle::{self, BundleError};
use crate::backup::oid::Oid;
use crate::backup::pack::{PackError, PackSummary, PackVerifier};
use crate::backup::pktline::{
    write_delim, write_flush, write_pkt, Packet, Piece, PktDecoder, PktFramer, PktLineError,
    MAX_PKT_PAYLOAD,
};
use crate::backup::refs::{self, check_ref_name, Capabilities, SERVICE_LINE};
use crate::backup::request::{self, RequestError};
use crate::backup::response::{ResponseError, ResponseParser};
use miniz_oxide::deflate::compress_to_vec_zlib;
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};

/// A pkt-line or marker, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Flush,
    Delim,
    ResponseEnd,
    Data(Vec<u8>),
}

/// Everything a [`PktDecoder`] yields from `chunks` pushed one by one (read after each), then
/// the first error or what `finish` says.
fn decode_buffered(chunks: &[&[u8]]) -> (Vec<Owned>, Result<(), PktLineError>) {
    let mut decoder = PktDecoder::new();
    let mut packets = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.next_packet() {
                Ok(None) => break,
                Ok(Some(p)) => packets.push(match p {
                    Packet::Flush => Owned::Flush,
                    Packet::Delim => Owned::Delim,
                    Packet::ResponseEnd => Owned::ResponseEnd,
                    Packet::Data(d) => Owned::Data(d.to_vec()),
                }),
                Err(e) => return (packets, Err(e)),
            }
        }
    }
    (packets, decoder.finish())
}

/// The same with a [`PktFramer`], its pieces put back together.
fn decode_framed(chunks: &[&[u8]]) -> (Vec<Owned>, Result<(), PktLineError>) {
    let mut framer = PktFramer::new();
    let mut packets = Vec::new();
    let mut line: Option<Vec<u8>> = None;
    for chunk in chunks {
        let mut rest: &[u8] = chunk;
        loop {
            match framer.next_piece(&mut rest) {
                Ok(None) => break,
                Ok(Some(Piece::Data { bytes, first, last })) => {
                    assert_eq!(first, line.is_none(), "a piece out of place");
                    let buf = line.get_or_insert_with(Vec::new);
                    buf.extend_from_slice(bytes);
                    if last {
                        packets.push(Owned::Data(line.take().unwrap_or_default()));
                    } else {
                        assert!(!bytes.is_empty(), "an empty piece inside a pkt-line");
                    }
                }
                Ok(Some(Piece::Flush)) => packets.push(Owned::Flush),
                Ok(Some(Piece::Delim)) => packets.push(Owned::Delim),
                Ok(Some(Piece::ResponseEnd)) => packets.push(Owned::ResponseEnd),
                Err(e) => return (packets, Err(e)),
            }
        }
    }
    assert_eq!(framer.at_boundary(), framer.finish().is_ok());
    (packets, framer.finish())
}

/// The buffered decoder and the zero-copy framer on any stream, in any chunking; the encoder on
/// any sequence of lines and markers, payloads up to and past the longest a pkt-line holds.
///
/// - Both decoders read the same pkt-lines and stop at the same error.
/// - What [`write_pkt`] / [`write_flush`] / [`write_delim`] write decodes to what was written,
///   in any chunking; a payload too long is refused and nothing is written.
/// - That stream cut anywhere is still read the same by both, and is `Truncated` unless the cut
///   falls between two pkt-lines.
pub fn pkt_line(data: &[u8]) {
    let mut input = Input::new(data);
    if input.bool() {
        let plan = input.bytes(64);
        let stream = input.rest();
        let chunks = Input::new(plan).chunks(stream);
        assert_eq!(decode_buffered(&chunks), decode_framed(&chunks));
        return;
    }
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    let mut boundaries = vec![0];
    for _ in 0..input.below(8) {
        match input.byte() % 6 {
            0 => {
                write_flush(&mut stream);
                expected.push(Owned::Flush);
            }
            1 => {
                write_delim(&mut stream);
                expected.push(Owned::Delim);
            }
            _ => {
                let len = if input.one_in(8) {
                    MAX_PKT_PAYLOAD - 2 + input.below(5)
                } else {
                    input.below(200)
                };
                let payload = input.fill(len);
                let before = stream.len();
                match write_pkt(&mut stream, &payload) {
                    Ok(()) => expected.push(Owned::Data(payload)),
                    Err(PktLineError::PayloadTooLong(n)) => {
                        assert!(n > MAX_PKT_PAYLOAD && stream.len() == before);
                        continue;
                    }
                    Err(e) => panic!("write_pkt: {e}"),
                }
            }
        }
        boundaries.push(stream.len());
    }
    let chunks = input.chunks(&stream);
    assert_eq!(decode_buffered(&chunks), (expected.clone(), Ok(())));
    assert_eq!(decode_framed(&chunks), (expected, Ok(())));
    let cut = input.below(stream.len() + 1);
    let chunks = input.chunks(&stream[..cut]);
    let (packets, end) = decode_buffered(&chunks);
    assert_eq!((packets, end.clone()), decode_framed(&chunks));
    match end {
        Ok(()) => assert!(boundaries.contains(&cut)),
        Err(e) => assert!(matches!(e, PktLineError::Truncated { .. }), "{e}"),
    }
}

/// Ref names: ones a backup keeps, ones it does not, ones git refuses.
const REF_NAMES: &[&str] = &[
    "HEAD",
    "refs/heads/main",
    "refs/heads/feature/x",
    "refs/tags/v1",
    "refs/tags/v1^{}",
    "refs/pull/12/head",
    "refs/pull/12/merge",
    "refs/merge-requests/3/head",
    "refs/notes/commits",
    "refs/heads/a..b",
    "refs/heads/x.lock",
    "refs/heads/",
    "refs/heads/@{1}",
    "refs/heads/sp ace",
    "refs//heads",
];

const CAPABILITIES: &[&str] = &[
    "multi_ack_detailed side-band-64k ofs-delta no-progress symref=HEAD:refs/heads/main agent=git/2.47",
    "multi_ack side-band thin-pack include-tag object-format=sha1",
    "symref=HEAD:refs/heads/a..b symref=HEAD:refs/heads/dev agent",
    "object-format=sha256",
    "",
];

fn oid(input: &mut Input<'_>) -> Oid {
    Oid::from_bytes(input.array())
}

/// [`refs::parse_advertisement`] on any body, and on advertisements built from the input (refs,
/// peeled tags, capabilities, `version 1`, an empty repository), then perhaps damaged; for what
/// parses, [`refs::select_refs`] and [`request::build_request`].
///
/// - An advertisement built well parses to exactly its refs, peeled refs and capabilities.
/// - What parses has only valid ref names and non-zero oids; `HEAD`'s symref is a valid name.
/// - A backup selects only refs it keeps; the request asks for each wanted tip once, none it
///   has, and only capabilities the server advertised.
pub fn ref_advertisement(data: &[u8]) {
    let mut input = Input::new(data);
    // The refs, peeled refs and capabilities an advertisement built well holds.
    type Holds = (BTreeMap<String, Oid>, BTreeMap<String, Oid>, Capabilities);
    let mut expected: Option<Holds> = None;
    let body = if input.one_in(4) {
        input.rest().to_vec()
    } else {
        let mut body = Vec::new();
        let service = if input.one_in(16) {
            input.text(30)
        } else {
            format!("{SERVICE_LINE}\n")
        };
        let mut well_formed = service == format!("{SERVICE_LINE}\n");
        let _ = write_pkt(&mut body, service.as_bytes());
        write_flush(&mut body);
        if input.bool() {
            let _ = write_pkt(&mut body, b"version 1\n");
        }
        let caps = if input.one_in(4) {
            well_formed = false;
            input.text(100)
        } else {
            input.pick(CAPABILITIES).to_string()
        };
        well_formed &= !caps.contains("sha256");
        let (mut refs, mut peeled) = (BTreeMap::new(), BTreeMap::new());
        let n = input.below(6);
        if n == 0 {
            let line = format!("{} capabilities^{{}}\0{caps}\n", Oid::ZERO);
            let _ = write_pkt(&mut body, line.as_bytes());
        }
        for i in 0..n {
            let name = if input.one_in(8) {
                input.text(20)
            } else {
                input.pick(REF_NAMES).to_string()
            };
            let oid = oid(&mut input);
            let (base, map) = match name.strip_suffix("^{}") {
                Some(base) => (base, &mut peeled),
                None => (name.as_str(), &mut refs),
            };
            well_formed &= check_ref_name(base) && !oid.is_zero();
            well_formed &= map.insert(base.to_string(), oid).is_none();
            let line = if i == 0 {
                format!("{oid} {name}\0{caps}\n")
            } else {
                format!("{oid} {name}\n")
            };
            let _ = write_pkt(&mut body, line.as_bytes());
        }
        write_flush(&mut body);
        if input.one_in(4) {
            let damaged = tamper_bytes(&mut input, &body);
            well_formed &= damaged == body;
            body = damaged;
        }
        if well_formed {
            expected = Some((refs, peeled, Capabilities::parse(&caps)));
        }
        body
    };
    let parsed = refs::parse_advertisement(&body);
    if let Some((refs, peeled, capabilities)) = expected {
        let adv = parsed.clone().expect("a well-formed advertisement parses");
        assert_eq!(
            (adv.refs, adv.peeled, adv.capabilities),
            (refs, peeled, capabilities)
        );
    }
    let Ok(adv) = parsed else {
        return;
    };
    for (name, oid) in adv.refs.iter().chain(&adv.peeled) {
        assert!(check_ref_name(name) && !oid.is_zero(), "{name:?}");
    }
    if let Some(head) = &adv.head_symref {
        assert!(check_ref_name(head));
    }
    let selected = refs::select_refs(&adv);
    assert!(selected
        .iter()
        .all(|(name, oid)| refs::is_backed_up(name) && adv.refs.get(name) == Some(oid)));
    let wants: Vec<Oid> = selected.values().copied().collect();
    let haves: Vec<Oid> = (0..input.below(3)).map(|_| oid(&mut input)).collect();
    let asked = request::build_request(&wants, &haves, &adv.capabilities);
    let fetch: BTreeSet<Oid> = wants
        .iter()
        .filter(|w| !w.is_zero() && !haves.contains(w))
        .copied()
        .collect();
    match asked {
        Err(RequestError::NothingToFetch) => assert!(fetch.is_empty()),
        Ok(req) => {
            assert_eq!(req.wants.iter().copied().collect::<BTreeSet<_>>(), fetch);
            assert_eq!(req.wants.len(), fetch.len());
            for cap in &req.capabilities {
                let name = cap.split_once('=').map_or(cap.as_str(), |(n, _)| n);
                assert!(adv.capabilities.has(name), "asked for {cap} unadvertised");
            }
            assert!(!req.capabilities.iter().any(|c| c == "thin-pack"));
            let (_, end) = decode_buffered(&[&req.body]);
            assert_eq!(end, Ok(()));
        }
    }
}

/// An upload-pack answer built from the input: ACK / NAK negotiation, then side-band packets
/// (pack data, progress, perhaps a fatal message) and the closing flush, or a raw pack. The
/// pack bytes it carries, or `None` when it should fail.
fn build_response(input: &mut Input<'_>, side_band: bool) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut body = Vec::new();
    let mut ok = true;
    for _ in 0..input.below(3) {
        let status = input.pick(&["common", "ready", "continue"]);
        let line = format!("ACK {} {status}\n", oid(input));
        let _ = write_pkt(&mut body, line.as_bytes());
    }
    let end = match input.byte() % 8 {
        0 => format!("ACK {}\n", oid(input)),
        1 => {
            ok = false;
            input
                .pick(&["ERR no such repository\n", "NACK\n", "ACK 12\n"])
                .to_string()
        }
        _ => "NAK\n".to_string(),
    };
    let _ = write_pkt(&mut body, end.as_bytes());
    let mut pack = Vec::new();
    if side_band {
        for _ in 0..input.below(6) {
            let channel = match input.byte() % 16 {
                0 => {
                    ok = false;
                    input.pick(&[3, 0, 4, 255])
                }
                1..=4 => 2,
                _ => 1,
            };
            let len = if input.one_in(16) {
                MAX_PKT_PAYLOAD - 1
            } else {
                input.below(300)
            };
            let data = input.fill(len);
            let mut payload = vec![channel];
            payload.extend_from_slice(&data);
            let _ = write_pkt(&mut body, &payload);
            if channel == 1 {
                pack.extend_from_slice(&data);
            }
        }
        write_flush(&mut body);
    } else {
        let len = input.below(3000);
        pack = input.fill(len);
        body.extend_from_slice(&pack);
    }
    if input.one_in(4) {
        let damaged = tamper_bytes(input, &body);
        ok &= damaged == body;
        body = damaged;
    }
    (body, ok.then_some(pack))
}

/// The pack bytes a [`ResponseParser`] passes on from `chunks`, or its error.
fn respond(side_band: bool, chunks: &[&[u8]]) -> Result<Vec<u8>, ResponseError> {
    let mut parser = ResponseParser::new(side_band);
    let mut pack = Vec::new();
    for chunk in chunks {
        for piece in parser.push(chunk)? {
            pack.extend_from_slice(piece);
        }
    }
    parser.finish()?;
    Ok(pack)
}

/// [`ResponseParser`] on any body, and on answers built from the input then perhaps damaged,
/// with and without side-band.
///
/// - The verdict and the pack bytes passed on do not depend on how the body is chunked.
/// - A well-formed answer passes on exactly its pack bytes (channel 1 only).
pub fn upload_pack_response(data: &[u8]) {
    let mut input = Input::new(data);
    let side_band = input.bool();
    let (body, expected) = if input.one_in(4) {
        let plan = input.bytes(64);
        let body = input.rest().to_vec();
        input = Input::new(plan);
        (body, None)
    } else {
        build_response(&mut input, side_band)
    };
    let whole = respond(side_band, &[&body]);
    let chunked = respond(side_band, &input.chunks(&body));
    assert_eq!(whole, chunked);
    if let Some(pack) = expected {
        assert_eq!(whole, Ok(pack));
    }
}

/// Git's OFS_DELTA distance encoding.
fn ofs_varint(mut ofs: u64) -> Vec<u8> {
    let mut out = vec![(ofs & 0x7f) as u8];
    ofs >>= 7;
    while ofs > 0 {
        ofs -= 1;
        out.push(0x80 | (ofs & 0x7f) as u8);
        ofs >>= 7;
    }
    out.reverse();
    out
}

/// A pack built from the input: version, objects of every type with contents of any size
/// (deflated at any level), OFS_DELTA distances and REF_DELTA bases, the count and the
/// SHA-1 trailer; sometimes a wrong size or count. The pack and how many objects it holds
/// when it is valid.
fn build_pack(input: &mut Input<'_>) -> (Vec<u8>, Option<u32>) {
    let mut pack = b"PACK".to_vec();
    pack.extend_from_slice(&input.pick(&[2u32, 3]).to_be_bytes());
    let n = input.below(6) as u32;
    let mut valid = true;
    let declared = if input.one_in(8) {
        let declared = input.u32() % 8;
        valid &= declared == n;
        declared
    } else {
        n
    };
    pack.extend_from_slice(&declared.to_be_bytes());
    for _ in 0..n {
        let start = pack.len() as u64;
        let mut kind = input.pick(&[1u8, 2, 3, 4, 6, 7]);
        if kind == 6 && start == 12 {
            kind = 7;
        }
        let len = if input.one_in(16) {
            input.below(100_000)
        } else {
            input.below(300)
        };
        let content = input.fill(len);
        let mut size = if input.one_in(16) {
            let announced = input.u64();
            valid &= announced == len as u64;
            announced
        } else {
            len as u64
        };
        let mut b = (kind << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            pack.push(b | 0x80);
            b = (size & 0x7f) as u8;
            size >>= 7;
        }
        pack.push(b);
        match kind {
            6 => {
                let distance = 1 + input.below((start - 12) as usize) as u64;
                pack.extend_from_slice(&ofs_varint(distance));
            }
            7 => pack.extend_from_slice(&input.array::<20>()),
            _ => {}
        }
        let level = input.below(11) as u8;
        pack.extend_from_slice(&compress_to_vec_zlib(&content, level));
    }
    let sha = Sha1::digest(&pack);
    pack.extend_from_slice(&sha);
    (pack, valid.then_some(n))
}

fn verify_pack(chunks: &[&[u8]]) -> Result<PackSummary, PackError> {
    let mut verifier = PackVerifier::new();
    for chunk in chunks {
        verifier.push(chunk)?;
    }
    verifier.finish()
}

/// [`PackVerifier`] on any bytes, and on packs built from the input then perhaps damaged.
///
/// - The verdict does not depend on how the pack is chunked.
/// - A pack built well verifies: its version, object count, length and trailer.
/// - Any damage (one bit flipped, a byte removed or added, cut short or extended), a wrong
///   object size or a wrong count never verifies.
pub fn pack(data: &[u8]) {
    let mut input = Input::new(data);
    if input.one_in(4) {
        let plan = input.bytes(64);
        let bytes = input.rest();
        let chunked = verify_pack(&Input::new(plan).chunks(bytes));
        assert_eq!(verify_pack(&[bytes]), chunked);
        return;
    }
    let (built, objects) = build_pack(&mut input);
    let damaged = input.one_in(2);
    let pack = if damaged {
        tamper_bytes(&mut input, &built)
    } else {
        built.clone()
    };
    let whole = verify_pack(&[&pack]);
    assert_eq!(whole, verify_pack(&input.chunks(&pack)));
    match (objects, pack == built) {
        (Some(objects), true) => {
            let summary = whole.expect("a pack built well verifies");
            assert_eq!(summary.objects, objects);
            assert_eq!(summary.bytes, pack.len() as u64);
            assert_eq!(summary.version, u32::from(pack[7]));
            assert_eq!(summary.sha1.as_bytes()[..], pack[pack.len() - 20..]);
        }
        _ => assert!(whole.is_err(), "a damaged or miscounted pack verified"),
    }
}

/// [`bundle::parse_header`] on any bytes, and on headers [`bundle::header`] wrote (then perhaps
/// damaged) with a pack after them.
///
/// - What parses has at least one ref, valid and distinct names, and the pack starts after the
///   header's empty line; written again, it reads back the same.
/// - A header written from refs and prerequisites reads back as exactly those, `HEAD` first,
///   prerequisites once each, the pack right after it.
pub fn bundle(data: &[u8]) {
    let mut input = Input::new(data);
    let bytes = if input.one_in(4) {
        input.rest().to_vec()
    } else {
        let refs: BTreeMap<String, Oid> = (0..input.below(5))
            .map(|_| {
                let name = if input.one_in(8) {
                    input.text(20)
                } else {
                    input.pick(REF_NAMES).to_string()
                };
                (name, oid(&mut input))
            })
            .collect();
        let prerequisites: Vec<Oid> = (0..input.below(4)).map(|_| oid(&mut input)).collect();
        let header = match bundle::header(&refs, &prerequisites) {
            Ok(header) => header,
            Err(e) => {
                assert!(
                    refs.is_empty() && e == BundleError::NoRefs
                        || refs.keys().any(|n| !check_ref_name(n))
                );
                return;
            }
        };
        let pack_len = input.below(100);
        let mut bytes = header.clone();
        bytes.extend(input.fill(pack_len));
        let parsed = bundle::parse_header(&bytes).expect("a header we wrote parses");
        assert_eq!(parsed.pack_offset, header.len());
        assert_eq!(parsed.refs_map(), refs);
        if refs.contains_key("HEAD") {
            assert_eq!(parsed.refs[0].0, "HEAD");
        }
        let mut once = BTreeSet::new();
        let distinct: Vec<Oid> = prerequisites
            .into_iter()
            .filter(|p| once.insert(*p))
            .collect();
        let read: Vec<Oid> = parsed.prerequisites.iter().map(|(p, _)| *p).collect();
        assert_eq!(read, distinct);
        tamper_bytes(&mut input, &bytes)
    };
    let Ok(parsed) = bundle::parse_header(&bytes) else {
        return;
    };
    assert!(!parsed.refs.is_empty());
    assert!(parsed.pack_offset <= bytes.len() && bytes[parsed.pack_offset - 1] == b'\n');
    let names: BTreeSet<&String> = parsed.refs.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), parsed.refs.len());
    assert!(names.iter().all(|n| check_ref_name(n)));
    let prerequisites: Vec<Oid> = parsed.prerequisites.iter().map(|(p, _)| *p).collect();
    let again = bundle::header(&parsed.refs_map(), &prerequisites).expect("refs that parsed");
    let reread = bundle::parse_header(&again).expect("a header we wrote parses");
    assert_eq!(reread.refs_map(), parsed.refs_map());
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bytes, config};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config(1000))]

        #[test]
        fn pkt_line(data in bytes(1500)) {
            super::pkt_line(&data);
        }

        #[test]
        fn ref_advertisement(data in bytes(1000)) {
            super::ref_advertisement(&data);
        }

        #[test]
        fn upload_pack_response(data in bytes(1500)) {
            super::upload_pack_response(&data);
        }

        #[test]
        fn pack(data in bytes(1500)) {
            super::pack(&data);
        }

        #[test]
        fn bundle(data in bytes(1000)) {
            super::bundle(&data);
        }
    }
}
