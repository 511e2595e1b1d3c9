//! Building blocks for git backups over git's smart HTTP protocol (v0/v1, stateless RPC, as
//! GitHub, GitLab and Azure DevOps serve it), stored as git bundles (v2), streamed.
//!
//! Pure Rust, no platform types: the edge feeds response-body chunks of any size into these
//! state machines and forwards the bytes they hand back to an R2 multipart upload. Memory stays
//! bounded whatever the pack size: the pack is never accumulated.
//!
//! A snapshot, step by step:
//! 1. `GET {url}/info/refs?service=git-upload-pack` → [`refs::parse_advertisement`], then
//!    [`refs::select_refs`] (branches, tags, PR/MR heads, `HEAD`);
//! 2. [`plan::decide`] against the previous `ok` snapshot's refs: unchanged, empty, full or
//!    incremental (wants, haves, prerequisites);
//! 3. [`request::build_request`] → `POST {url}/git-upload-pack` with that body (skipped for an
//!    incremental with no wants: its pack is [`pack::empty_pack`]);
//! 4. upload [`bundle::header`] first, then for each body chunk the pack bytes
//!    [`response::ResponseParser::push`] returns, each also pushed into a
//!    [`pack::PackVerifier`];
//! 5. at the end `ResponseParser::finish` and `PackVerifier::finish`: only then is the snapshot
//!    `ok` (object count, size and SHA-1 recorded); any error aborts the multipart upload.
//!
//! Modules, one concept each:
//! - [`oid`]: object ids (40 hex digits);
//! - [`pktline`]: pkt-line encoding and two incremental decoders (buffered, zero-copy);
//! - [`refs`]: the ref advertisement, ref-name checks and the refs a backup keeps;
//! - [`request`]: the upload-pack request body and the capabilities asked for;
//! - [`response`]: the upload-pack answer: negotiation, side-band demultiplexing, raw packs;
//! - [`pack`]: the streaming pack verifier and the empty pack;
//! - [`bundle`]: bundle v2 headers, written and parsed;
//! - [`plan`]: full/incremental decisions, restore chains, retention.
//!
//! None of them panics on any input: outside bytes are never indexed unchecked, and every
//! failure is a distinct error value with a readable message.

pub mod bundle;
pub mod oid;
pub mod pack;
pub mod pktline;
pub mod plan;
pub mod refs;
pub mod request;
pub mod response;

#[cfg(test)]
mod git_tests;
#[cfg(test)]
pub(crate) mod test_git;
