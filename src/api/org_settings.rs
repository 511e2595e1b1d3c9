//! What the portal may change on an organization (`PATCH /v1/orgs/{id}`) and the list filters,
//! validated before anything is written. A bad value is a 422 naming the field.
//!
//! Body: any of `client` (string ≤ 128 characters, or null to clear), `backup_schedule`
//! (`daily`, `weekly` — Mondays — or `off`), `backup_hour` (UTC, 0-23), `retention_days`
//! (1-3650), `full_every` (a full backup at least every that many snapshots of a repository,
//! 1-100; 1 = always full). Unknown fields are refused, so a typo is not silently ignored.

use crate::api::problem::Problem;
use crate::api::routes::query_param;
use serde_json::Value;

pub const SCHEDULES: [&str; 3] = ["daily", "weekly", "off"];
pub const STATUSES: [&str; 4] = ["active", "suspended", "disconnected", "pending"];
pub const PROVIDERS: [&str; 3] = ["github", "gitlab", "azure_devops"];
pub const REPOSITORY_STATUSES: [&str; 2] = ["active", "removed"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// `Some(None)` clears the label.
    pub client: Option<Option<String>>,
    pub backup_schedule: Option<String>,
    pub backup_hour: Option<i64>,
    pub retention_days: Option<i64>,
    pub full_every: Option<i64>,
}

fn invalid(field: &str, detail: &str) -> Problem {
    Problem::Unprocessable {
        field: field.to_string(),
        detail: detail.to_string(),
    }
}

/// Reads the body field by field, so a value of the wrong type is named like one out of range.
pub fn parse_change(body: &[u8]) -> Result<SettingsChange, Problem> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::BadRequest(format!("body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(invalid("body", "must be a JSON object"));
    };
    let integer = |name: &str, v: &Value, range: std::ops::RangeInclusive<i64>, detail: &str| {
        v.as_i64()
            .filter(|n| range.contains(n))
            .ok_or_else(|| invalid(name, detail))
    };
    let mut change = SettingsChange::default();
    for (name, v) in &fields {
        match name.as_str() {
            "client" => {
                change.client = Some(match v {
                    Value::Null => None,
                    Value::String(c) if valid_client(c) => Some(c.trim().to_string()),
                    _ => {
                        return Err(invalid(
                            name,
                            "must be 1-128 printable characters, or null to clear",
                        ))
                    }
                })
            }
            "backup_schedule" => {
                change.backup_schedule = Some(
                    v.as_str()
                        .filter(|s| SCHEDULES.contains(s))
                        .ok_or_else(|| invalid(name, "must be one of daily, weekly, off"))?
                        .to_string(),
                )
            }
            "backup_hour" => {
                change.backup_hour = Some(integer(
                    name,
                    v,
                    0..=23,
                    "must be an hour of the day (UTC), 0-23",
                )?)
            }
            "retention_days" => {
                change.retention_days =
                    Some(integer(name, v, 1..=3650, "must be between 1 and 3650")?)
            }
            "full_every" => {
                change.full_every = Some(integer(
                    name,
                    v,
                    1..=100,
                    "must be between 1 (always full) and 100",
                )?)
            }
            other => {
                return Err(invalid(
                    other,
                    "is not a setting (client, backup_schedule, backup_hour, retention_days, full_every)",
                ))
            }
        }
    }
    if change == SettingsChange::default() {
        return Err(invalid(
            "body",
            "name at least one of client, backup_schedule, backup_hour, retention_days, full_every",
        ));
    }
    Ok(change)
}

fn valid_client(client: &str) -> bool {
    !client.trim().is_empty()
        && client.chars().count() <= 128
        && !client.chars().any(char::is_control)
}

/// A query filter that must be one of `allowed` when present.
pub fn filter<'a>(
    query: &'a [(String, String)],
    name: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, Problem> {
    match query_param(query, name) {
        Some(v) if !allowed.contains(&v) => Err(Problem::BadRequest(format!(
            "`{name}` must be one of {}",
            allowed.join(", ")
        ))),
        other => Ok(other),
    }
}

/// `limit` (1-100, default 50) and `cursor` (the last id of the previous page).
pub fn page(query: &[(String, String)]) -> Result<(i64, String), Problem> {
    let get = |k: &str| query_param(query, k);
    let limit = match get("limit") {
        None => 50,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| {
                Problem::BadRequest("`limit` must be an integer between 1 and 100".into())
            })?,
    };
    Ok((limit, get("cursor").unwrap_or("").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(p: Problem) -> String {
        match p {
            Problem::Unprocessable { field, .. } => field,
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn valid_changes_parse() {
        let c = parse_change(br#"{"client":" Acme ","backup_schedule":"weekly","backup_hour":23,"retention_days":3650}"#).unwrap();
        assert_eq!(c.client, Some(Some("Acme".into())));
        assert_eq!(c.backup_schedule.as_deref(), Some("weekly"));
        assert_eq!((c.backup_hour, c.retention_days), (Some(23), Some(3650)));
        assert_eq!(
            parse_change(br#"{"full_every":1}"#).unwrap().full_every,
            Some(1)
        );
        assert_eq!(
            parse_change(br#"{"client":null}"#).unwrap().client,
            Some(None)
        );
        assert_eq!(
            parse_change(br#"{"retention_days":1}"#).unwrap().client,
            None
        );
    }

    #[test]
    fn invalid_values_name_their_field() {
        for (body, field) in [
            (r#"{"backup_schedule":"hourly"}"#, "backup_schedule"),
            (r#"{"backup_hour":24}"#, "backup_hour"),
            (r#"{"backup_hour":-1}"#, "backup_hour"),
            (r#"{"retention_days":0}"#, "retention_days"),
            (r#"{"retention_days":3651}"#, "retention_days"),
            (r#"{"retention_days":"90"}"#, "retention_days"),
            (r#"{"retention_days":90.5}"#, "retention_days"),
            (r#"{"full_every":0}"#, "full_every"),
            (r#"{"full_every":101}"#, "full_every"),
            (r#"{"full_every":"7"}"#, "full_every"),
            (r#"{"backup_hour":"2"}"#, "backup_hour"),
            (r#"{"backup_schedule":true}"#, "backup_schedule"),
            (r#"{"client":{"name":"Acme"}}"#, "client"),
            (r#"[1]"#, "body"),
            (r#"{"client":""}"#, "client"),
            (r#"{"retention":90}"#, "retention"),
            (r#"{}"#, "body"),
        ] {
            let got = field_of(parse_change(body.as_bytes()).unwrap_err());
            assert_eq!(got, field, "{body}");
        }
        // The two ways the body as a whole is wrong say which.
        for (body, detail) in [
            ("[1]", "must be a JSON object"),
            ("\"weekly\"", "must be a JSON object"),
            ("null", "must be a JSON object"),
            (
                "{}",
                "name at least one of client, backup_schedule, backup_hour, retention_days, full_every",
            ),
        ] {
            match parse_change(body.as_bytes()).unwrap_err() {
                Problem::Unprocessable { field, detail: got } => {
                    assert_eq!((field.as_str(), got.as_str()), ("body", detail), "{body}")
                }
                other => panic!("{body}: expected 422, got {other:?}"),
            }
        }
        assert_eq!(parse_change(b"{nope").unwrap_err().status(), 400);
    }

    #[test]
    fn filters_and_pages_are_checked() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            filter(&q(&[("status", "active")]), "status", &STATUSES).unwrap(),
            Some("active")
        );
        assert_eq!(filter(&q(&[]), "status", &STATUSES).unwrap(), None);
        assert_eq!(
            filter(&q(&[("status", "gone")]), "status", &STATUSES)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(page(&q(&[])).unwrap(), (50, String::new()));
        assert_eq!(
            page(&q(&[("limit", "100"), ("cursor", "abc")])).unwrap(),
            (100, "abc".into())
        );
        assert!(page(&q(&[("limit", "0")])).is_err());
        assert!(page(&q(&[("limit", "x")])).is_err());
    }
}
