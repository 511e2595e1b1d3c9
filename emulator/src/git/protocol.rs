//! The little of git's wire format the emulator reads or writes itself: pkt-lines (four hex
//! digits of length including themselves, `0000` the flush packet), the capabilities of an
//! upload-pack request's first `want` line, and gzip request bodies.

use std::io::Read;

/// The flush packet.
pub const FLUSH: &[u8] = b"0000";

/// One pkt-line carrying `data`.
pub fn pkt_line(data: &str) -> Vec<u8> {
    format!("{:04x}{data}", data.len() + 4).into_bytes()
}

/// The payloads of the pkt-lines at the start of `body`, up to the first flush (or the end,
/// or the first malformed length).
fn pkt_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let len = std::str::from_utf8(rest.get(..4)?)
            .ok()
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())?;
        if len < 4 || len > rest.len() {
            return None;
        }
        let payload = &rest[4..len];
        rest = &rest[len..];
        Some(payload)
    })
}

/// The capabilities of the first `want <oid> <capabilities…>` line of an upload-pack request
/// (protocol v0/v1), or `None` when it does not start with one.
pub fn first_want_capabilities(body: &[u8]) -> Option<Vec<String>> {
    let line = pkt_lines(body).next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\n');
    let mut words = line.split(' ');
    (words.next()? == "want").then_some(())?;
    words.next()?;
    Some(
        words
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Decompresses a gzip body (what git sends for large requests).
pub fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkt_lines_frame_and_parse() {
        assert_eq!(
            pkt_line("# service=git-upload-pack\n"),
            b"001e# service=git-upload-pack\n"
        );
        let oid = "a".repeat(40);
        let mut body = pkt_line(&format!(
            "want {oid} multi_ack_detailed side-band-64k ofs-delta\n"
        ));
        body.extend(pkt_line(&format!("want {}\n", "b".repeat(40))));
        body.extend_from_slice(FLUSH);
        body.extend(pkt_line("done\n"));
        assert_eq!(
            first_want_capabilities(&body).unwrap(),
            ["multi_ack_detailed", "side-band-64k", "ofs-delta"]
        );
        let bare = pkt_line(&format!("want {oid}\n"));
        assert_eq!(first_want_capabilities(&bare), Some(vec![]));
        assert_eq!(first_want_capabilities(b"0000"), None);
        assert_eq!(first_want_capabilities(b"zzzz"), None);
        assert_eq!(first_want_capabilities(&pkt_line("have x\n")), None);
    }

    #[test]
    fn gzip_bodies_decompress() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"0032want x\n").unwrap();
        let compressed = encoder.finish().unwrap();
        assert_eq!(gunzip(&compressed).unwrap(), b"0032want x\n");
        assert!(gunzip(b"not gzip").is_err());
    }
}
