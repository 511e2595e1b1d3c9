//! What the portal and browsers send the gateway besides tokens: paths, query parameters,
//! `Content-Type`, the settings body, the install callback's query and a GitLab `base_url`.

use super::Input;
use crate::api::org_settings::{self, SettingsChange, SCHEDULES, STATUSES};
use crate::api::problem::require_json;
use crate::api::routes::{self, Resolved};
use crate::github::setup::{self, Refusal, SetupAction, MAX_CODE_LEN};
use crate::oauth::gitlab;
use crate::time;
use serde_json::{Map, Value};

const PATHS: &[&str] = &[
    "/health",
    "/v1/orgs",
    "/v1/orgs/",
    "/v1/orgs/o1",
    "/v1/orgs/o1/repos/r1/snapshots",
    "/v1/orgs//sync",
    "/v1/snapshots/s1/bundle",
    "/github/setup",
    "/connect/github/confirm",
    "//",
    "",
];

const SETTINGS: &[&str] = &[
    "client",
    "backup_schedule",
    "backup_hour",
    "retention_days",
    "full_every",
];

fn query(input: &mut Input<'_>, names: &[&str]) -> Vec<(String, String)> {
    (0..input.below(5))
        .map(|_| {
            let name = if input.one_in(4) {
                input.text(12)
            } else {
                input.pick(names).to_string()
            };
            let value = if input.bool() {
                input.i64().to_string()
            } else {
                input.text(300)
            };
            (name, value)
        })
        .collect()
}

/// One of the request parsers, chosen by the input:
///
/// - [`org_settings::parse_change`] (`PATCH /v1/orgs/{id}`) on any body and on objects of the
///   settings with any values: what it accepts is in range (hour 0-23, retention 1-3650 days,
///   full every 1-100, a known schedule, a client of 1-128 printable characters);
/// - [`setup::parse_params`] (`GET /github/setup`) on any query: what it accepts has a state,
///   an installation id above 0 for `install` / `update`, and a usable code only when it is
///   1-256 visible ASCII characters; [`Refusal::from_code`] reads back every code;
/// - [`routes::resolve`] on any method and path: a route found takes its ids from non-empty
///   path segments;
/// - [`org_settings::page`] and [`org_settings::filter`] on any query: a limit of 1-100, a
///   filter value from its list;
/// - [`require_json`] on any `Content-Type`;
/// - [`time::parse_rfc3339`] (`since=`) on any text: every time [`time::rfc3339`] writes reads
///   back the same;
/// - [`gitlab::normalize_instance`] and [`gitlab::configured_instance`] on any `base_url`: an
///   instance URL is http(s) with a host and no credentials, query or fragment, and normalizing
///   it again changes nothing.
pub fn portal_request(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 7 {
        0 => settings_body(&mut input),
        1 => setup_query(&mut input),
        2 => {
            let method = input.pick(&["GET", "get", "POST", "PATCH", "DELETE", ""]);
            let path = if input.bool() {
                input.pick(PATHS).to_string()
            } else {
                format!("/{}", input.text(60))
            };
            if let Resolved::Found(_, id, sub) = routes::resolve(method, &path) {
                for segment in id.into_iter().chain(sub) {
                    assert!(!segment.is_empty() && !segment.contains('/'));
                    assert!(path.split('/').any(|s| s == segment));
                }
            }
        }
        3 => {
            let q = query(&mut input, &["limit", "cursor", "status", "provider"]);
            if let Ok((limit, _)) = org_settings::page(&q) {
                assert!((1..=100).contains(&limit));
            }
            if let Ok(Some(status)) = org_settings::filter(&q, "status", &STATUSES) {
                assert!(STATUSES.contains(&status));
            }
        }
        4 => {
            let content_type = input.bool().then(|| input.text(60));
            let _ = require_json(content_type.as_deref());
        }
        5 => {
            let _ = time::parse_rfc3339(&input.text(60));
            // Years 0 to 9999, which RFC 3339 can write.
            let t = input.i64().rem_euclid(253_402_300_800 + 62_167_219_200) - 62_167_219_200;
            assert_eq!(time::parse_rfc3339(&time::rfc3339(t)), Some(t));
        }
        _ => {
            let base_url = if input.bool() {
                format!(
                    "{}{}",
                    input.pick(&["https://", "http://", "HTTPS://", "ftp://", " https://", ""]),
                    input.text(60)
                )
            } else {
                input.text(80)
            };
            if let Ok(url) = gitlab::normalize_instance(&base_url) {
                assert!(matches!(url.scheme(), "http" | "https") && url.host().is_some());
                assert!(url.username().is_empty() && url.password().is_none());
                assert!(url.query().is_none() && url.fragment().is_none());
                assert_eq!(
                    gitlab::normalize_instance(url.as_str()),
                    Ok(url.clone()),
                    "{base_url:?}"
                );
                let instances = [crate::config::GitLabInstance {
                    url: url.clone(),
                    client_id: "id".into(),
                    client_secret: None,
                }];
                let found = gitlab::configured_instance(Some(&base_url), &instances);
                assert!(found.is_ok(), "{base_url:?} is not its own instance");
            }
        }
    }
}

fn settings_body(input: &mut Input<'_>) {
    let body = match input.byte() % 4 {
        0 => input.bytes(300).to_vec(),
        1 => input.json(2).to_string().into_bytes(),
        _ => {
            let mut fields = Map::new();
            for _ in 0..input.below(4) {
                let name = input.pick(SETTINGS).to_string();
                let realistic = match name.as_str() {
                    "client" => Value::String(input.text(140)),
                    "backup_schedule" => {
                        Value::String(input.pick(&["daily", "weekly", "off", "hourly"]).into())
                    }
                    _ => input.number(),
                };
                let value = input.or_junk(realistic);
                fields.insert(name, value);
            }
            Value::Object(fields).to_string().into_bytes()
        }
    };
    let Ok(change) = org_settings::parse_change(&body) else {
        return;
    };
    assert_ne!(change, SettingsChange::default());
    if let Some(Some(client)) = &change.client {
        assert!(!client.is_empty() && client.chars().count() <= 128);
        assert!(!client.chars().any(char::is_control));
    }
    if let Some(schedule) = &change.backup_schedule {
        assert!(SCHEDULES.contains(&schedule.as_str()));
    }
    assert!(change.backup_hour.is_none_or(|h| (0..=23).contains(&h)));
    assert!(change
        .retention_days
        .is_none_or(|d| (1..=3650).contains(&d)));
    assert!(change.full_every.is_none_or(|n| (1..=100).contains(&n)));
}

fn setup_query(input: &mut Input<'_>) {
    let pairs = query(input, &["installation_id", "setup_action", "state", "code"]);
    let action = input.pick(&["install", "update", "request", "delete"]);
    let mut pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if input.bool() {
        pairs.push(("setup_action", action));
    }
    if let Ok(params) = setup::parse_params(pairs.iter().copied()) {
        assert!(!params.state.is_empty());
        if let SetupAction::Install(id) | SetupAction::Update(id) = params.action {
            assert!(id > 0);
        }
        if let Some(code) = params.usable_code() {
            assert!(!code.is_empty() && code.len() <= MAX_CODE_LEN);
            assert!(code.bytes().all(|b| b.is_ascii_graphic()));
        }
        let _ = params.ownership(input.bool(), input.bool());
    }
    let reason = input.text(30);
    if let Some(refusal) = Refusal::from_code(&reason) {
        assert_eq!(refusal.code(), reason);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bytes, config};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config(1000))]

        #[test]
        fn portal_request(data in bytes(600)) {
            super::portal_request(&data);
        }
    }
}
