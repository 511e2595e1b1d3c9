//! One error type for everything a client of the gateway can be told.
//!
//! API routes answer RFC 9457 problem details (`application/problem+json`) with a stable `code`;
//! browser routes (the GitHub setup callback) turn the same outcomes into a readable page or a
//! portal redirect. Internal detail (a D1 error, a JS exception) is logged by the edge and never
//! sent: `Problem::Internal` carries only a short public hint.

use serde::Serialize;

/// An outcome a client may see. Each variant maps to one HTTP status and one stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Portal authentication failed (missing, malformed, wrongly signed or expired JWT).
    Unauthorized(String),
    /// The route or the resource does not exist (or belongs to another tenant).
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The request is understood and refused whoever sends it (a CORS preflight from an origin
    /// that is not the portal's); the string says why.
    Forbidden(String),
    /// The request is malformed; the string says what is wrong.
    BadRequest(String),
    /// A well-formed request with a value the route refuses; `field` names it.
    Unprocessable { field: String, detail: String },
    /// The resource is not in a state that allows the request.
    Conflict(String),
    /// The resource existed but is no longer available (e.g. an expired pending connection).
    Gone(String),
    /// The body is larger than the route accepts (the limit in bytes).
    PayloadTooLarge(usize),
    /// The body is not of a type the route accepts.
    UnsupportedMediaType(String),
    /// A required secret or variable is missing or unusable; the string names it (never its value).
    Misconfigured(String),
    /// GitHub (or another upstream) failed or is rate limiting us; the work can be retried.
    Upstream(String),
    /// Something broke inside the gateway. Details are logged, not sent.
    Internal,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
    /// The offending field, for 422s.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl Problem {
    pub fn status(&self) -> u16 {
        match self {
            Problem::Unauthorized(_) => 401,
            Problem::NotFound => 404,
            Problem::MethodNotAllowed => 405,
            Problem::Forbidden(_) => 403,
            Problem::BadRequest(_) => 400,
            Problem::PayloadTooLarge(_) => 413,
            Problem::Unprocessable { .. } => 422,
            Problem::Conflict(_) => 409,
            Problem::Gone(_) => 410,
            Problem::UnsupportedMediaType(_) => 415,
            Problem::Misconfigured(_) => 503,
            Problem::Upstream(_) => 502,
            Problem::Internal => 500,
        }
    }

    /// Stable machine-readable code, also the last segment of the problem `type`.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::Unauthorized(_) => "unauthorized",
            Problem::NotFound => "not_found",
            Problem::MethodNotAllowed => "method_not_allowed",
            Problem::Forbidden(_) => "forbidden",
            Problem::BadRequest(_) => "bad_request",
            Problem::PayloadTooLarge(_) => "payload_too_large",
            Problem::Unprocessable { .. } => "invalid_field",
            Problem::Conflict(_) => "conflict",
            Problem::Gone(_) => "gone",
            Problem::UnsupportedMediaType(_) => "unsupported_media_type",
            Problem::Misconfigured(_) => "misconfigured",
            Problem::Upstream(_) => "upstream_unavailable",
            Problem::Internal => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Problem::Unauthorized(_) => "Authentication required",
            Problem::NotFound => "Not found",
            Problem::MethodNotAllowed => "Method not allowed",
            Problem::Forbidden(_) => "Forbidden",
            Problem::BadRequest(_) => "Bad request",
            Problem::PayloadTooLarge(_) => "Payload too large",
            Problem::Unprocessable { .. } => "Invalid field",
            Problem::Conflict(_) => "Conflict",
            Problem::Gone(_) => "Gone",
            Problem::UnsupportedMediaType(_) => "Unsupported media type",
            Problem::Misconfigured(_) => "Gateway misconfigured",
            Problem::Upstream(_) => "Upstream unavailable",
            Problem::Internal => "Internal error",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Problem::Unauthorized(d)
            | Problem::Forbidden(d)
            | Problem::BadRequest(d)
            | Problem::Upstream(d)
            | Problem::UnsupportedMediaType(d)
            | Problem::Conflict(d)
            | Problem::Gone(d) => d.clone(),
            Problem::Unprocessable { field, detail } => format!("`{field}`: {detail}"),
            Problem::PayloadTooLarge(limit) => format!("the body exceeds {limit} bytes"),
            Problem::Misconfigured(name) => {
                format!("the gateway is missing a usable `{name}`; an operator must set it")
            }
            Problem::NotFound => "no such resource".into(),
            Problem::MethodNotAllowed => "this route does not accept that method".into(),
            Problem::Internal => "the gateway failed; the error was logged".into(),
        }
    }

    /// The `application/problem+json` body.
    pub fn to_json(&self) -> String {
        let detail = self.detail();
        let body = ProblemBody {
            type_uri: format!("/problems/{}", self.code()),
            title: self.title(),
            status: self.status(),
            code: self.code(),
            detail: &detail,
            field: match self {
                Problem::Unprocessable { field, .. } => Some(field),
                _ => None,
            },
        };
        serde_json::to_string(&body).expect("problem body serializes")
    }
}

/// A request body must be sent as `application/json` (parameters such as `charset` allowed).
pub fn require_json(content_type: Option<&str>) -> Result<(), Problem> {
    let json = content_type
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(Problem::UnsupportedMediaType(
            "send the request as application/json".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_has_rfc9457_members_and_stable_code() {
        let p = Problem::Unauthorized("token expired".into());
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["type"], "/problems/unauthorized");
        assert_eq!(v["status"], 401);
        assert_eq!(v["code"], "unauthorized");
        assert_eq!(v["detail"], "token expired");
        assert_eq!(v["title"], "Authentication required");
    }

    #[test]
    fn invalid_fields_are_named_in_the_body() {
        let p = Problem::Unprocessable {
            field: "retention_days".into(),
            detail: "must be between 1 and 3650".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(
            (v["status"].as_u64(), v["field"].as_str()),
            (Some(422), Some("retention_days"))
        );
        assert!(!Problem::NotFound.to_json().contains("field"));
    }

    #[test]
    fn bodies_must_be_json() {
        assert_eq!(
            require_json(Some("application/json; charset=utf-8")),
            Ok(())
        );
        assert_eq!(require_json(Some(" Application/JSON")), Ok(()));
        for other in [None, Some("text/plain"), Some("application/jsonx")] {
            assert_eq!(
                require_json(other).map_err(|p| p.status()),
                Err(415),
                "{other:?}"
            );
        }
    }

    /// What each variant must answer: its HTTP status and stable code. An exhaustive match, so
    /// a new variant does not compile until its answer is written down here (and an example of
    /// it added to the test below, which checks every example's kind appears once).
    fn expected(p: &Problem) -> (u16, &'static str) {
        match p {
            Problem::Unauthorized(_) => (401, "unauthorized"),
            Problem::NotFound => (404, "not_found"),
            Problem::MethodNotAllowed => (405, "method_not_allowed"),
            Problem::Forbidden(_) => (403, "forbidden"),
            Problem::BadRequest(_) => (400, "bad_request"),
            Problem::Unprocessable { .. } => (422, "invalid_field"),
            Problem::Conflict(_) => (409, "conflict"),
            Problem::Gone(_) => (410, "gone"),
            Problem::PayloadTooLarge(_) => (413, "payload_too_large"),
            Problem::UnsupportedMediaType(_) => (415, "unsupported_media_type"),
            Problem::Misconfigured(_) => (503, "misconfigured"),
            Problem::Upstream(_) => (502, "upstream_unavailable"),
            Problem::Internal => (500, "internal"),
        }
    }

    #[test]
    fn every_variant_answers_its_status_code_and_type() {
        let field = |f: &str, d: &str| Problem::Unprocessable {
            field: f.into(),
            detail: d.into(),
        };
        // Each variant with the detail its body must carry.
        let examples = [
            (
                Problem::Unauthorized("token expired".into()),
                "token expired",
            ),
            (Problem::NotFound, "no such resource"),
            (
                Problem::MethodNotAllowed,
                "this route does not accept that method",
            ),
            (
                Problem::Forbidden("not the portal's origin".into()),
                "not the portal's origin",
            ),
            (Problem::BadRequest("bad cursor".into()), "bad cursor"),
            (
                field("backup_hour", "must be 0-23"),
                "`backup_hour`: must be 0-23",
            ),
            (
                Problem::Conflict("org is disconnected".into()),
                "org is disconnected",
            ),
            (Problem::Gone("expired".into()), "expired"),
            (
                Problem::PayloadTooLarge(1024),
                "the body exceeds 1024 bytes",
            ),
            (
                Problem::UnsupportedMediaType("send JSON".into()),
                "send JSON",
            ),
            (
                Problem::Misconfigured("STATE_SECRET".into()),
                "the gateway is missing a usable `STATE_SECRET`; an operator must set it",
            ),
            (Problem::Upstream("GitHub: 502".into()), "GitHub: 502"),
            (
                Problem::Internal,
                "the gateway failed; the error was logged",
            ),
        ];
        let kinds: std::collections::BTreeSet<_> = examples
            .iter()
            .map(|(p, _)| format!("{:?}", std::mem::discriminant(p)))
            .collect();
        assert_eq!(kinds.len(), examples.len(), "one example of each variant");
        for (p, detail) in &examples {
            let (status, code) = expected(p);
            assert_eq!((p.status(), p.code()), (status, code), "{p:?}");
            let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
            let mut members: Vec<&str> =
                v.as_object().unwrap().keys().map(String::as_str).collect();
            members.sort_unstable();
            let mut want = vec!["code", "detail", "status", "title", "type"];
            if let Problem::Unprocessable { field, .. } = p {
                want.push("field");
                want.sort_unstable();
                assert_eq!(v["field"], field.as_str());
            }
            assert_eq!(members, want, "{p:?}: exactly RFC 9457's members and ours");
            assert_eq!(v["status"], status, "{p:?}");
            assert_eq!(v["code"], code, "{p:?}");
            assert_eq!(v["type"], format!("/problems/{code}"), "{p:?}");
            assert_eq!(v["detail"], *detail, "{p:?}");
            assert!(
                v["title"].as_str().is_some_and(|t| !t.is_empty()),
                "{p:?}: a title"
            );
        }
        // Codes are stable identifiers: no two variants share one.
        let codes: std::collections::BTreeSet<_> = examples.iter().map(|(p, _)| p.code()).collect();
        assert_eq!(codes.len(), examples.len());
    }

    #[test]
    fn misconfiguration_names_the_setting_but_internal_says_nothing() {
        let p = Problem::Misconfigured("STATE_SECRET".into());
        assert_eq!(p.status(), 503);
        assert!(p.detail().contains("STATE_SECRET"));
        // Internal carries no data (the edge logs the cause): its body is exactly the five
        // members with the fixed hint, which `every_variant_answers_its_status_code_and_type`
        // asserts.
        assert_eq!(
            Problem::Internal.detail(),
            "the gateway failed; the error was logged"
        );
    }
}
