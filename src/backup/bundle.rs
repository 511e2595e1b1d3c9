//! The git bundle v2 format (gitformat-bundle(5)): how a snapshot is stored, so that plain
//! `git clone x.bundle` / `git fetch x.bundle '+refs/*:refs/*'` restores it.
//!
//! ```text
//! # v2 git bundle\n
//! -<oid> [comment]\n      prerequisites: objects the receiving repository must already have
//! <oid> <refname>\n       the refs, HEAD first when known (a clone checks out the branch HEAD is at)
//! \n                      an empty line ends the header
//! <pack>                  the pack exactly as upload-pack sent it
//! ```
//!
//! [`header`] writes the text before the pack; the pack is streamed after it unchanged, so the
//! bundle is the header followed by the verified pack. [`parse_header`] reads a header back (to
//! test bundles and to read stored ones) and tells where the pack starts.

use super::oid::Oid;
use super::refs::{check_ref_name, sanitize};
use std::collections::BTreeMap;
use std::fmt;

/// The first line of a v2 bundle.
pub const SIGNATURE_V2: &[u8] = b"# v2 git bundle\n";
/// Longest header [`parse_header`] reads before giving up (refs × ~60 bytes).
pub const MAX_HEADER_LEN: usize = 64 << 20;

/// A parsed bundle header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    /// Prerequisite oids with their (possibly empty) comments.
    pub prerequisites: Vec<(Oid, String)>,
    /// The refs in the order written.
    pub refs: Vec<(String, Oid)>,
    /// Offset of the first pack byte (just after the empty line).
    pub pack_offset: usize,
}

impl BundleHeader {
    pub fn refs_map(&self) -> BTreeMap<String, Oid> {
        self.refs.iter().cloned().collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// A bundle needs at least one ref.
    NoRefs,
    /// A ref name `git check-ref-format` refuses (shown escaped).
    BadRefName(String),
    /// Not a v2 bundle (a v3 bundle, or not a bundle).
    BadSignature,
    /// A header line that is neither a prerequisite nor `<oid> <ref>` (1-based line number).
    MalformedLine(usize),
    /// The same ref twice.
    DuplicateRef(String),
    /// No empty line ends the header (within [`MAX_HEADER_LEN`]).
    Truncated,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::NoRefs => f.write_str("a bundle needs at least one ref"),
            BundleError::BadRefName(n) => write!(f, "invalid ref name {n} in bundle"),
            BundleError::BadSignature => f.write_str("not a v2 git bundle"),
            BundleError::MalformedLine(n) => write!(f, "bundle header line {n} is malformed"),
            BundleError::DuplicateRef(n) => write!(f, "ref {n} appears twice in the bundle"),
            BundleError::Truncated => f.write_str("bundle header has no end"),
        }
    }
}

impl std::error::Error for BundleError {}

/// The header of a bundle holding `refs` (name → oid; `HEAD` is written first when present)
/// on top of `prerequisites` (deduplicated, in order). Ref names are checked; the pack follows.
pub fn header(refs: &BTreeMap<String, Oid>, prerequisites: &[Oid]) -> Result<Vec<u8>, BundleError> {
    if refs.is_empty() {
        return Err(BundleError::NoRefs);
    }
    let mut out =
        Vec::with_capacity(SIGNATURE_V2.len() + 41 * prerequisites.len() + 64 * refs.len() + 1);
    out.extend_from_slice(SIGNATURE_V2);
    let mut seen = std::collections::BTreeSet::new();
    for p in prerequisites {
        if seen.insert(*p) {
            out.extend_from_slice(format!("-{p}\n").as_bytes());
        }
    }
    let head = refs.get_key_value("HEAD");
    for (name, oid) in head
        .into_iter()
        .chain(refs.iter().filter(|(n, _)| *n != "HEAD"))
    {
        if !check_ref_name(name) {
            return Err(BundleError::BadRefName(format!(
                "{:?}",
                sanitize(name.as_bytes())
            )));
        }
        out.extend_from_slice(format!("{oid} {name}\n").as_bytes());
    }
    out.push(b'\n');
    Ok(out)
}

/// Reads a v2 bundle header from the start of `bytes` (which may go on with the pack).
pub fn parse_header(bytes: &[u8]) -> Result<BundleHeader, BundleError> {
    let rest = bytes
        .strip_prefix(SIGNATURE_V2)
        .ok_or(BundleError::BadSignature)?;
    let mut offset = SIGNATURE_V2.len();
    let mut prerequisites = Vec::new();
    let mut refs: Vec<(String, Oid)> = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut lines = rest.split_inclusive(|&b| b == b'\n');
    let mut line_no = 1;
    loop {
        let Some(line) = lines.next() else {
            return Err(BundleError::Truncated);
        };
        line_no += 1;
        offset += line.len();
        if offset > MAX_HEADER_LEN {
            return Err(BundleError::Truncated);
        }
        let Some(text) = line.strip_suffix(b"\n") else {
            return Err(BundleError::Truncated);
        };
        if text.is_empty() {
            break;
        }
        let malformed = BundleError::MalformedLine(line_no);
        if let Some(p) = text.strip_prefix(b"-") {
            let oid = Oid::from_hex_bytes(p.get(..40).ok_or(malformed.clone())?)
                .ok_or(malformed.clone())?;
            let comment = match p.get(40..) {
                Some([]) | None => String::new(),
                Some([b' ', c @ ..]) => String::from_utf8_lossy(c).into_owned(),
                Some(_) => return Err(malformed),
            };
            prerequisites.push((oid, comment));
            continue;
        }
        let (oid, name) = match (text.get(..40), text.get(40), text.get(41..)) {
            (Some(o), Some(b' '), Some(n)) => (Oid::from_hex_bytes(o).ok_or(malformed.clone())?, n),
            _ => return Err(malformed),
        };
        let name = std::str::from_utf8(name)
            .ok()
            .filter(|n| check_ref_name(n))
            .ok_or_else(|| BundleError::BadRefName(format!("{:?}", sanitize(name))))?;
        if !names.insert(name.to_string()) {
            return Err(BundleError::DuplicateRef(name.to_string()));
        }
        refs.push((name.to_string(), oid));
    }
    if refs.is_empty() {
        return Err(BundleError::NoRefs);
    }
    Ok(BundleHeader {
        prerequisites,
        refs,
        pack_offset: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> Oid {
        Oid::from_bytes([n; 20])
    }

    fn refs(list: &[(&str, u8)]) -> BTreeMap<String, Oid> {
        list.iter().map(|(n, o)| (n.to_string(), oid(*o))).collect()
    }

    #[test]
    fn writes_head_first_then_refs_in_order() {
        let h = header(
            &refs(&[("refs/tags/v1", 3), ("HEAD", 1), ("refs/heads/main", 1)]),
            &[oid(9), oid(8), oid(9)],
        )
        .unwrap();
        let text = String::from_utf8(h.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "# v2 git bundle\n-{}\n-{}\n{} HEAD\n{} refs/heads/main\n{} refs/tags/v1\n\n",
                oid(9),
                oid(8),
                oid(1),
                oid(1),
                oid(3)
            )
        );
        let mut bundle = h.clone();
        bundle.extend_from_slice(b"PACK...");
        let parsed = parse_header(&bundle).unwrap();
        assert_eq!(parsed.pack_offset, h.len());
        assert_eq!(&bundle[parsed.pack_offset..], b"PACK...");
        assert_eq!(
            parsed.prerequisites,
            vec![(oid(9), String::new()), (oid(8), String::new())]
        );
        assert_eq!(parsed.refs[0], ("HEAD".to_string(), oid(1)));
        assert_eq!(
            parsed.refs_map(),
            refs(&[("refs/tags/v1", 3), ("HEAD", 1), ("refs/heads/main", 1)])
        );
    }

    #[test]
    fn refuses_bad_input_when_writing() {
        assert_eq!(header(&BTreeMap::new(), &[]), Err(BundleError::NoRefs));
        assert!(matches!(
            header(&refs(&[("refs/heads/a b", 1)]), &[]),
            Err(BundleError::BadRefName(_))
        ));
    }

    #[test]
    fn parses_git_written_comments_and_refuses_malformed_headers() {
        let good = format!(
            "# v2 git bundle\n-{} second commit subject\n{} refs/heads/main\n\nPACK",
            oid(1),
            oid(2)
        );
        let h = parse_header(good.as_bytes()).unwrap();
        assert_eq!(
            h.prerequisites,
            vec![(oid(1), "second commit subject".to_string())]
        );
        assert_eq!(h.pack_offset, good.len() - 4);

        let cases: Vec<(String, BundleError)> = vec![
            (
                "# v3 git bundle\n@object-format=sha1\n\n".into(),
                BundleError::BadSignature,
            ),
            ("".into(), BundleError::BadSignature),
            ("# v2 git bundle\n".into(), BundleError::Truncated),
            (
                format!("# v2 git bundle\n{} refs/heads/main\n", oid(1)),
                BundleError::Truncated,
            ),
            (
                format!("# v2 git bundle\n{} refs/heads/main", oid(1)),
                BundleError::Truncated,
            ),
            ("# v2 git bundle\n\n".into(), BundleError::NoRefs),
            (
                format!("# v2 git bundle\n-{}\n\n", oid(1)),
                BundleError::NoRefs,
            ),
            (
                "# v2 git bundle\nxyz refs/heads/main\n\n".into(),
                BundleError::MalformedLine(2),
            ),
            (
                format!("# v2 git bundle\n{}\n\n", oid(1)),
                BundleError::MalformedLine(2),
            ),
            (
                format!("# v2 git bundle\n-{}x\n\n", oid(1)),
                BundleError::MalformedLine(2),
            ),
            (
                format!("# v2 git bundle\n-{}\n{}refs/heads/x\n\n", oid(1), oid(2)),
                BundleError::MalformedLine(3),
            ),
            (
                format!(
                    "# v2 git bundle\n{0} refs/heads/x\n{0} refs/heads/x\n\n",
                    oid(1)
                ),
                BundleError::DuplicateRef("refs/heads/x".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_header(text.as_bytes()), Err(want), "{text:?}");
        }
        let bad_name = format!("# v2 git bundle\n{} refs/heads/a..b\n\n", oid(1));
        assert!(matches!(
            parse_header(bad_name.as_bytes()),
            Err(BundleError::BadRefName(_))
        ));
    }
}
