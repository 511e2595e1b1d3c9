//! The body of `POST {url}/git-upload-pack` (protocol v0/v1, stateless RPC), asking for a pack
//! of the wanted tips minus what the previous snapshot already holds.
//!
//! ```text
//! want <oid> <capabilities>\n     first want: the capabilities this client uses
//! want <oid>\n                    the other wants
//! 0000                            flush
//! have <oid>\n                    one per tip of the previous snapshot (incrementals only)
//! done\n                          no further negotiation: send the pack now
//! ```
//!
//! Capabilities asked for, each only if the server advertised it (gitprotocol-capabilities(5)):
//! `multi_ack_detailed` (or plain `multi_ack`: Azure DevOps refuses clients that ask for
//! neither), `side-band-64k` (or `side-band`), `ofs-delta`, `no-progress`, and
//! `agent=onecode-edge/<version>` when the server advertises `agent`. Never `thin-pack`: a
//! bundle must be self-contained. Never `include-tag`: tags are wanted explicitly.
//!
//! Wants and haves are deduplicated (first occurrence kept), a want equal to a have is dropped
//! (the receiver already has it), and an empty want list is an error: there is nothing to ask
//! the server for (see [`super::plan`] for that case).

use super::oid::Oid;
use super::pktline::{write_flush, write_pkt};
use super::refs::Capabilities;
use std::collections::BTreeSet;
use std::fmt;

/// What this client calls itself in `agent=`.
pub const AGENT: &str = concat!("onecode-edge/", env!("CARGO_PKG_VERSION"));

/// An upload-pack request, ready to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPackRequest {
    /// The request body (`Content-Type: application/x-git-upload-pack-request`).
    pub body: Vec<u8>,
    /// The capabilities asked for, in the order sent.
    pub capabilities: Vec<String>,
    /// Whether the answer multiplexes the pack on side-band (give this to
    /// [`super::response::ResponseParser::new`]).
    pub side_band: bool,
    /// The wants sent, deduplicated, without haves.
    pub wants: Vec<Oid>,
    /// The haves sent, deduplicated.
    pub haves: Vec<Oid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// No want is left once duplicates, zero oids and haves are removed.
    NothingToFetch,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NothingToFetch => {
                f.write_str("nothing to fetch: every wanted object is already held")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// The capabilities to ask for, given what the server advertised.
pub fn choose_capabilities(server: &Capabilities) -> Vec<String> {
    let mut caps = Vec::new();
    let mut first_of = |names: &[&str]| {
        if let Some(name) = names.iter().find(|n| server.has(n)) {
            caps.push(name.to_string());
        }
    };
    first_of(&["multi_ack_detailed", "multi_ack"]);
    first_of(&["side-band-64k", "side-band"]);
    first_of(&["ofs-delta"]);
    first_of(&["no-progress"]);
    if server.has("agent") {
        caps.push(format!("agent={AGENT}"));
    }
    caps
}

/// Builds the request for `wants` given `haves`, with the capabilities `server` advertised.
pub fn build_request(
    wants: &[Oid],
    haves: &[Oid],
    server: &Capabilities,
) -> Result<UploadPackRequest, RequestError> {
    let mut seen = BTreeSet::new();
    let haves: Vec<Oid> = haves
        .iter()
        .copied()
        .filter(|h| !h.is_zero() && seen.insert(*h))
        .collect();
    let have_set = seen;
    let mut seen = BTreeSet::new();
    let wants: Vec<Oid> = wants
        .iter()
        .copied()
        .filter(|w| !w.is_zero() && !have_set.contains(w) && seen.insert(*w))
        .collect();
    if wants.is_empty() {
        return Err(RequestError::NothingToFetch);
    }
    let capabilities = choose_capabilities(server);
    let side_band = capabilities
        .iter()
        .any(|c| c == "side-band-64k" || c == "side-band");

    let mut body = Vec::with_capacity(wants.len() * 50 + haves.len() * 50 + 200);
    for (i, want) in wants.iter().enumerate() {
        // Each line is at most 46 + the capability list, far below a pkt-line's maximum.
        let line = if i == 0 && !capabilities.is_empty() {
            format!("want {want} {}\n", capabilities.join(" "))
        } else {
            format!("want {want}\n")
        };
        let _ = write_pkt(&mut body, line.as_bytes());
    }
    write_flush(&mut body);
    for have in &haves {
        let _ = write_pkt(&mut body, format!("have {have}\n").as_bytes());
    }
    let _ = write_pkt(&mut body, b"done\n");
    Ok(UploadPackRequest {
        body,
        capabilities,
        side_band,
        wants,
        haves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::pktline::{Packet, PktDecoder};

    fn oid(n: u8) -> Oid {
        Oid::from_bytes([n; 20])
    }

    fn lines(body: &[u8]) -> Vec<String> {
        let mut dec = PktDecoder::new();
        dec.push(body);
        let mut out = Vec::new();
        while let Some(p) = dec.next_packet().unwrap() {
            out.push(match p {
                Packet::Flush => "0000".to_string(),
                Packet::Data(d) => String::from_utf8(d.to_vec()).unwrap(),
                other => panic!("unexpected {other:?}"),
            });
        }
        dec.finish().unwrap();
        out
    }

    const GIT_CAPS: &str = "multi_ack thin-pack side-band side-band-64k ofs-delta shallow deepen-since deepen-not deepen-relative no-progress include-tag multi_ack_detailed symref=HEAD:refs/heads/main object-format=sha1 agent=git/2.47.3";

    #[test]
    fn full_request_with_everything_git_advertises() {
        let caps = Capabilities::parse(GIT_CAPS);
        let req = build_request(&[oid(1), oid(2), oid(1)], &[], &caps).unwrap();
        let agent = format!("agent={AGENT}");
        assert_eq!(
            req.capabilities,
            vec![
                "multi_ack_detailed",
                "side-band-64k",
                "ofs-delta",
                "no-progress",
                agent.as_str()
            ]
        );
        assert!(req.side_band);
        assert_eq!(req.wants, vec![oid(1), oid(2)]);
        assert_eq!(
            lines(&req.body),
            vec![
                format!(
                    "want {} multi_ack_detailed side-band-64k ofs-delta no-progress {agent}\n",
                    oid(1)
                ),
                format!("want {}\n", oid(2)),
                "0000".to_string(),
                "done\n".to_string(),
            ]
        );
        assert!(AGENT.starts_with("onecode-edge/0."));
        let text = String::from_utf8_lossy(&req.body);
        assert!(!text.contains("thin-pack") && !text.contains("include-tag"));
    }

    #[test]
    fn incremental_request_drops_wants_that_are_haves() {
        let caps = Capabilities::parse(GIT_CAPS);
        let req =
            build_request(&[oid(1), oid(2), oid(3)], &[oid(2), oid(4), oid(4)], &caps).unwrap();
        assert_eq!(req.wants, vec![oid(1), oid(3)]);
        assert_eq!(req.haves, vec![oid(2), oid(4)]);
        let l = lines(&req.body);
        assert_eq!(l.len(), 6);
        assert!(l[0].starts_with(&format!("want {} multi_ack_detailed", oid(1))));
        assert_eq!(l[1], format!("want {}\n", oid(3)));
        assert_eq!(l[2], "0000");
        assert_eq!(l[3], format!("have {}\n", oid(2)));
        assert_eq!(l[4], format!("have {}\n", oid(4)));
        assert_eq!(l[5], "done\n");
    }

    #[test]
    fn only_advertised_capabilities_with_fallbacks() {
        let caps = Capabilities::parse("multi_ack side-band ofs-delta");
        let req = build_request(&[oid(1)], &[], &caps).unwrap();
        assert_eq!(
            req.capabilities,
            vec!["multi_ack", "side-band", "ofs-delta"]
        );
        assert!(req.side_band);

        let req =
            build_request(&[oid(1)], &[], &Capabilities::parse("multi_ack_detailed")).unwrap();
        assert_eq!(req.capabilities, vec!["multi_ack_detailed"]);
        assert!(!req.side_band);

        let req = build_request(&[oid(1)], &[], &Capabilities::default()).unwrap();
        assert!(req.capabilities.is_empty());
        assert_eq!(lines(&req.body)[0], format!("want {}\n", oid(1)));
    }

    #[test]
    fn nothing_to_fetch() {
        let caps = Capabilities::parse(GIT_CAPS);
        assert_eq!(
            build_request(&[], &[], &caps),
            Err(RequestError::NothingToFetch)
        );
        assert_eq!(
            build_request(&[oid(1)], &[oid(1)], &caps),
            Err(RequestError::NothingToFetch)
        );
        assert_eq!(
            build_request(&[Oid::ZERO], &[], &caps),
            Err(RequestError::NothingToFetch)
        );
    }
}
