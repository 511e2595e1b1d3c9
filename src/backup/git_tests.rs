//! End-to-end checks of the backup building blocks against real git: advertisements and packs
//! come from `git upload-pack --stateless-rpc`, and what is stored must pass `git bundle verify`,
//! `git clone` / `git fetch` and `git fsck --full`, restoring exactly the source's refs.

use super::bundle;
use super::oid::Oid;
use super::pack::{empty_pack, PackError, PackSummary, PackVerifier};
use super::pktline::{write_flush, write_pkt};
use super::plan::{decide, Decision, RefMap};
use super::refs::{parse_advertisement, select_refs, Advertisement, Capabilities};
use super::request::build_request;
use super::response::{ResponseError, ResponseParser};
use super::test_git::{git, git_output, git_stdin, git_text, TempDir, XorShift};
use std::collections::BTreeMap;
use std::path::Path;

/// Deterministic text with enough repetition for deltas and enough variety to not vanish.
fn text(rng: &mut XorShift, lines: usize) -> String {
    const WORDS: &[&str] = &[
        "backup",
        "git",
        "pack",
        "bundle",
        "object",
        "delta",
        "tree",
        "commit",
        "blob",
        "tag",
        "stream",
        "chunk",
        "verify",
        "upload",
        "restore",
        "retention",
        "edge",
        "worker",
    ];
    let mut out = String::new();
    for i in 0..lines {
        out.push_str(&format!("{i:05}"));
        for _ in 0..8 {
            out.push(' ');
            out.push_str(WORDS[rng.below(WORDS.len())]);
        }
        out.push('\n');
    }
    out
}

fn write(repo: &Path, name: &str, content: &str) {
    let path = repo.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

fn commit(repo: &Path, msg: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "--allow-empty", "-m", msg]);
    git_text(repo, &["rev-parse", "HEAD"])
}

/// A source repository with branches, annotated and lightweight tags, a big file (several
/// inflate windows), and provider refs: `refs/pull/1/head` (kept), `refs/pull/1/merge` and
/// `refs/keep-around/*` (not kept).
fn make_source(dir: &TempDir) -> std::path::PathBuf {
    let repo = dir.join("src");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    let mut rng = XorShift::new(42);
    let big = text(&mut rng, 6000);
    write(&repo, "big.txt", &big);
    write(&repo, "README.md", "# test\n");
    commit(&repo, "first");
    write(&repo, "big.txt", &format!("{big}one more line\n"));
    write(&repo, "src/lib.rs", &text(&mut rng, 50));
    commit(&repo, "second");
    git(&repo, &["tag", "-a", "v1", "-m", "release one"]);
    git(&repo, &["checkout", "-q", "-b", "dev"]);
    write(&repo, "src/dev.rs", &text(&mut rng, 30));
    let dev = commit(&repo, "dev work");
    git(&repo, &["tag", "light"]);
    git(&repo, &["checkout", "-q", "main"]);
    write(&repo, "src/lib.rs", &text(&mut rng, 60));
    let main = commit(&repo, "third");
    git(&repo, &["update-ref", "refs/pull/1/head", &dev]);
    git(&repo, &["update-ref", "refs/pull/1/merge", &main]);
    git(
        &repo,
        &["update-ref", &format!("refs/keep-around/{main}"), &main],
    );
    repo
}

/// What a smart-HTTP server answers to `GET …/info/refs?service=git-upload-pack`.
fn advertise(repo: &Path) -> Vec<u8> {
    let mut body = Vec::new();
    write_pkt(&mut body, b"# service=git-upload-pack\n").unwrap();
    write_flush(&mut body);
    body.extend_from_slice(&git(
        repo,
        &["upload-pack", "--stateless-rpc", "--advertise-refs", "."],
    ));
    body
}

/// What a smart-HTTP server answers to `POST …/git-upload-pack` with `request`.
fn upload_pack(repo: &Path, request: &[u8]) -> Vec<u8> {
    git_stdin(repo, &["upload-pack", "--stateless-rpc", "."], request)
}

/// Streams `response` in random chunks through the parser and the verifier, as the edge does,
/// collecting what would be uploaded.
fn stream(
    response: &[u8],
    side_band: bool,
    rng: &mut XorShift,
) -> Result<(Vec<u8>, PackSummary), String> {
    let mut parser = ResponseParser::new(side_band);
    let mut verifier = PackVerifier::new();
    let mut uploaded = Vec::new();
    for chunk in rng.chunks(response, 9000) {
        for piece in parser.push(chunk).map_err(|e| format!("response: {e}"))? {
            verifier.push(piece).map_err(|e| format!("pack: {e}"))?;
            uploaded.extend_from_slice(piece);
        }
    }
    parser.finish().map_err(|e| format!("response: {e}"))?;
    let summary = verifier.finish().map_err(|e| format!("pack: {e}"))?;
    Ok((uploaded, summary))
}

/// The source's refs as git lists them, restricted to what a backup keeps, without HEAD.
fn source_refs(repo: &Path) -> BTreeMap<String, Oid> {
    git_text(repo, &["for-each-ref", "--format=%(objectname) %(refname)"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, name)| super::refs::is_backed_up(name))
        .map(|(oid, name)| (name.to_string(), Oid::from_hex(oid).unwrap()))
        .collect()
}

fn without_head(refs: &RefMap) -> RefMap {
    refs.iter()
        .filter(|(n, _)| *n != "HEAD")
        .map(|(n, o)| (n.clone(), *o))
        .collect()
}

fn snapshot_refs(repo: &Path) -> (Advertisement, RefMap) {
    let adv = parse_advertisement(&advertise(repo)).unwrap();
    let selected = select_refs(&adv);
    (adv, selected)
}

/// Fetches `wants` (minus `haves`) from `repo` and returns the bundle bytes and the summary.
fn take_bundle(
    repo: &Path,
    caps: &Capabilities,
    refs: &RefMap,
    wants: &[Oid],
    haves: &[Oid],
    rng: &mut XorShift,
) -> (Vec<u8>, PackSummary, usize) {
    let request = build_request(wants, haves, caps).unwrap();
    let response = upload_pack(repo, &request.body);
    let mut parser_acks = ResponseParser::new(request.side_band);
    let _ = parser_acks.push(&response);
    let (pack, summary) = stream(&response, request.side_band, rng).unwrap();
    let mut out = bundle::header(refs, haves).unwrap();
    out.extend_from_slice(&pack);
    (out, summary, parser_acks.acks())
}

fn save(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

fn bare(dir: &TempDir, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    git(
        dir.path(),
        &["init", "-q", "--bare", &path.to_string_lossy()],
    );
    path
}

fn fetch_bundle(repo: &Path, bundle: &str, prune: bool) {
    let mut args = vec!["fetch", "-q"];
    if prune {
        args.push("--prune");
    }
    args.extend([bundle, "+refs/*:refs/*"]);
    git(repo, &args);
}

#[test]
fn advertisement_of_a_real_repository() {
    let dir = TempDir::new("adv");
    let repo = make_source(&dir);
    let (adv, selected) = snapshot_refs(&repo);
    assert_eq!(adv.head_symref.as_deref(), Some("refs/heads/main"));
    for cap in [
        "multi_ack_detailed",
        "side-band-64k",
        "ofs-delta",
        "no-progress",
        "agent",
    ] {
        assert!(adv.capabilities.has(cap), "{cap}");
    }
    let names: Vec<&str> = selected.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "HEAD",
            "refs/heads/dev",
            "refs/heads/main",
            "refs/pull/1/head",
            "refs/tags/light",
            "refs/tags/v1"
        ]
    );
    assert!(adv.refs.contains_key("refs/pull/1/merge"));
    assert!(adv.refs.keys().any(|n| n.starts_with("refs/keep-around/")));
    let rev = |r: &str| Oid::from_hex(&git_text(&repo, &["rev-parse", r])).unwrap();
    assert_eq!(selected["HEAD"], rev("main"));
    assert_eq!(
        selected["refs/tags/v1"],
        rev("refs/tags/v1"),
        "the tag object"
    );
    assert_eq!(adv.peeled["refs/tags/v1"], rev("v1^{commit}"));
    assert_ne!(selected["refs/tags/v1"], adv.peeled["refs/tags/v1"]);
    assert!(!adv.peeled.contains_key("refs/tags/light"));
    assert_eq!(without_head(&selected), source_refs(&repo));

    // HEAD pointing at another branch.
    git(&repo, &["symbolic-ref", "HEAD", "refs/heads/dev"]);
    let (adv, selected) = snapshot_refs(&repo);
    assert_eq!(adv.head_symref.as_deref(), Some("refs/heads/dev"));
    assert_eq!(selected["HEAD"], rev("dev"));
}

#[test]
fn empty_repository_and_tags_only_repository() {
    let dir = TempDir::new("empty");
    let empty = bare(&dir, "empty.git");
    let (adv, selected) = snapshot_refs(&empty);
    assert!(adv.refs.is_empty() && selected.is_empty());
    assert!(adv.capabilities.has("multi_ack_detailed"));
    // git 2.47 names no symref for an unborn HEAD in v0; were one named, it is the default branch.
    assert!(matches!(
        adv.head_symref.as_deref(),
        None | Some("refs/heads/main")
    ));
    assert_eq!(decide(None, &selected, 0, 5), Decision::Empty);

    // Only tags: HEAD is unborn, no branch.
    let repo = make_source(&dir);
    for branch in ["main", "dev"] {
        git(
            &repo,
            &["update-ref", "-d", &format!("refs/heads/{branch}")],
        );
    }
    for r in ["refs/pull/1/head", "refs/pull/1/merge"] {
        git(&repo, &["update-ref", "-d", r]);
    }
    let (adv, selected) = snapshot_refs(&repo);
    let names: Vec<&str> = selected.keys().map(String::as_str).collect();
    assert_eq!(names, ["refs/tags/light", "refs/tags/v1"]);
    assert!(!adv.refs.contains_key("HEAD"));
    let Decision::Full { wants } = decide(None, &selected, 0, 5) else {
        panic!("full expected")
    };
    let mut rng = XorShift::new(7);
    let (bytes, summary, _) =
        take_bundle(&repo, &adv.capabilities, &selected, &wants, &[], &mut rng);
    assert!(summary.objects > 0);
    let path = save(&dir, "tags.bundle", &bytes);
    let restore = bare(&dir, "tags.git");
    git(&restore, &["bundle", "verify", "-q", &path]);
    fetch_bundle(&restore, &path, false);
    assert_eq!(source_refs(&restore), selected);
    git(&restore, &["fsck", "--full", "--no-dangling"]);
}

#[test]
fn full_backup_restores_with_and_without_side_band() {
    let dir = TempDir::new("full");
    let repo = make_source(&dir);
    let (adv, selected) = snapshot_refs(&repo);
    let Decision::Full { wants } = decide(None, &selected, 0, 5) else {
        panic!("full expected")
    };
    // Every object reachable from the kept tips, tag objects included.
    let mut rev_list = vec!["rev-list".to_string(), "--objects".to_string()];
    rev_list.extend(wants.iter().map(Oid::to_hex));
    let rev_list: Vec<&str> = rev_list.iter().map(String::as_str).collect();
    let expected_objects = git_text(&repo, &rev_list).lines().count() as u32;

    let no_side_band = adv
        .capabilities
        .without("side-band-64k")
        .without("side-band");
    for (label, caps) in [
        ("sideband", adv.capabilities.clone()),
        ("raw", no_side_band),
    ] {
        let mut rng = XorShift::new(label.len() as u64);
        let request = build_request(&wants, &[], &caps).unwrap();
        assert_eq!(request.side_band, label == "sideband");
        let (bytes, summary, _) = take_bundle(&repo, &caps, &selected, &wants, &[], &mut rng);
        assert_eq!(summary.objects, expected_objects, "{label}");
        let parsed = bundle::parse_header(&bytes).unwrap();
        assert_eq!(parsed.refs_map(), selected);
        assert!(parsed.prerequisites.is_empty());
        assert_eq!(bytes.len() - parsed.pack_offset, summary.bytes as usize);
        assert_eq!(&bytes[bytes.len() - 20..], summary.sha1.as_bytes());

        let path = save(&dir, &format!("{label}.bundle"), &bytes);
        let scratch = bare(&dir, &format!("verify-{label}.git"));
        git(&scratch, &["bundle", "verify", "-q", &path]);

        // A clone checks out the default branch.
        let clone = dir.join(&format!("clone-{label}"));
        git(
            dir.path(),
            &["clone", "-q", &path, &clone.to_string_lossy()],
        );
        assert_eq!(
            git_text(&clone, &["rev-parse", "HEAD"]),
            selected["HEAD"].to_hex()
        );
        assert_eq!(
            git_text(&clone, &["symbolic-ref", "HEAD"]),
            "refs/heads/main"
        );
        git(&clone, &["fsck", "--full", "--no-dangling"]);

        // A fetch of every ref restores them all exactly.
        let restore = bare(&dir, &format!("restore-{label}.git"));
        fetch_bundle(&restore, &path, false);
        assert_eq!(source_refs(&restore), source_refs(&repo));
        git(&restore, &["fsck", "--full", "--no-dangling"]);
    }
}

#[test]
fn incremental_chain_restores_every_snapshot() {
    let dir = TempDir::new("chain");
    let repo = make_source(&dir);
    let mut rng = XorShift::new(99);

    // Snapshot 1: full.
    let (adv1, refs1) = snapshot_refs(&repo);
    let Decision::Full { wants } = decide(None, &refs1, 0, 3) else {
        panic!("full expected")
    };
    let (b1, _, _) = take_bundle(&repo, &adv1.capabilities, &refs1, &wants, &[], &mut rng);
    let b1 = save(&dir, "1.bundle", &b1);

    // Snapshot 2: new commits on main, dev force-pushed, a new annotated tag, a lightweight tag
    // deleted, a new pull request head.
    write(&repo, "src/lib.rs", &text(&mut rng, 70));
    commit(&repo, "fourth");
    git(&repo, &["tag", "-a", "v2", "-m", "release two"]);
    git(&repo, &["tag", "-d", "light"]);
    git(&repo, &["checkout", "-q", "-B", "dev", "main~2"]);
    write(&repo, "rewritten.txt", "force-pushed history\n");
    let new_dev = commit(&repo, "rewritten dev");
    git(&repo, &["checkout", "-q", "main"]);
    git(&repo, &["update-ref", "refs/pull/2/head", &new_dev]);
    let (adv2, refs2) = snapshot_refs(&repo);
    let Decision::Incremental {
        wants,
        haves,
        prerequisites,
    } = decide(Some(&refs1), &refs2, 0, 3)
    else {
        panic!("incremental expected")
    };
    assert_eq!(haves, prerequisites);
    assert!(!wants.is_empty());
    assert!(wants.iter().all(|w| !haves.contains(w)));
    let (b2, summary2, acks) =
        take_bundle(&repo, &adv2.capabilities, &refs2, &wants, &haves, &mut rng);
    assert!(acks > 0, "the server found common commits");
    // Only what is new: the new commits, trees, blobs and the tag, not the big file again.
    assert!(
        summary2.objects > 0 && summary2.objects < 15,
        "{} objects",
        summary2.objects
    );
    assert!(summary2.bytes < 4000, "{} bytes", summary2.bytes);
    let b2 = save(&dir, "2.bundle", &b2);

    // Snapshot 3: only a branch deleted → nothing to fetch, an empty pack.
    git(&repo, &["update-ref", "-d", "refs/pull/2/head"]);
    git(&repo, &["branch", "-q", "-D", "dev"]);
    let (_, refs3) = snapshot_refs(&repo);
    let Decision::Incremental {
        wants,
        haves,
        prerequisites,
    } = decide(Some(&refs2), &refs3, 1, 3)
    else {
        panic!("incremental expected")
    };
    assert!(wants.is_empty());
    assert!(build_request(&wants, &haves, &adv2.capabilities).is_err());
    let mut b3 = bundle::header(&refs3, &prerequisites).unwrap();
    b3.extend_from_slice(&empty_pack());
    let b3 = save(&dir, "3.bundle", &b3);

    // The next one would be full again (a full every 3).
    assert!(matches!(
        decide(Some(&refs3), &refs1, 2, 3),
        Decision::Full { .. }
    ));

    // Restore: the incrementals need their predecessors.
    let lonely = bare(&dir, "lonely.git");
    let out = git_output(&lonely, &["bundle", "verify", &b2], &[]);
    assert!(
        !out.status.success(),
        "an incremental must not verify without its base"
    );
    let restore = bare(&dir, "restore.git");
    git(&restore, &["bundle", "verify", "-q", &b1]);
    fetch_bundle(&restore, &b1, false);
    assert_eq!(source_refs(&restore), without_head(&refs1));
    git(&restore, &["bundle", "verify", "-q", &b2]);
    fetch_bundle(&restore, &b2, true);
    assert_eq!(source_refs(&restore), without_head(&refs2));
    git(&restore, &["fsck", "--full", "--no-dangling"]);
    git(&restore, &["bundle", "verify", "-q", &b3]);
    fetch_bundle(&restore, &b3, true);
    assert_eq!(source_refs(&restore), without_head(&refs3));
    assert_eq!(source_refs(&restore), source_refs(&repo));
    git(&restore, &["fsck", "--full"]);
    // And the content matches: same tree at every tip.
    for (name, oid) in &refs3 {
        if name != "HEAD" {
            assert_eq!(
                git_text(&restore, &["rev-parse", &format!("{oid}^{{tree}}")]),
                git_text(&repo, &["rev-parse", &format!("{oid}^{{tree}}")])
            );
        }
    }
}

/// The raw pack of a full fetch (no side-band), and the source repository.
fn real_pack(dir: &TempDir) -> (std::path::PathBuf, Vec<u8>) {
    let repo = make_source(dir);
    let (adv, selected) = snapshot_refs(&repo);
    let caps = adv
        .capabilities
        .without("side-band-64k")
        .without("side-band");
    let wants: Vec<Oid> = selected.values().copied().collect();
    let request = build_request(&wants, &[], &caps).unwrap();
    let (pack, _) = stream(
        &upload_pack(&repo, &request.body),
        false,
        &mut XorShift::new(3),
    )
    .unwrap();
    (repo, pack)
}

fn verify(pack: &[u8], rng: &mut XorShift) -> Result<PackSummary, PackError> {
    let mut v = PackVerifier::new();
    for chunk in rng.chunks(pack, 5000) {
        v.push(chunk)?;
    }
    v.finish()
}

fn reseal(pack: &mut Vec<u8>) {
    use sha1::{Digest, Sha1};
    pack.truncate(pack.len() - 20);
    let sha = Sha1::digest(&pack[..]);
    pack.extend_from_slice(&sha);
}

/// (offset, type, in-pack size) of every object, from `git verify-pack -v`.
fn object_layout(dir: &TempDir, pack: &[u8]) -> Vec<(usize, String, usize)> {
    let path = dir.join("layout.pack");
    std::fs::write(&path, pack).unwrap();
    let scratch = bare(dir, "layout.git");
    git(&scratch, &["index-pack", &path.to_string_lossy()]);
    let idx = dir.join("layout.idx");
    git_text(&scratch, &["verify-pack", "-v", &idx.to_string_lossy()])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5 && f[0].len() == 40).then(|| {
                (
                    f[4].parse().unwrap(),
                    f[1].to_string(),
                    f[3].parse().unwrap(),
                )
            })
        })
        .collect()
}

#[test]
fn corruptions_of_a_real_pack_are_named() {
    let dir = TempDir::new("corrupt");
    let (_repo, pack) = real_pack(&dir);
    let mut rng = XorShift::new(5);
    let good = verify(&pack, &mut rng).unwrap();
    let layout = object_layout(&dir, &pack);
    assert_eq!(layout.len() as u32, good.objects);

    // Truncation anywhere.
    for cut in [
        0,
        3,
        11,
        12,
        13,
        100,
        pack.len() / 2,
        pack.len() - 21,
        pack.len() - 20,
        pack.len() - 1,
    ] {
        assert!(
            matches!(verify(&pack[..cut], &mut rng), Err(PackError::Truncated { offset, .. }) if offset == cut as u64),
            "cut at {cut}"
        );
    }
    // Signature, version, count.
    let mut bad = pack.clone();
    bad[1] = b'X';
    assert_eq!(verify(&bad, &mut rng), Err(PackError::BadSignature));
    let mut bad = pack.clone();
    bad[7] = 9;
    assert_eq!(
        verify(&bad, &mut rng),
        Err(PackError::UnsupportedVersion(9))
    );
    for declared in [good.objects - 1, good.objects + 1, good.objects + 1000] {
        let mut bad = pack.clone();
        bad[8..12].copy_from_slice(&declared.to_be_bytes());
        reseal(&mut bad);
        assert_eq!(
            verify(&bad, &mut rng),
            Err(PackError::ObjectCountMismatch {
                declared,
                found: good.objects
            })
        );
    }
    // An object's zlib data: a byte in the middle of the largest whole (non-delta) blob.
    let (offset, _, len) = layout
        .iter()
        .filter(|(_, t, _)| t == "blob")
        .max_by_key(|(_, _, len)| *len)
        .cloned()
        .unwrap();
    assert!(len > 1000);
    let mut bad = pack.clone();
    bad[offset + len / 2] ^= 0x40;
    match verify(&bad, &mut rng) {
        Err(PackError::CorruptObject { offset: o, .. })
        | Err(PackError::SizeMismatch { offset: o, .. }) => {
            assert_eq!(o, offset as u64)
        }
        other => panic!("{other:?}"),
    }
    // An object header: the type made invalid (5), or the size off by one.
    let (offset, _, _) = layout[layout.len() / 2].clone();
    let mut bad = pack.clone();
    bad[offset] = (bad[offset] & 0x8f) | 0x50;
    assert_eq!(
        verify(&bad, &mut rng),
        Err(PackError::BadObjectType {
            offset: offset as u64,
            type_code: 5
        })
    );
    let mut bad = pack.clone();
    bad[offset] ^= 0x01;
    assert!(
        matches!(verify(&bad, &mut rng), Err(PackError::SizeMismatch { offset: o, .. }) if o == offset as u64)
    );
    // The trailer, and trailing garbage.
    let mut bad = pack.clone();
    let at = bad.len() - 7;
    bad[at] ^= 0x80;
    assert!(matches!(
        verify(&bad, &mut rng),
        Err(PackError::ChecksumMismatch { .. })
    ));
    let mut bad = pack.clone();
    bad.extend_from_slice(b"\n");
    assert_eq!(
        verify(&bad, &mut rng),
        Err(PackError::TrailingData {
            offset: pack.len() as u64
        })
    );
}

#[test]
fn random_truncations_and_flips_never_panic_and_never_pass() {
    let dir = TempDir::new("fuzz");
    let repo = make_source(&dir);
    let (adv, selected) = snapshot_refs(&repo);
    let wants: Vec<Oid> = selected.values().copied().collect();
    let request = build_request(&wants, &[], &adv.capabilities).unwrap();
    let response = upload_pack(&repo, &request.body);
    let (pack, _) = stream(&response, true, &mut XorShift::new(1)).unwrap();
    let mut rng = XorShift::new(0xdead_beef);
    for round in 0..300 {
        // The whole side-band response, cut short: always an error.
        let cut = rng.below(response.len());
        assert!(
            stream(&response[..cut], true, &mut rng).is_err(),
            "round {round}: cut at {cut}"
        );
        // Any single bit flipped in the pack: always an error (the SHA-1 covers every byte).
        let mut bad = pack.clone();
        let at = rng.below(bad.len());
        bad[at] ^= 1 << rng.below(8);
        assert!(
            verify(&bad, &mut rng).is_err(),
            "round {round}: flip at {at}"
        );
        // Flips in the framed response: no panic (an `a`↔`A` flip in a length is harmless).
        let mut bad = response.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bad.len());
            bad[at] ^= 1 << rng.below(8);
        }
        let _ = stream(&bad, true, &mut rng);
        // Random bytes spliced into the pack.
        let mut bad = pack.clone();
        let at = rng.below(bad.len());
        let junk: Vec<u8> = (0..1 + rng.below(40))
            .map(|_| rng.below(256) as u8)
            .collect();
        bad.splice(at..at, junk);
        assert!(
            verify(&bad, &mut rng).is_err(),
            "round {round}: junk at {at}"
        );
    }
}

#[test]
fn server_errors_reach_the_caller() {
    let dir = TempDir::new("errors");
    let repo = make_source(&dir);
    let (adv, _) = snapshot_refs(&repo);
    // A want the server does not advertise: git answers `ERR upload-pack: not our ref`.
    let bogus = Oid::from_bytes([0x42; 20]);
    let request = build_request(&[bogus], &[], &adv.capabilities).unwrap();
    let out = git_output(
        &repo,
        &["upload-pack", "--stateless-rpc", "."],
        &request.body,
    );
    let mut parser = ResponseParser::new(true);
    match parser.push(&out.stdout) {
        Err(ResponseError::Server(msg)) => assert!(msg.contains("not our ref"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A fatal side-band message after some pack data.
    let mut cut = Vec::new();
    write_pkt(&mut cut, b"NAK\n").unwrap();
    write_pkt(&mut cut, b"\x01PACK\0\0\0\x02").unwrap();
    write_pkt(&mut cut, b"\x03error: pack-objects died of signal 9\n").unwrap();
    write_flush(&mut cut);
    let err = stream(&cut, true, &mut XorShift::new(8)).unwrap_err();
    assert_eq!(
        err,
        "response: the git server failed: error: pack-objects died of signal 9"
    );
}

/// Throughput of `ResponseParser` + `PackVerifier` on a real repository's full fetch.
/// `ONECODE_BENCH_REPO=/path/to/repo cargo test --release --lib backup::git_tests::measure_throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn measure_throughput() {
    let Ok(repo) = std::env::var("ONECODE_BENCH_REPO") else {
        eprintln!("set ONECODE_BENCH_REPO to a git repository");
        return;
    };
    let repo = Path::new(&repo);
    let (adv, selected) = snapshot_refs(repo);
    let wants: Vec<Oid> = selected.values().copied().collect();
    let request = build_request(&wants, &[], &adv.capabilities).unwrap();
    let response = upload_pack(repo, &request.body);
    let mut best = f64::MAX;
    let mut summary = None;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let mut parser = ResponseParser::new(true);
        let mut verifier = PackVerifier::new();
        for chunk in response.chunks(64 * 1024) {
            for piece in parser.push(chunk).unwrap() {
                verifier.push(piece).unwrap();
            }
        }
        parser.finish().unwrap();
        summary = Some(verifier.finish().unwrap());
        best = best.min(start.elapsed().as_secs_f64());
    }
    let summary = summary.unwrap();
    let mib = summary.bytes as f64 / (1024.0 * 1024.0);
    // The share of the SHA-1 alone.
    let (pack, _) = stream(&response, true, &mut XorShift::new(1)).unwrap();
    let mut sha_best = f64::MAX;
    for _ in 0..5 {
        use sha1::{Digest, Sha1};
        let start = std::time::Instant::now();
        std::hint::black_box(Sha1::digest(std::hint::black_box(&pack[..])));
        sha_best = sha_best.min(start.elapsed().as_secs_f64());
    }
    eprintln!(
        "{} objects, {:.2} MiB pack: best {:.1} ms, {:.0} MiB/s (SHA-1 alone {:.1} ms)",
        summary.objects,
        mib,
        best * 1000.0,
        mib / best,
        sha_best * 1000.0
    );
}
