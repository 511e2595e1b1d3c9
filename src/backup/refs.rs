//! The smart-HTTP ref advertisement (`GET {url}/info/refs?service=git-upload-pack`, protocol
//! v0/v1) and the choice of which advertised refs a backup keeps.
//!
//! The answer body is a pkt-line stream (gitprotocol-http(5), gitprotocol-pack(5)):
//!
//! ```text
//! # service=git-upload-pack\n          one pkt-line
//! 0000                                 flush
//! [version 1\n]                        only when protocol v1 was asked for
//! <oid> HEAD\0<capabilities>\n         the first ref carries the capabilities
//! <oid> refs/heads/main\n
//! <oid> refs/tags/v1\n                 an annotated tag: the tag object…
//! <oid> refs/tags/v1^{}\n              …and, peeled, the commit it points at
//! 0000                                 flush
//! ```
//!
//! An empty repository advertises only `0000000000000000000000000000000000000000
//! capabilities^{}\0<capabilities>`. A server error is an `ERR <message>` pkt-line.
//!
//! [`parse_advertisement`] checks every oid (40 hex digits, not all zero) and every ref name
//! (the essentials of `git check-ref-format`, see [`check_ref_name`]) and refuses what it cannot
//! back up faithfully: protocol v2 answers, SHA-256 repositories, shallow repositories.
//! [`select_refs`] keeps what a restore needs: `HEAD`, branches, tags (the tag objects, not
//! the peeled commits), GitHub pull request heads (`refs/pull/<n>/head`) and GitLab merge request
//! heads (`refs/merge-requests/<n>/head`); everything else (`refs/pull/<n>/merge`,
//! `refs/keep-around/*`, `refs/notes/*`, …) is left out.

use super::oid::Oid;
use super::pktline::{Packet, PktDecoder, PktLineError};
use std::collections::BTreeMap;
use std::fmt;

/// The service line that opens every smart-HTTP advertisement for fetching.
pub const SERVICE_LINE: &str = "# service=git-upload-pack";

/// A server's capability list (`multi_ack side-band-64k symref=HEAD:refs/heads/main …`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    list: Vec<String>,
}

impl Capabilities {
    /// Parses the space-separated list that follows the first ref's NUL.
    pub fn parse(list: &str) -> Capabilities {
        Capabilities {
            list: list
                .split(' ')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn new<I, S>(caps: I) -> Capabilities
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Capabilities {
            list: caps.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `name` is advertised, alone or as `name=value`.
    pub fn has(&self, name: &str) -> bool {
        self.list.iter().any(|c| cap_name(c) == name)
    }

    /// The value of the first `name=value`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
    }

    /// Every value of `name=value` (`symref` may repeat).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.list
            .iter()
            .filter_map(move |c| c.strip_prefix(name)?.strip_prefix('='))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(String::as_str)
    }

    /// The same list without `name` (e.g. to fetch without side-band).
    pub fn without(&self, name: &str) -> Capabilities {
        Capabilities {
            list: self
                .list
                .iter()
                .filter(|c| cap_name(c) != name)
                .cloned()
                .collect(),
        }
    }
}

fn cap_name(cap: &str) -> &str {
    cap.split_once('=').map_or(cap, |(name, _)| name)
}

/// What a server advertised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// Every advertised ref, name → oid, `HEAD` included when the server has one.
    pub refs: BTreeMap<String, Oid>,
    /// The peeled `<name>^{}` entries, keyed by `<name>` (annotated tags → their target).
    pub peeled: BTreeMap<String, Oid>,
    pub capabilities: Capabilities,
    /// `refs/heads/x` when the server advertises `symref=HEAD:refs/heads/x`.
    pub head_symref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefsError {
    Pkt(PktLineError),
    /// The body does not open with `# service=git-upload-pack` and a flush: not a smart-HTTP
    /// upload-pack answer (a login page, a dumb server, another service).
    NotSmartHttp,
    /// The server answered `ERR <message>`.
    Server(String),
    /// A protocol this client does not speak (protocol v2's `version 2`).
    UnsupportedProtocol(String),
    /// A repository that is not SHA-1 (`object-format=sha256`).
    UnsupportedObjectFormat(String),
    /// The server's repository is shallow: a backup of it would be incomplete.
    ShallowRepository,
    /// A ref line that is not `<oid> <name>` (1-based ref line number).
    MalformedLine(usize),
    /// An oid that is not 40 hex digits, or is all zeros, on this ref line.
    BadOid(usize),
    /// A ref name that `git check-ref-format` would refuse (shown escaped).
    BadRefName(String),
    /// The same ref advertised twice.
    DuplicateRef(String),
    /// The body ended before the flush that closes the ref list.
    MissingFlush,
    /// Bytes after the flush that closes the ref list.
    TrailingData,
}

impl fmt::Display for RefsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefsError::Pkt(e) => write!(f, "ref advertisement: {e}"),
            RefsError::NotSmartHttp => f.write_str(
                "not a smart-HTTP git-upload-pack ref advertisement (no `# service=git-upload-pack` line)",
            ),
            RefsError::Server(m) => write!(f, "the git server refused: {m}"),
            RefsError::UnsupportedProtocol(v) => write!(f, "unsupported git protocol: {v}"),
            RefsError::UnsupportedObjectFormat(v) => {
                write!(f, "unsupported repository object format: {v}")
            }
            RefsError::ShallowRepository => {
                f.write_str("the server's repository is shallow; a backup of it would be incomplete")
            }
            RefsError::MalformedLine(n) => write!(f, "ref line {n} is not `<oid> <name>`"),
            RefsError::BadOid(n) => write!(f, "ref line {n} has an invalid object id"),
            RefsError::BadRefName(n) => write!(f, "invalid ref name {n}"),
            RefsError::DuplicateRef(n) => write!(f, "ref {n} advertised twice"),
            RefsError::MissingFlush => f.write_str("ref advertisement ended before its final flush"),
            RefsError::TrailingData => f.write_str("data after the end of the ref advertisement"),
        }
    }
}

impl std::error::Error for RefsError {}

impl From<PktLineError> for RefsError {
    fn from(e: PktLineError) -> RefsError {
        RefsError::Pkt(e)
    }
}

/// Text from the server made safe to log and show: lossy UTF-8, control characters escaped,
/// at most 200 characters.
pub(crate) fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim_end_matches(['\n', '\r']);
    let mut out = String::new();
    for (i, c) in trimmed.chars().enumerate() {
        if i == 200 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The essentials of `git check-ref-format` (with `--allow-onelevel`, for `HEAD`):
/// non-empty; no ASCII control character, space, `~ ^ : ? * [ \`; no `..` or `@{`; not `@`;
/// no component empty, starting with `.` or ending with `.lock`; not ending with `/` or `.`.
pub fn check_ref_name(name: &str) -> bool {
    if name.is_empty() || name == "@" || name.ends_with('.') {
        return false;
    }
    if name.contains("..") || name.contains("@{") {
        return false;
    }
    if name
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b" ~^:?*[\\".contains(&b))
    {
        return false;
    }
    name.split('/')
        .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

fn bad_name(name: &[u8]) -> RefsError {
    RefsError::BadRefName(format!("{:?}", sanitize(name)))
}

/// Parses a whole advertisement body.
pub fn parse_advertisement(body: &[u8]) -> Result<Advertisement, RefsError> {
    let mut dec = PktDecoder::new();
    dec.push(body);
    match dec.next_packet()? {
        Some(Packet::Data(line)) if strip_lf(line) == SERVICE_LINE.as_bytes() => {}
        Some(Packet::Data(line)) if line.starts_with(b"ERR ") => {
            return Err(RefsError::Server(sanitize(
                line.get(4..).unwrap_or_default(),
            )));
        }
        _ => return Err(RefsError::NotSmartHttp),
    }
    if dec.next_packet()? != Some(Packet::Flush) {
        return Err(RefsError::NotSmartHttp);
    }
    let mut adv = Advertisement::default();
    let mut line_no = 0usize;
    loop {
        let line = match dec.next_packet()? {
            None => {
                dec.finish()?;
                return Err(RefsError::MissingFlush);
            }
            Some(Packet::Flush) => break,
            Some(Packet::Delim) | Some(Packet::ResponseEnd) => {
                return Err(RefsError::MalformedLine(line_no + 1))
            }
            Some(Packet::Data(line)) => strip_lf(line),
        };
        if let Some(msg) = line.strip_prefix(b"ERR ") {
            return Err(RefsError::Server(sanitize(msg)));
        }
        if line_no == 0 && (line == b"version 1" || line == b"version 2") {
            if line == b"version 2" {
                return Err(RefsError::UnsupportedProtocol("version 2".into()));
            }
            continue;
        }
        line_no += 1;
        if line.starts_with(b"shallow ") {
            return Err(RefsError::ShallowRepository);
        }
        let (ref_part, caps) = match line.iter().position(|&b| b == 0) {
            Some(nul) => {
                let (r, c) = line.split_at(nul);
                (r, Some(c.get(1..).unwrap_or_default()))
            }
            None => (line, None),
        };
        if let Some(caps) = caps {
            if line_no != 1 {
                return Err(RefsError::MalformedLine(line_no));
            }
            let caps = std::str::from_utf8(caps).map_err(|_| RefsError::MalformedLine(line_no))?;
            adv.capabilities = Capabilities::parse(caps);
        }
        let (oid_hex, name) = match (ref_part.get(..40), ref_part.get(40), ref_part.get(41..)) {
            (Some(o), Some(b' '), Some(n)) if !n.is_empty() => (o, n),
            _ => return Err(RefsError::MalformedLine(line_no)),
        };
        let oid = Oid::from_hex_bytes(oid_hex).ok_or(RefsError::BadOid(line_no))?;
        if line_no == 1 && name == b"capabilities^{}" {
            if !oid.is_zero() || caps.is_none() {
                return Err(RefsError::MalformedLine(line_no));
            }
            continue;
        }
        if oid.is_zero() {
            return Err(RefsError::BadOid(line_no));
        }
        let name_str = std::str::from_utf8(name).map_err(|_| bad_name(name))?;
        let (base, peeled) = match name_str.strip_suffix("^{}") {
            Some(base) => (base, true),
            None => (name_str, false),
        };
        if !check_ref_name(base) {
            return Err(bad_name(name));
        }
        let map = if peeled {
            &mut adv.peeled
        } else {
            &mut adv.refs
        };
        if map.insert(base.to_string(), oid).is_some() {
            return Err(RefsError::DuplicateRef(format!("{:?}", name_str)));
        }
    }
    if dec.buffered() > 0 {
        return Err(RefsError::TrailingData);
    }
    if let Some(format) = adv.capabilities.value("object-format") {
        if format != "sha1" {
            return Err(RefsError::UnsupportedObjectFormat(sanitize(
                format.as_bytes(),
            )));
        }
    }
    adv.head_symref = adv
        .capabilities
        .values("symref")
        .filter_map(|v| v.strip_prefix("HEAD:"))
        .find(|target| check_ref_name(target))
        .map(str::to_string);
    Ok(adv)
}

fn strip_lf(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// Whether a ref is part of a backup: `HEAD`, `refs/heads/*`, `refs/tags/*`,
/// `refs/pull/<n>/head`, `refs/merge-requests/<n>/head`.
pub fn is_backed_up(name: &str) -> bool {
    if name == "HEAD" {
        return true;
    }
    let numbered_head = |rest: &str| {
        rest.strip_suffix("/head")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(rest) = name
        .strip_prefix("refs/heads/")
        .or_else(|| name.strip_prefix("refs/tags/"))
    {
        return !rest.is_empty();
    }
    if let Some(rest) = name.strip_prefix("refs/pull/") {
        return numbered_head(rest);
    }
    if let Some(rest) = name.strip_prefix("refs/merge-requests/") {
        return numbered_head(rest);
    }
    false
}

/// The refs a backup keeps (see [`is_backed_up`]), name → oid. Tags map to what the ref points
/// at (the tag object for an annotated tag), never to the peeled commit.
pub fn select_refs(adv: &Advertisement) -> BTreeMap<String, Oid> {
    adv.refs
        .iter()
        .filter(|(name, _)| is_backed_up(name))
        .map(|(name, oid)| (name.clone(), *oid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::pktline::{write_flush, write_pkt};

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";

    fn body(lines: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        write_pkt(&mut out, b"# service=git-upload-pack\n").unwrap();
        write_flush(&mut out);
        for l in lines {
            write_pkt(&mut out, l).unwrap();
        }
        write_flush(&mut out);
        out
    }

    fn oid(hex: &str) -> Oid {
        Oid::from_hex(hex).unwrap()
    }

    #[test]
    fn parses_refs_peeled_tags_capabilities_and_head_symref() {
        let first = format!("{A} HEAD\0multi_ack side-band-64k symref=HEAD:refs/heads/main object-format=sha1 agent=git/2.47\n");
        let b = body(&[
            first.as_bytes(),
            format!("{A} refs/heads/main\n").as_bytes(),
            format!("{B} refs/tags/v1\n").as_bytes(),
            format!("{A} refs/tags/v1^{{}}\n").as_bytes(),
            format!("{C} refs/pull/7/head\n").as_bytes(),
            format!("{C} refs/pull/7/merge").as_bytes(), // no LF: tolerated
        ]);
        let adv = parse_advertisement(&b).unwrap();
        assert_eq!(adv.refs.len(), 5);
        assert_eq!(adv.refs["HEAD"], oid(A));
        assert_eq!(adv.refs["refs/tags/v1"], oid(B));
        assert_eq!(adv.refs["refs/pull/7/merge"], oid(C));
        assert_eq!(adv.peeled.len(), 1);
        assert_eq!(adv.peeled["refs/tags/v1"], oid(A));
        assert!(adv.capabilities.has("side-band-64k"));
        assert!(adv.capabilities.has("agent"));
        assert!(!adv.capabilities.has("side-band"));
        assert_eq!(adv.capabilities.value("agent"), Some("git/2.47"));
        assert_eq!(adv.head_symref.as_deref(), Some("refs/heads/main"));

        let selected = select_refs(&adv);
        let names: Vec<&str> = selected.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "HEAD",
                "refs/heads/main",
                "refs/pull/7/head",
                "refs/tags/v1"
            ]
        );
        assert_eq!(
            selected["refs/tags/v1"],
            oid(B),
            "the tag object, not the peeled commit"
        );
    }

    #[test]
    fn empty_repository_form() {
        let first = format!(
            "{} capabilities^{{}}\0multi_ack ofs-delta symref=HEAD:refs/heads/trunk\n",
            Oid::ZERO
        );
        let adv = parse_advertisement(&body(&[first.as_bytes()])).unwrap();
        assert!(adv.refs.is_empty());
        assert!(adv.peeled.is_empty());
        assert!(adv.capabilities.has("ofs-delta"));
        assert_eq!(adv.head_symref.as_deref(), Some("refs/heads/trunk"));
        assert!(select_refs(&adv).is_empty());
        // `capabilities^{}` with a real oid, or without capabilities, is not the empty form.
        let bad = format!("{A} capabilities^{{}}\0multi_ack\n");
        assert_eq!(
            parse_advertisement(&body(&[bad.as_bytes()])),
            Err(RefsError::MalformedLine(1))
        );
    }

    #[test]
    fn protocol_v1_version_line_is_skipped_and_v2_refused() {
        let first = format!("{A} refs/heads/main\0ofs-delta\n");
        let adv = parse_advertisement(&body(&[b"version 1\n", first.as_bytes()])).unwrap();
        assert_eq!(adv.refs["refs/heads/main"], oid(A));
        assert_eq!(
            parse_advertisement(&body(&[b"version 2\n", b"ls-refs\n"])),
            Err(RefsError::UnsupportedProtocol("version 2".into()))
        );
    }

    #[test]
    fn refuses_what_it_cannot_back_up() {
        let sha256 = format!("{A} HEAD\0object-format=sha256\n");
        assert!(matches!(
            parse_advertisement(&body(&[sha256.as_bytes()])),
            Err(RefsError::UnsupportedObjectFormat(_))
        ));
        let first = format!("{A} HEAD\0multi_ack\n");
        let shallow = format!("shallow {B}\n");
        assert_eq!(
            parse_advertisement(&body(&[first.as_bytes(), shallow.as_bytes()])),
            Err(RefsError::ShallowRepository)
        );
        assert_eq!(
            parse_advertisement(&body(&[b"ERR access denied\n"])),
            Err(RefsError::Server("access denied".into()))
        );
        let mut err_first = Vec::new();
        write_pkt(&mut err_first, b"ERR Repository not found.").unwrap();
        assert_eq!(
            parse_advertisement(&err_first),
            Err(RefsError::Server("Repository not found.".into()))
        );
    }

    #[test]
    fn refuses_bodies_that_are_not_smart_http() {
        assert_eq!(parse_advertisement(b""), Err(RefsError::NotSmartHttp));
        assert!(matches!(
            parse_advertisement(b"<html>login</html>"),
            Err(RefsError::Pkt(PktLineError::BadLength(_)))
        ));
        let mut other = Vec::new();
        write_pkt(&mut other, b"# service=git-receive-pack\n").unwrap();
        write_flush(&mut other);
        assert_eq!(parse_advertisement(&other), Err(RefsError::NotSmartHttp));
        let mut no_flush = Vec::new();
        write_pkt(&mut no_flush, b"# service=git-upload-pack\n").unwrap();
        write_pkt(&mut no_flush, format!("{A} HEAD\n").as_bytes()).unwrap();
        assert_eq!(parse_advertisement(&no_flush), Err(RefsError::NotSmartHttp));
    }

    #[test]
    fn truncated_and_trailing_bodies() {
        let first = format!("{A} HEAD\0multi_ack\n");
        let full = body(&[first.as_bytes(), format!("{B} refs/heads/x\n").as_bytes()]);
        // Every strict prefix fails cleanly; the whole body parses.
        for cut in 0..full.len() {
            assert!(parse_advertisement(&full[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_advertisement(&full).is_ok());
        let without_final_flush = &full[..full.len() - 4];
        assert_eq!(
            parse_advertisement(without_final_flush),
            Err(RefsError::MissingFlush)
        );
        let half_line = &full[..full.len() - 10];
        assert!(matches!(
            parse_advertisement(half_line),
            Err(RefsError::Pkt(PktLineError::Truncated { .. }))
        ));
        let mut trailing = full.clone();
        trailing.extend_from_slice(b"0000");
        assert_eq!(parse_advertisement(&trailing), Err(RefsError::TrailingData));
    }

    #[test]
    fn malformed_lines_oids_and_names() {
        let cases: Vec<(String, RefsError)> = vec![
            (format!("{A}refs/heads/x"), RefsError::MalformedLine(1)),
            (format!("{A} "), RefsError::MalformedLine(1)),
            ("abc refs/heads/x".to_string(), RefsError::MalformedLine(1)),
            (
                format!("{} refs/heads/x", &A[..39]),
                RefsError::MalformedLine(1),
            ),
            (format!("{}g refs/heads/x", &A[..39]), RefsError::BadOid(1)),
            (format!("{} refs/heads/x", Oid::ZERO), RefsError::BadOid(1)),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_advertisement(&body(&[line.as_bytes()])),
                Err(want),
                "{line:?}"
            );
        }
        for name in [
            "refs/heads/a..b",
            "refs/heads/a b",
            "refs/heads/a~1",
            "refs/heads/a^",
            "refs/heads/a:b",
            "refs/heads/a?",
            "refs/heads/a*",
            "refs/heads/a[",
            "refs/heads/a\\b",
            "refs/heads/a\x01",
            "refs/heads/a\x7f",
            "refs/heads/x.lock",
            "refs/heads/x.lock/y",
            "refs/heads/",
            "refs/heads//x",
            "/refs/heads/x",
            "refs/heads/.hidden",
            "refs/heads/x.",
            "refs/heads/a@{1}",
            "@",
        ] {
            let line = format!("{A} {name}\n");
            assert!(
                matches!(
                    parse_advertisement(&body(&[line.as_bytes()])),
                    Err(RefsError::BadRefName(_))
                ),
                "{name:?}"
            );
            assert!(!check_ref_name(name), "{name:?}");
        }
        let mut invalid_utf8 = format!("{A} refs/heads/").into_bytes();
        invalid_utf8.push(0xff);
        assert!(matches!(
            parse_advertisement(&body(&[&invalid_utf8])),
            Err(RefsError::BadRefName(_))
        ));
        for good in [
            "HEAD",
            "refs/heads/feature/x-1",
            "refs/tags/v1.0",
            "refs/heads/ünï",
            "refs/heads/a.b@c",
        ] {
            assert!(check_ref_name(good), "{good:?}");
        }
        // Capabilities on a later line, and duplicates.
        let first = format!("{A} HEAD\0multi_ack\n");
        let late_caps = format!("{B} refs/heads/x\0side-band\n");
        assert_eq!(
            parse_advertisement(&body(&[first.as_bytes(), late_caps.as_bytes()])),
            Err(RefsError::MalformedLine(2))
        );
        let dup = format!("{B} HEAD\n");
        assert!(matches!(
            parse_advertisement(&body(&[first.as_bytes(), dup.as_bytes()])),
            Err(RefsError::DuplicateRef(_))
        ));
    }

    #[test]
    fn selection_rules() {
        for yes in [
            "HEAD",
            "refs/heads/main",
            "refs/heads/feature/x",
            "refs/tags/v1",
            "refs/pull/1/head",
            "refs/pull/12345/head",
            "refs/merge-requests/3/head",
        ] {
            assert!(is_backed_up(yes), "{yes}");
        }
        for no in [
            "refs/heads/",
            "refs/pull/1/merge",
            "refs/pull/x/head",
            "refs/pull//head",
            "refs/pull/1/head/x",
            "refs/merge-requests/3/merge",
            "refs/merge-requests/3/train",
            "refs/keep-around/abc",
            "refs/notes/commits",
            "refs/remotes/origin/main",
            "refs/changes/01/1/1",
            "FETCH_HEAD",
        ] {
            assert!(!is_backed_up(no), "{no}");
        }
    }

    #[test]
    fn capabilities_helpers() {
        let caps = Capabilities::parse("a b=1  symref=HEAD:refs/heads/x symref=X:Y c");
        assert!(caps.has("a") && caps.has("b") && caps.has("symref") && caps.has("c"));
        assert!(!caps.has("b=1") && !caps.has("d"));
        assert_eq!(caps.value("b"), Some("1"));
        assert_eq!(
            caps.values("symref").collect::<Vec<_>>(),
            ["HEAD:refs/heads/x", "X:Y"]
        );
        assert!(!caps.without("b").has("b"));
        assert_eq!(caps.iter().count(), 5);
    }

    #[test]
    fn server_text_is_sanitized() {
        assert_eq!(sanitize(b"a\x1b[31mb\n"), "a\\u{1b}[31mb");
        assert_eq!(sanitize(&[b'x'; 300]).chars().count(), 201);
        assert_eq!(sanitize(&[0xff, b'a']), "\u{fffd}a");
    }
}
