//! onecode-edge: the edge gateway between an MSP's client organizations on GitHub, GitLab and
//! Azure DevOps and the OneCode backup platform, compiled to wasm32 for Cloudflare Workers.
//!
//! Where each flow lives:
//! - connect (`POST /v1/connect/github`): `edge::connect::github`, tokens in [`auth::state_token`];
//! - setup callback (`GET /github/setup`): `edge::connect::github`, inputs/outcomes in [`github::setup`],
//!   pages in [`api::pages`];
//! - enumeration of an installation's repositories (callback, then the sync queue):
//!   `edge::enumerate`, SQL in [`sql`], budget in [`budget`];
//! - App authentication: [`github::app_jwt`] (claims, PEM) and `edge::platform` (WebCrypto);
//! - GitHub API shapes, pagination and retries: [`github`], fetching in `edge::providers::github_client`;
//! - webhooks (`POST /github/webhooks`): `edge::webhooks`, signatures in [`github::webhook_signature`],
//!   typed events in [`github::webhook_events`], the push rules in [`github::dependency_files`];
//! - the organization API (`/v1/orgs…`): `edge::orgs`, settings and filters in
//!   [`api::org_settings`]; sync, disconnect, fan-out and job dispatch in `edge::sync`;
//! - queue consumers and cron triggers: `edge::queues`;
//! - GitLab / Azure DevOps connect (`POST /v1/connect/{gitlab,azure-devops}`, the OAuth
//!   callbacks): `edge::connect::oauth`; their API shapes and URLs in [`oauth::gitlab`] and
//!   [`oauth::azure_devops`], fetching in `edge::providers::provider_api`; what all providers share (names, the
//!   repository record, connection ids) in [`provider`]; tokens stored, refreshed and re-sealed
//!   in `edge::providers::provider_tokens`; outbound retries for every provider in `edge::providers::outbound`;
//! - PKCE (RFC 7636, `S256`) for the GitLab and Entra authorizations: [`oauth::pkce`];
//! - OAuth token requests, responses and expiry (GitLab, Entra): [`oauth`];
//! - provider tokens at rest in D1 (AES-256-GCM under `TOKEN_KEYS`): [`auth::token_crypto`];
//! - routes and the OpenAPI document: [`api::routes`] (`openapi.json`);
//! - portal authentication: [`auth::portal_auth`]; errors: [`api::problem`]; settings: [`config`];
//! - queue messages: [`messages`]; time: [`time`];
//! - backups: the git protocol, bundles, packs and retention planning in [`backup`], the
//!   executor and retention at the edge in `edge::backup::executor` and `edge::backup::retention`; where a
//!   credential may be sent: [`auth::credential_origins`];
//! - hostile input for every parser of outside bytes, run as property tests and by `cargo fuzz`:
//!   `fuzz` (compiled for tests and with the `fuzzing` feature only);
//! - access audit and posture: reading, diffing, webhooks, the rules table and the CSV report in
//!   [`access`]; snapshots through the sync queue, access webhooks and the `/v1/orgs/{id}/access`,
//!   `…/posture` and `/v1/posture` routes in `edge::access`.
//!
//! Folders by concept: [`github`] (the App, its API, install callback, webhooks), [`oauth`]
//! (GitLab and Azure DevOps, PKCE, token responses), [`auth`] (state tokens, portal JWTs, tokens
//! at rest, credential origins), [`api`] (routes, problems, settings, pages), [`backup`] (git),
//! [`access`] (access audit and compliance posture).
//!
//! Everything outside `edge` is plain Rust tested natively with `cargo test`; `edge` holds the
//! Workers bindings (KV, D1, Queues, fetch, WebCrypto) and is compiled for wasm32 only.

pub mod access;
pub mod api;
pub mod auth;
pub mod backup;
pub mod budget;
pub mod config;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
pub mod github;
pub mod messages;
pub mod oauth;
pub mod provider;
pub mod sql;
pub mod time;

#[cfg(target_arch = "wasm32")]
mod edge;
