//! Hostile input for every parser that reads bytes from outside (issue #11): HTTP headers and
//! bodies from GitHub, GitLab, Microsoft, the portal and browsers, and git streams. In wasm a
//! panic resets the isolate and hangs the request, so none of these may panic on any input.
//!
//! One entry point per parser family, `fn(&[u8])`, reads what to build from the bytes (an
//! [`Input`]), hands it to the parsers, and checks that nothing panics and that the properties
//! its documentation lists hold. The same entry points run two ways:
//!
//! - as property tests in `cargo test` (each module's `tests`, `proptest`), for a fixed number
//!   of cases from a fixed seed, so CI runs them the same way every time (`PROPTEST_CASES` and
//!   `PROPTEST_RNG_SEED` change that, see [`tests::config`]);
//! - under `cargo fuzz` (the `fuzz/` crate, nightly only, `scripts/fuzz`), coverage-guided, one
//!   target per entry point with the same name, built with the `fuzzing` feature.
//!
//! Raw bytes alone rarely get past a parser's first check, so each entry point also builds
//! well-formed input from the bytes (signed tokens, valid pkt-line streams, packs, bundles,
//! JSON in the shape each provider answers) and then makes it hostile: corrupted tails, one
//! character changed, huge lengths, deep nesting, non-UTF-8, chunk boundaries anywhere.
//!
//! | target | parsers |
//! |---|---|
//! | [`webhooks::webhook_signature`] | `X-Hub-Signature-256`, `GITHUB_WEBHOOK_SECRET` |
//! | [`webhooks::webhook_payload`] | every webhook payload: [`crate::github::webhook_events::parse`], [`crate::access::webhook::apply`] |
//! | [`auth::state_token`] | connect state tokens |
//! | [`auth::portal_jwt`] | the portal's `Authorization: Bearer <JWT>` |
//! | [`auth::token_envelope`] | sealed provider tokens, `TOKEN_KEYS` |
//! | [`providers::provider_headers`] | `Link`, `retry-after` / `x-ratelimit-*`, `x-ms-continuationtoken` |
//! | [`providers::oauth_response`] | OAuth token and error responses, the callback's `error` |
//! | [`providers::provider_answer`] | GitHub, GitLab and Azure DevOps JSON answers (API, access audit) |
//! | [`git::pkt_line`] | pkt-lines: both decoders, the encoder |
//! | [`git::ref_advertisement`] | `info/refs` advertisements, capabilities, the upload-pack request |
//! | [`git::upload_pack_response`] | upload-pack answers: negotiation, side-band |
//! | [`git::pack`] | pack headers, objects and trailers: the streaming verifier |
//! | [`git::bundle`] | bundle v2 headers |
//! | [`requests::portal_request`] | the portal's and browsers' requests: settings bodies, callback queries, paths, query parameters, `Content-Type`, GitLab `base_url` |

pub mod auth;
pub mod git;
pub mod providers;
pub mod requests;
pub mod webhooks;

use serde_json::{Map, Number, Value};

/// A fuzz entry point: takes any bytes, panics only when a parser does or a property fails.
pub type Target = fn(&[u8]);

/// Every entry point by name: the `fuzz/` crate has one target of each name (a test checks it).
pub const TARGETS: &[(&str, Target)] = &[
    ("webhook_signature", webhooks::webhook_signature),
    ("webhook_payload", webhooks::webhook_payload),
    ("state_token", auth::state_token),
    ("portal_jwt", auth::portal_jwt),
    ("token_envelope", auth::token_envelope),
    ("provider_headers", providers::provider_headers),
    ("oauth_response", providers::oauth_response),
    ("provider_answer", providers::provider_answer),
    ("pkt_line", git::pkt_line),
    ("ref_advertisement", git::ref_advertisement),
    ("upload_pack_response", git::upload_pack_response),
    ("pack", git::pack),
    ("bundle", git::bundle),
    ("portal_request", requests::portal_request),
];

/// Reads choices, numbers, text and JSON off the front of fuzz input. Once the bytes run out
/// every read answers zero, empty or `null`, so any input, even an empty one, describes a case.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

/// Characters that break parsers: separators and quotes of the formats read here, whitespace,
/// control characters, multi-byte and invisible ones.
const NASTY_CHARS: &[char] = &[
    '"', '\\', '\'', '<', '>', ';', ',', '=', '.', '/', ':', '?', '#', '&', '%', '*', '[', ']',
    '{', '}', '@', '^', '~', ' ', '\t', '\n', '\r', '\0', '\u{7f}', 'é', 'ß', '💥', '\u{202e}',
    '\u{feff}', '\u{fffd}', '\u{85}',
];

/// Member names of the JSON the gateway reads (webhooks, GitHub, GitLab, Azure DevOps, OAuth,
/// portal bodies): generated objects mostly use these, so they reach past "missing field".
const KEYS: &[&str] = &[
    "id",
    "login",
    "name",
    "full_name",
    "type",
    "action",
    "installation",
    "account",
    "requester",
    "repository",
    "repositories",
    "repositories_added",
    "repositories_removed",
    "ref",
    "after",
    "deleted",
    "commits",
    "added",
    "removed",
    "modified",
    "membership",
    "member",
    "user",
    "role",
    "invitation",
    "email",
    "changes",
    "permission",
    "role_name",
    "to",
    "team",
    "slug",
    "private",
    "default_branch",
    "html_url",
    "archived",
    "visibility",
    "clone_url",
    "avatar_url",
    "suspended_at",
    "token",
    "access_token",
    "refresh_token",
    "token_type",
    "expires_in",
    "scope",
    "error",
    "error_description",
    "installations",
    "total_count",
    "parameters",
    "ruleset_id",
    "required_approving_review_count",
    "required_status_checks",
    "context",
    "contexts",
    "checks",
    "enforce_admins",
    "enabled",
    "allow_force_pushes",
    "allow_deletions",
    "required_pull_request_reviews",
    "two_factor_requirement_enabled",
    "default_repository_permission",
    "members_can_create_public_repositories",
    "username",
    "access_level",
    "state",
    "membership_state",
    "push_access_levels",
    "allow_force_push",
    "user_id",
    "group_id",
    "deploy_key_id",
    "rule_type",
    "approvals_required",
    "protected_branches",
    "applies_to_all_protected_branches",
    "require_two_factor_authentication",
    "members",
    "continuationToken",
    "principalName",
    "mailAddress",
    "accessLevel",
    "accountLicenseType",
    "licensingSource",
    "status",
    "value",
    "isEnabled",
    "isBlocking",
    "isDeleted",
    "settings",
    "refName",
    "matchKind",
    "repositoryId",
    "minimumApproverCount",
    "filenamePatterns",
    "displayName",
    "buildDefinitionId",
    "statusGenre",
    "statusName",
    "path_with_namespace",
    "web_url",
    "http_url_to_repo",
    "full_path",
    "accountId",
    "accountName",
    "defaultBranch",
    "webUrl",
    "isDisabled",
    "remoteUrl",
    "client",
    "backup_schedule",
    "backup_hour",
    "retention_days",
    "full_every",
    "tid",
    "sub",
    "iat",
    "exp",
    "alg",
];

/// String values the parsers branch on.
const WORDS: &[&str] = &[
    "",
    "created",
    "deleted",
    "suspend",
    "unsuspend",
    "added",
    "removed",
    "edited",
    "renamed",
    "member_added",
    "member_removed",
    "member_invited",
    "admin",
    "member",
    "direct_member",
    "pull_request",
    "required_status_checks",
    "non_fast_forward",
    "deletion",
    "active",
    "awaiting",
    "blocked",
    "banned",
    "disabled",
    "regular",
    "any_approver",
    "code_owner",
    "DefaultBranch",
    "Prefix",
    "Exact",
    "refs/heads/main",
    "main",
    "*",
    "ma*",
    "Bearer",
    "bearer",
    "MAC",
    "invalid_grant",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "public",
    "private",
    "internal",
    "Organization",
    "User",
    "express",
    "msdn",
    "stakeholder",
    "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd",
    "0609b952-1397-4640-95ec-e00a01b2c241",
    "fd2167ab-b0be-447a-8ec8-39368250530e",
    "cbdc66da-9728-4af8-aada-9a5a32e4a226",
    "acme/widgets",
    "acme",
    "package.json",
    "src/Cargo.lock",
    ".github/workflows/ci.yml",
    "https://github.com/acme/widgets.git",
    "https://acme@dev.azure.com/acme/p/_git/r",
    "daily",
    "weekly",
    "off",
    "HS256",
    "none",
    "0000000000000000000000000000000000000000",
    "\u{0}",
    "💥",
];

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// True one time in `n`: the rare, hostile branch (never once the input is used up).
    pub fn one_in(&mut self, n: u8) -> bool {
        self.byte() % n == n - 1
    }

    /// Up to `n` bytes (fewer when the input runs out).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// `N` bytes, zero-filled when the input runs out.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let head = self.take(N);
        out[..head.len()].copy_from_slice(head);
        out
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    pub fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.array())
    }

    /// `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 => 0,
            1..=256 => usize::from(self.byte()) % n,
            _ => (self.u32() as usize) % n,
        }
    }

    pub fn pick<T: Clone>(&mut self, options: &[T]) -> T {
        options[self.below(options.len())].clone()
    }

    /// Up to `max` bytes, the length read first.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max.saturating_add(1));
        self.take(n)
    }

    /// Exactly `len` bytes: the input's next bytes, repeated to length (zeros once it is used
    /// up), so a few bytes of input can describe a payload of any size.
    pub fn fill(&mut self, len: usize) -> Vec<u8> {
        let seed = self.bytes(64);
        if seed.is_empty() {
            return vec![0; len];
        }
        seed.iter().copied().cycle().take(len).collect()
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    /// A Unix time a real clock could give (1970 to 2106).
    pub fn clock(&mut self) -> i64 {
        i64::from(self.u32())
    }

    /// Text of at most `max` characters: raw bytes decoded lossily, or a mix of letters and
    /// [`NASTY_CHARS`], or one of [`WORDS`].
    pub fn text(&mut self, max: usize) -> String {
        match self.byte() % 4 {
            0 => {
                let raw = self.bytes(max);
                String::from_utf8_lossy(raw).chars().take(max).collect()
            }
            1 => self.pick(WORDS).chars().take(max).collect(),
            _ => {
                let n = self.below(max.saturating_add(1));
                (0..n)
                    .map(|_| match self.byte() {
                        b @ 0..=127 if b.is_ascii_alphanumeric() => char::from(b),
                        b @ 0..=191 => NASTY_CHARS[usize::from(b) % NASTY_CHARS.len()],
                        b => char::from(b'a' + b % 26),
                    })
                    .collect()
            }
        }
    }

    /// [`Input::text`] cut to at most `max` bytes (on a character boundary).
    pub fn text_bytes(&mut self, max: usize) -> String {
        let mut text = self.text(max);
        while text.len() > max {
            text.pop();
        }
        text
    }

    /// `bytes` cut into chunks of sizes read from the input: how a response body arrives.
    pub fn chunks<'b>(&mut self, mut bytes: &'b [u8]) -> Vec<&'b [u8]> {
        let sizes = [1, 2, 3, 4, 5, 7, 16, 19, 20, 21, 64, 1000, 4096, 65536];
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let size = if self.is_empty() {
                bytes.len()
            } else {
                self.pick(&sizes)
            };
            let (chunk, rest) = bytes.split_at(size.min(bytes.len()));
            out.push(chunk);
            bytes = rest;
        }
        out
    }

    /// A JSON number, often one at the edge of what a field's type holds.
    pub fn number(&mut self) -> Value {
        let edge: &[i128] = &[
            0,
            1,
            -1,
            20,
            50,
            60,
            600,
            3600,
            u32::MAX as i128,
            u32::MAX as i128 + 1,
            i64::MAX as i128,
            i64::MIN as i128,
            u64::MAX as i128,
            (1 << 53) + 1,
        ];
        match self.byte() % 4 {
            0 => {
                let n = self.pick(edge);
                u64::try_from(n)
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(n as i64))
            }
            1 => Value::from(self.u64()),
            2 => Value::from(self.i64()),
            _ => {
                let f = f64::from_bits(self.u64());
                Number::from_f64(f)
                    .or_else(|| Number::from_f64(self.pick(&[0.5, -0.0, 1e308, -1e-300])))
                    .map_or(Value::Null, Value::Number)
            }
        }
    }

    /// Any JSON value up to `depth` levels of arrays and objects, objects mostly with the
    /// member names and string values the gateway reads.
    pub fn json(&mut self, depth: u32) -> Value {
        match self.byte() % 11 {
            0 => Value::Null,
            1 => Value::Bool(self.bool()),
            2 => self.number(),
            3 | 4 => Value::String(self.text(40)),
            5 | 6 if depth > 0 => {
                let n = self.below(6);
                Value::Array((0..n).map(|_| self.json(depth - 1)).collect())
            }
            7..=10 if depth > 0 => {
                let n = self.below(8);
                let mut map = Map::new();
                for _ in 0..n {
                    let key = if self.one_in(8) {
                        self.text(20)
                    } else {
                        self.pick(KEYS).to_string()
                    };
                    let value = self.json(depth - 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            _ => Value::String(self.pick(WORDS).to_string()),
        }
    }

    /// `realistic` most of the time, otherwise any JSON value in its place.
    pub fn or_junk(&mut self, realistic: Value) -> Value {
        if self.one_in(5) {
            self.json(2)
        } else {
            realistic
        }
    }

    /// An id as providers send them: mostly a plausible positive integer, sometimes any number.
    pub fn id(&mut self) -> Value {
        if self.one_in(8) {
            self.number()
        } else {
            Value::from(1 + u64::from(self.u32()))
        }
    }

    /// A count (reviews, access level, approvals): mostly small, sometimes any number.
    pub fn count(&mut self) -> Value {
        if self.one_in(8) {
            self.number()
        } else {
            Value::from(self.below(70))
        }
    }

    /// `template` with, at any depth, now and then a member left out or replaced by any JSON
    /// value: an answer of the documented shape, made hostile.
    pub fn vary(&mut self, template: Value) -> Value {
        match template {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter_map(|(k, v)| match self.byte() % 16 {
                        15 => None,
                        14 => Some((k, self.json(1))),
                        _ => Some((k, self.vary(v))),
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.vary(v)).collect()),
            other => other,
        }
    }

    /// A JSON array of `0..max` items from `item`.
    pub fn list(&mut self, max: usize, mut item: impl FnMut(&mut Input<'a>) -> Value) -> Value {
        let n = self.below(max + 1);
        Value::Array((0..n).map(|_| item(self)).collect())
    }

    /// JSON nested `depth` levels deep (arrays or objects), closed or cut off.
    pub fn deep_json(&mut self, depth: usize) -> Vec<u8> {
        let (open, close): (&[u8], &[u8]) = if self.bool() {
            (b"[", b"]")
        } else {
            (b"{\"a\":", b"}")
        };
        let mut out = open.repeat(depth);
        out.extend_from_slice(b"1");
        if self.bool() {
            out.extend_from_slice(&close.repeat(depth));
        }
        out
    }
}

/// `text` with one edit read from the input: a character replaced, removed or inserted, the
/// text cut short or extended. May come back unchanged (the caller compares).
pub fn tamper(input: &mut Input<'_>, text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = input.below(chars.len() + 1);
    let c = match input.byte() % 3 {
        0 => char::from(b'A' + input.byte() % 26),
        1 => char::from(b'0' + input.byte() % 10),
        _ => input.pick(NASTY_CHARS),
    };
    let mut out = chars.clone();
    match input.byte() % 5 {
        0 if at < out.len() => out[at] = c,
        1 if at < out.len() => {
            out.remove(at);
        }
        2 => out.insert(at, c),
        3 => out.truncate(at),
        _ => out.push(c),
    }
    out.into_iter().collect()
}

/// `bytes` with one edit read from the input: a bit flipped, a byte removed or inserted, cut
/// short or extended. May come back unchanged.
pub fn tamper_bytes(input: &mut Input<'_>, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = input.below(out.len() + 1);
    let b = input.byte();
    match input.byte() % 5 {
        0 if at < out.len() => out[at] ^= 1 << (b % 8),
        1 if at < out.len() => {
            out.remove(at);
        }
        2 => out.insert(at, b),
        3 => out.truncate(at),
        _ => out.push(b),
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    /// The seed of every property test unless `PROPTEST_RNG_SEED` names another: CI runs the
    /// same cases every time. Explore with, e.g.,
    /// `PROPTEST_RNG_SEED=$RANDOM PROPTEST_CASES=20000 cargo test --lib fuzz::`.
    const SEED: u64 = 0x11_f022;

    /// `cases` cases from the fixed seed, unless `PROPTEST_CASES` / `PROPTEST_RNG_SEED` say
    /// otherwise. Failures are not written to files: a crash input becomes a plain `#[test]`.
    pub(crate) fn config(cases: u32) -> Config {
        let env = Config::default();
        let set = |name: &str| std::env::var_os(name).is_some();
        Config {
            cases: if set("PROPTEST_CASES") {
                env.cases
            } else {
                cases
            },
            rng_seed: if set("PROPTEST_RNG_SEED") {
                env.rng_seed
            } else {
                RngSeed::Fixed(SEED)
            },
            failure_persistence: None,
            ..env
        }
    }

    /// Fuzz input of up to `max` bytes.
    pub(crate) fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(any::<u8>(), 0..max)
    }

    #[test]
    fn every_target_has_a_cargo_fuzz_target_of_its_name() {
        let root = env!("CARGO_MANIFEST_DIR");
        let manifest = std::fs::read_to_string(format!("{root}/fuzz/Cargo.toml")).unwrap();
        for (name, _) in super::TARGETS {
            let path = format!("{root}/fuzz/fuzz_targets/{name}.rs");
            let source = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path}"));
            assert!(
                source.contains(&format!("::{name}(")),
                "{path} calls another entry point"
            );
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "fuzz/Cargo.toml has no [[bin]] {name}"
            );
        }
        let files = std::fs::read_dir(format!("{root}/fuzz/fuzz_targets")).unwrap();
        assert_eq!(
            files.count(),
            super::TARGETS.len(),
            "a target not in TARGETS"
        );
    }

    #[test]
    fn empty_and_exhausted_input_describe_a_case() {
        for (_, target) in super::TARGETS {
            target(&[]);
            target(&[0xff; 3]);
        }
    }
}
