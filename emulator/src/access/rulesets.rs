//! Rulesets: which apply to a branch, their rules' parameters, and their JSON.
//!
//! A ruleset applies to branch `b` of a repository when its `enforcement` is `active`, one of
//! its `conditions.ref_name.include` patterns matches and none of its `exclude` patterns do
//! (an organization ruleset must also match the repository by `repository_name`). Patterns:
//! `~ALL`, `~DEFAULT_BRANCH`, or an fnmatch pattern on the full ref (`refs/heads/<glob>`; a
//! pattern without `refs/` is read as a branch name), where `*` matches within one path
//! segment, `**` across segments, `?` one character and `[…]` a class (`[!…]` negated).

use serde_json::{json, Map, Value};

use super::state::{Rule, Ruleset, Source};

/// Rule types without parameters.
const BARE: [&str; 5] = [
    "creation",
    "deletion",
    "non_fast_forward",
    "required_linear_history",
    "required_signatures",
];

/// Whether `pattern` (fnmatch, see the module docs) matches all of `text`.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    matches(&p, &t)
}

fn matches(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            let rest = &p[2..];
            (0..=t.len()).any(|i| matches(rest, &t[i..]))
        }
        Some('*') => {
            let rest = &p[1..];
            (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| matches(rest, &t[i..]))
        }
        Some('?') => t.first().is_some_and(|c| *c != '/') && matches(&p[1..], &t[1..]),
        Some('[') => match (class(&p[1..]), t.first()) {
            (Some((set, negated, len)), Some(c)) => {
                *c != '/' && set(*c) != negated && matches(&p[1 + len..], &t[1..])
            }
            (None, Some(c)) => *c == '[' && matches(&p[1..], &t[1..]),
            _ => false,
        },
        Some(c) => t.first() == Some(c) && matches(&p[1..], &t[1..]),
    }
}

/// A `[…]` class after its `[`: its membership test, whether it is negated, and how many
/// pattern characters it takes (with the `]`); `None` when unterminated.
#[allow(clippy::type_complexity)]
fn class(p: &[char]) -> Option<(Box<dyn Fn(char) -> bool + '_>, bool, usize)> {
    let negated = matches!(p.first(), Some('!' | '^'));
    let start = usize::from(negated);
    let end = start + 1 + p.get(start + 1..)?.iter().position(|c| *c == ']')?;
    let items = &p[start..end];
    let test = move |c: char| {
        let mut i = 0;
        while i < items.len() {
            if i + 2 < items.len() && items[i + 1] == '-' {
                if (items[i]..=items[i + 2]).contains(&c) {
                    return true;
                }
                i += 3;
            } else {
                if items[i] == c {
                    return true;
                }
                i += 1;
            }
        }
        false
    };
    Some((Box::new(test), negated, end + 1))
}

/// Whether a `ref_name` pattern matches `branch`.
fn ref_matches(pattern: &str, branch: &str, default_branch: &str) -> bool {
    match pattern {
        "~ALL" => true,
        "~DEFAULT_BRANCH" => branch == default_branch,
        _ if pattern.starts_with("refs/") => fnmatch(pattern, &format!("refs/heads/{branch}")),
        _ => fnmatch(pattern, branch),
    }
}

/// Whether a `repository_name` pattern matches `repo` (case-insensitively).
fn repo_matches(pattern: &str, repo: &str) -> bool {
    pattern == "~ALL" || fnmatch(&pattern.to_lowercase(), &repo.to_lowercase())
}

impl Ruleset {
    /// Whether this ruleset targets `repo`'s `branch`, whatever its enforcement.
    pub fn targets(&self, repo: &str, default_branch: &str, branch: &str) -> bool {
        let repo_ok = match &self.source {
            Source::Repository(name) => name.eq_ignore_ascii_case(repo),
            Source::Organization { include, exclude } => {
                include.iter().any(|p| repo_matches(p, repo))
                    && !exclude.iter().any(|p| repo_matches(p, repo))
            }
        };
        repo_ok
            && self
                .include
                .iter()
                .any(|p| ref_matches(p, branch, default_branch))
            && !self
                .exclude
                .iter()
                .any(|p| ref_matches(p, branch, default_branch))
    }

    /// Whether it applies: active and targeting the branch.
    pub fn applies(&self, repo: &str, default_branch: &str, branch: &str) -> bool {
        self.enforcement == "active" && self.targets(repo, default_branch, branch)
    }

    /// `ruleset_source_type` and `ruleset_source` (`owner/repo` or the organization).
    pub fn source_fields(&self, org: &str) -> (&'static str, String) {
        match &self.source {
            Source::Repository(name) => ("Repository", format!("{org}/{name}")),
            Source::Organization { .. } => ("Organization", org.to_string()),
        }
    }

    /// The ruleset as `GET /repos/{owner}/{repo}/rulesets/{id}` and `repository_ruleset`
    /// webhooks show it.
    pub fn json(&self, base_url: &str, org: &str) -> Value {
        let (source_type, source) = self.source_fields(org);
        let (api, html) = match &self.source {
            Source::Repository(name) => (
                format!("{base_url}/repos/{org}/{name}/rulesets/{}", self.id),
                format!("https://github.com/{org}/{name}/rules/{}", self.id),
            ),
            Source::Organization { .. } => (
                format!("{base_url}/orgs/{org}/rulesets/{}", self.id),
                format!(
                    "https://github.com/organizations/{org}/settings/rules/{}",
                    self.id
                ),
            ),
        };
        let mut conditions = json!({
            "ref_name": { "include": self.include, "exclude": self.exclude },
        });
        if let Source::Organization { include, exclude } = &self.source {
            conditions["repository_name"] =
                json!({ "include": include, "exclude": exclude, "protected": false });
        }
        json!({
            "id": self.id,
            "name": self.name,
            "target": "branch",
            "source_type": source_type,
            "source": source,
            "enforcement": self.enforcement,
            "bypass_actors": [],
            "current_user_can_bypass": "never",
            "node_id": format!("RRS_emu{}", self.id),
            "_links": { "self": { "href": api }, "html": { "href": html } },
            "conditions": conditions,
            "rules": self.rules.iter().map(Rule::json).collect::<Vec<_>>(),
            "created_at": super::timestamp(self.created_at),
            "updated_at": super::timestamp(self.updated_at),
        })
    }
}

impl Rule {
    /// `{"type","parameters"?}`.
    pub fn json(&self) -> Value {
        let mut rule = json!({ "type": self.kind });
        if let Some(parameters) = &self.parameters {
            rule["parameters"] = parameters.clone();
        }
        rule
    }

    /// A rule from the admin API: `{"type", …parameters}` or `{"type","parameters":{…}}`;
    /// parameters are checked by type and defaulted as GitHub shows them.
    pub fn parse(spec: &Value) -> Result<Rule, String> {
        let mut fields = spec
            .as_object()
            .cloned()
            .ok_or_else(|| format!("a rule must be an object: {spec}"))?;
        let kind = match fields.remove("type") {
            Some(Value::String(kind)) => kind,
            _ => return Err(format!("a rule needs a \"type\": {spec}")),
        };
        if let Some(Value::Object(nested)) = fields.get("parameters").cloned() {
            if fields.len() > 1 {
                return Err(format!("give parameters flat or in \"parameters\": {spec}"));
            }
            fields = nested;
        }
        let parameters = match kind.as_str() {
            k if BARE.contains(&k) => {
                if let Some(extra) = fields.keys().next() {
                    return Err(format!("rule {k} takes no parameter {extra:?}"));
                }
                None
            }
            "update" => Some(parameters(
                &kind,
                fields,
                &[("update_allows_fetch_and_merge", json!(false))],
            )?),
            "pull_request" => Some(parameters(
                &kind,
                fields,
                &[
                    ("required_approving_review_count", json!(0)),
                    ("dismiss_stale_reviews_on_push", json!(false)),
                    ("require_code_owner_review", json!(false)),
                    ("require_last_push_approval", json!(false)),
                    ("required_review_thread_resolution", json!(false)),
                    (
                        "allowed_merge_methods",
                        json!(["merge", "squash", "rebase"]),
                    ),
                ],
            )?),
            "required_status_checks" => {
                if let Some(Value::Array(checks)) = fields.get_mut("required_status_checks") {
                    for check in checks.iter_mut() {
                        if let Value::String(context) = check {
                            *check = json!({ "context": context });
                        }
                        if check.get("context").and_then(Value::as_str).is_none() {
                            return Err(format!(
                                "a required status check needs a context: {check}"
                            ));
                        }
                    }
                }
                Some(parameters(
                    &kind,
                    fields,
                    &[
                        ("required_status_checks", json!([])),
                        ("strict_required_status_checks_policy", json!(false)),
                        ("do_not_enforce_on_create", json!(false)),
                    ],
                )?)
            }
            other => return Err(format!("unknown rule type {other:?}")),
        };
        Ok(Rule { kind, parameters })
    }
}

/// `given` completed with `defaults` (in their order); unknown names and mistyped values are
/// refused.
fn parameters(
    kind: &str,
    mut given: Map<String, Value>,
    defaults: &[(&str, Value)],
) -> Result<Value, String> {
    let mut out = Map::new();
    for (name, default) in defaults {
        let value = given.remove(*name).unwrap_or_else(|| default.clone());
        let same_type = match (default, &value) {
            (Value::Bool(_), Value::Bool(_)) | (Value::Array(_), Value::Array(_)) => true,
            (Value::Number(_), Value::Number(n)) => n.is_u64(),
            _ => false,
        };
        if !same_type {
            return Err(format!("rule {kind}: bad {name} {value}"));
        }
        out.insert((*name).to_string(), value);
    }
    match given.keys().next() {
        Some(extra) => Err(format!("rule {kind} has no parameter {extra:?}")),
        None => Ok(Value::Object(out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn fnmatch_keeps_star_within_segments() {
        assert!(fnmatch("refs/heads/release/*", "refs/heads/release/1.0"));
        assert!(!fnmatch(
            "refs/heads/release/*",
            "refs/heads/release/1.0/hotfix"
        ));
        assert!(fnmatch(
            "refs/heads/release/**",
            "refs/heads/release/1.0/hotfix"
        ));
        assert!(fnmatch("refs/heads/**/main", "refs/heads/a/b/main"));
        assert!(fnmatch("refs/heads/v?", "refs/heads/v2"));
        assert!(!fnmatch("refs/heads/v?", "refs/heads/v10"));
        assert!(fnmatch("refs/heads/[a-c]x", "refs/heads/bx"));
        assert!(!fnmatch("refs/heads/[!a-c]x", "refs/heads/bx"));
        assert!(fnmatch("refs/heads/[!a-c]x", "refs/heads/dx"));
        assert!(fnmatch("*", "main") && !fnmatch("*", "a/b"));
        assert!(fnmatch("a[", "a[") && !fnmatch("main", "main2"));
    }

    fn ruleset(enforcement: &str, include: &[&str], exclude: &[&str], source: Source) -> Ruleset {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Ruleset {
            id: 1,
            name: "r".into(),
            enforcement: enforcement.into(),
            include: strings(include),
            exclude: strings(exclude),
            rules: Vec::new(),
            source,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn rulesets_apply_by_enforcement_ref_and_repository() {
        let repo = || Source::Repository("Site".into());
        let default = ruleset("active", &["~DEFAULT_BRANCH"], &[], repo());
        assert!(default.applies("site", "trunk", "trunk"));
        assert!(!default.applies("site", "trunk", "main"));
        assert!(!default.applies("docs", "trunk", "trunk"));
        assert!(!ruleset("evaluate", &["~ALL"], &[], repo()).applies("site", "main", "x"));
        assert!(!ruleset("disabled", &["~ALL"], &[], repo()).applies("site", "main", "x"));
        let releases = ruleset(
            "active",
            &["refs/heads/release/*"],
            &["refs/heads/release/old"],
            repo(),
        );
        assert!(releases.applies("site", "main", "release/2"));
        assert!(!releases.applies("site", "main", "release/old"));
        assert!(ruleset("active", &["main"], &[], repo()).applies("site", "x", "main"));
        let org = Source::Organization {
            include: vec!["site*".into()],
            exclude: vec!["site-old".into()],
        };
        let org = ruleset("active", &["~ALL"], &[], org);
        assert!(org.applies("Site-New", "main", "x"));
        assert!(!org.applies("site-old", "main", "x"));
        assert_eq!(org.source_fields("acme"), ("Organization", "acme".into()));
    }

    #[test]
    fn rules_are_checked_and_defaulted() {
        let pr =
            Rule::parse(&json!({"type": "pull_request", "required_approving_review_count": 2}))
                .unwrap();
        assert_eq!(
            pr.json()["parameters"]["required_approving_review_count"],
            2
        );
        assert_eq!(
            pr.json()["parameters"]["dismiss_stale_reviews_on_push"],
            false
        );
        let nested = Rule::parse(
            &json!({"type": "pull_request", "parameters": {"require_code_owner_review": true}}),
        )
        .unwrap();
        assert_eq!(
            nested.json()["parameters"]["require_code_owner_review"],
            true
        );
        let checks =
            Rule::parse(&json!({"type": "required_status_checks", "required_status_checks": ["ci", {"context": "lint", "integration_id": 5}]}))
                .unwrap();
        assert_eq!(
            checks.json()["parameters"]["required_status_checks"],
            json!([{"context": "ci"}, {"context": "lint", "integration_id": 5}])
        );
        assert_eq!(
            Rule::parse(&json!({"type": "deletion"})).unwrap().json(),
            json!({"type": "deletion"})
        );
        for bad in [
            json!({"type": "deletion", "x": 1}),
            json!({"type": "pull_request", "required_approving_review_count": "2"}),
            json!({"type": "pull_request", "reviews": 2}),
            json!({"type": "teleport"}),
            json!({"required_approving_review_count": 2}),
        ] {
            assert!(Rule::parse(&bad).is_err(), "{bad}");
        }
    }
}
