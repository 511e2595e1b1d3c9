//! Access audit and compliance posture: who can reach an organization's code, how its default
//! branches are protected, and what that means for its posture (issue #10). Plain Rust: the edge
//! fetches the providers' answers and reads/writes D1, everything it decides lives here.
//!
//! - [`model`]: the data ([`model::AccessState`] per org, stored as JSON; [`model::AccessEvent`]);
//! - [`github`]: GitHub REST answers → members, settings, invitations, branch protection
//!   (classic protection and rulesets, [`github::combine`]d);
//! - [`gitlab`]: GitLab group members, the group's 2FA requirement, protected branches and
//!   merge request approval rules;
//! - [`azure_devops`]: Azure DevOps user entitlements (paged) and branch policies;
//! - [`diff`]: [`diff::reconcile`], a freshly read state against the stored one → events, and
//!   the `since` of everything carried over;
//! - [`webhook`]: [`webhook::apply`], GitHub webhooks that announce access changes applied to the
//!   stored state as they happen (the next sync finds nothing new);
//! - [`posture`]: the rules table ([`posture::RULES`]), [`posture::findings`] and their
//!   [`posture::counts`];
//! - [`report`]: the portfolio (one row per org) as CSV;
//! - [`reading`]: reading an org's state in bounded steps: which URL next, each answer folded in.
//!
//! Every parser answers [`ParseError`] when the provider's JSON is not the shape it documents.

pub mod azure_devops;
pub mod diff;
pub mod github;
pub mod gitlab;
pub mod model;
pub mod posture;
pub mod reading;
pub mod report;
pub mod webhook;

use std::fmt;

/// A provider's answer that is not the JSON shape its documentation describes; the message
/// names the answer and serde's reason with its line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unexpected provider answer: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses `json` as `T`; on failure, a [`ParseError`] naming `what` and serde's reason.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    json: &str,
    what: &str,
) -> Result<T, ParseError> {
    serde_json::from_str(json).map_err(|e| ParseError(format!("{what}: {e}")))
}

/// [`parse`] for an answer that must be a JSON object (serde would also take an array for a
/// struct whose members all have defaults).
pub(crate) fn parse_object<T: serde::de::DeserializeOwned>(
    json: &str,
    what: &str,
) -> Result<T, ParseError> {
    let value: serde_json::Value = parse(json, what)?;
    if !value.is_object() {
        return Err(ParseError(format!("{what}: expected a JSON object")));
    }
    serde_json::from_value(value).map_err(|e| ParseError(format!("{what}: {e}")))
}

/// For `#[serde(deserialize_with)]`: a member that may be absent (with `#[serde(default)]`) or
/// `null` reads as its type's default (an empty list, `false`).
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
