//! What an access audit reads of Azure DevOps: the organization's user entitlements (access
//! levels) on `vsaex.dev.azure.com` (`/vsaex/{org}/…`) and the branch policies of its
//! repositories (`/azure/{org}/{project}/_apis/git/policy/configurations`), with the policy
//! specs the admin API takes (see the table in `mod.rs`).

use base64::Engine;
use chrono::{SecondsFormat, Utc};
use rsa::sha2::{Digest, Sha256};
use serde_json::{json, Map, Value};

use super::devops::{authenticate, count_param, find_project, member_org, unauthorized, vss_error};
use super::state::{Org, Policy, Project, Repo, User};
use crate::http::{percent_decode, Reply, Request};
use crate::server::{Caller, Emulator};

/// Entitlements per page (`continuationToken` for the next).
pub const ENTITLEMENTS_PAGE: usize = 100;

/// The `accountLicenseType` values Azure DevOps knows, with their `licenseDisplayName`.
pub const LICENSES: [(&str, &str); 6] = [
    ("express", "Basic"),
    ("stakeholder", "Stakeholder"),
    ("advanced", "Basic + Test Plans"),
    ("professional", "Visual Studio Professional"),
    ("earlyAdopter", "Early Adopter"),
    ("none", "None"),
];

/// Azure DevOps requires `api-version` on every call.
fn require_api_version(request: &Request, method: &str) -> Result<(), Reply> {
    if request
        .query_param("api-version")
        .is_some_and(|v| !v.is_empty())
    {
        return Ok(());
    }
    Err(vss_error(
        400,
        &format!(
            "No api-version was supplied for the \"{method}\" request. The version must be supplied either as part of the Accept header (e.g. \"application/json; api-version=1.0\") or as a query parameter (e.g. \"?api-version=1.0\")."
        ),
        "VssVersionNotSpecifiedException",
    ))
}

/// A stable GUID derived from `seed` (a user's directory object id, a descriptor).
fn derived_guid(seed: &str) -> String {
    let hash = Sha256::digest(seed.as_bytes());
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn descriptor(user: &User) -> String {
    let origin = derived_guid(&user.id);
    format!(
        "aad.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(origin)
    )
}

fn entitlement_json(em: &Emulator, org: &Org, user: &User) -> Value {
    let license = org.license(&user.id);
    let display = LICENSES
        .iter()
        .find(|(l, _)| *l == license)
        .map_or("Basic", |(_, d)| d);
    let descriptor = descriptor(user);
    let graph = format!("{}/vssps/{}/_apis/Graph", em.base_url, org.name);
    json!({
        "id": user.id,
        "user": {
            "subjectKind": "user",
            "metaType": "member",
            "directoryAlias": user.email.split('@').next(),
            "domain": derived_guid(&org.id),
            "principalName": user.email,
            "mailAddress": user.email,
            "origin": "aad",
            "originId": derived_guid(&user.id),
            "displayName": user.display_name,
            "_links": {
                "self": { "href": format!("{graph}/Users/{descriptor}") },
                "memberships": { "href": format!("{graph}/Memberships/{descriptor}") },
                "membershipState": { "href": format!("{graph}/MembershipStates/{descriptor}") },
                "storageKey": { "href": format!("{graph}/StorageKeys/{descriptor}") },
                "avatar": { "href": format!("{}/azure/{}/_apis/GraphProfile/MemberAvatars/{descriptor}", em.base_url, org.name) },
            },
            "url": format!("{graph}/Users/{descriptor}"),
            "descriptor": descriptor,
        },
        "accessLevel": {
            "licensingSource": "account",
            "accountLicenseType": license,
            "msdnLicenseType": "none",
            "gitHubLicenseType": "none",
            "licenseDisplayName": display,
            "status": "active",
            "statusMessage": "",
            "assignmentSource": "unknown",
        },
        "lastAccessedDate": "2024-01-01T00:00:00Z",
        "dateCreated": "2020-01-01T00:00:00Z",
        "projectEntitlements": [],
        "extensions": [],
        "groupAssignments": [],
    })
}

/// `GET /vsaex/{org}/_apis/userentitlements`: the organization's members by display name, 100 a
/// page with `continuationToken`.
pub fn user_entitlements(
    em: &Emulator,
    request: &Request,
    caller: &Caller,
    org: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let user = authenticate(&store, caller)?;
    let org = member_org(&store, user, &percent_decode(org))?;
    require_api_version(request, "GET")?;
    for unsupported in ["$filter", "$orderBy", "top", "skip"] {
        if request.query_param(unsupported).is_some() {
            return Err(Reply::error(
                400,
                &format!("github-emulator: {unsupported} is not emulated on userentitlements"),
            ));
        }
    }
    match org.entitlements_denied {
        Some(401) => return Err(unauthorized(&user.id)),
        Some(_) => {
            return Err(vss_error(
                403,
                &format!(
                    "Access Denied: {} needs the following permission(s) on the resource Users to perform this action: View users",
                    user.display_name
                ),
                "AccessCheckException",
            ))
        }
        None => {}
    }
    let start: usize = match request
        .query_param("continuationToken")
        .filter(|t| !t.is_empty())
    {
        None => 0,
        Some(token) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("skip=").and_then(|n| n.parse().ok()))
            .ok_or_else(|| {
                vss_error(
                    400,
                    &format!("The continuation token '{token}' is not valid."),
                    "InvalidContinuationTokenException",
                )
            })?,
    };
    let mut users: Vec<&User> = org
        .members
        .iter()
        .filter_map(|id| store.azure.user(id))
        .collect();
    users.sort_by_key(|u| (u.display_name.to_lowercase(), u.id.clone()));
    let end = start.saturating_add(ENTITLEMENTS_PAGE).min(users.len());
    let members: Vec<Value> = users[start.min(end)..end]
        .iter()
        .map(|u| entitlement_json(em, org, u))
        .collect();
    let token = (end < users.len())
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("skip={end}")));
    Ok(Reply::json(
        200,
        &json!({ "members": members, "continuationToken": token, "totalCount": users.len() }),
    ))
}

/// Whether a policy applies to `ref_name` (none given: every policy does).
fn applies(policy: &Policy, ref_name: Option<&str>) -> bool {
    ref_name.is_none_or(|r| match policy.match_kind {
        "Prefix" => r.starts_with(&policy.ref_name),
        _ => r.eq_ignore_ascii_case(&policy.ref_name),
    })
}

fn policy_json(em: &Emulator, org: &Org, project: &Project, repo: &Repo, policy: &Policy) -> Value {
    let api = format!(
        "{}/azure/{}/{}/_apis/policy",
        em.base_url, org.name, project.id
    );
    let mut settings = policy.settings.clone();
    settings.insert(
        "scope".into(),
        json!([{ "refName": policy.ref_name, "matchKind": policy.match_kind, "repositoryId": repo.id }]),
    );
    let admin = derived_guid("emulator-admin");
    json!({
        "createdBy": {
            "displayName": "Emulator Admin",
            "url": format!("{}/vssps/_apis/Identities/{admin}", em.base_url),
            "_links": { "avatar": { "href": format!("{}/azure/{}/_apis/GraphProfile/MemberAvatars/aad.{admin}", em.base_url, org.name) } },
            "id": admin,
            "uniqueName": "admin@emulator.invalid",
            "imageUrl": format!("{}/azure/{}/_api/_common/identityImage?id={admin}", em.base_url, org.name),
            "descriptor": format!("aad.{admin}"),
        },
        "createdDate": policy.created.to_rfc3339_opts(SecondsFormat::Millis, true),
        "isEnabled": policy.enabled,
        "isBlocking": policy.blocking,
        "isDeleted": false,
        "settings": settings,
        "isEnterpriseManaged": false,
        "_links": {
            "self": { "href": format!("{api}/configurations/{}", policy.id) },
            "policyType": { "href": format!("{api}/types/{}", policy.type_id) },
        },
        "revision": 1,
        "id": policy.id,
        "url": format!("{api}/configurations/{}", policy.id),
        "type": {
            "id": policy.type_id,
            "url": format!("{api}/types/{}", policy.type_id),
            "displayName": policy.type_name,
        },
    })
}

/// `GET /azure/{org}/{project}/_apis/git/policy/configurations` (and the Policy area's
/// `…/_apis/policy/configurations`): `repositoryId`, `refName`, `policyType`, `$top`,
/// `continuationToken` (a policy id: the page starts after it); by id, with
/// `x-ms-continuationtoken` while more remain.
pub fn policy_configurations(
    em: &Emulator,
    request: &Request,
    caller: &Caller,
    org: &str,
    project: &str,
) -> Result<Reply, Reply> {
    let store = em.store();
    let user = authenticate(&store, caller)?;
    let org = member_org(&store, user, &percent_decode(org))?;
    let project = find_project(org, &percent_decode(project))?;
    require_api_version(request, "GET")?;
    let repository = request
        .query_param("repositoryId")
        .filter(|r| !r.is_empty());
    let ref_name = request.query_param("refName").filter(|r| !r.is_empty());
    let policy_type = request.query_param("policyType").filter(|t| !t.is_empty());
    let after = count_param(request, "continuationToken")?.unwrap_or(0) as u64;
    let top = count_param(request, "$top")?;
    let mut found: Vec<(&Repo, &Policy)> = project
        .repos
        .iter()
        .filter(|r| {
            repository
                .as_ref()
                .is_none_or(|id| r.id.eq_ignore_ascii_case(id))
        })
        .flat_map(|r| r.policies.iter().map(move |p| (r, p)))
        .filter(|(_, p)| applies(p, ref_name.as_deref()))
        .filter(|(_, p)| {
            policy_type
                .as_ref()
                .is_none_or(|t| p.type_id.eq_ignore_ascii_case(t))
        })
        .filter(|(_, p)| p.id > after)
        .collect();
    found.sort_by_key(|(_, p)| p.id);
    let more = top.is_some_and(|top| found.len() > top);
    found.truncate(top.unwrap_or(usize::MAX));
    let value: Vec<Value> = found
        .iter()
        .map(|(r, p)| policy_json(em, org, project, r, p))
        .collect();
    let mut reply = Reply::json(200, &json!({ "count": value.len(), "value": value }));
    if let (true, Some((_, last))) = (more, found.last()) {
        reply.set_header("x-ms-continuationtoken", last.id.to_string());
    }
    Ok(reply)
}

/// A policy type the admin API names, its id, display name and settings (spec name, settings
/// name, default).
type PolicyType = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, fn() -> Value)],
);

const POLICY_TYPES: [PolicyType; 6] = [
    (
        "reviewers",
        "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd",
        "Minimum number of reviewers",
        &[
            ("minimum_approver_count", "minimumApproverCount", || {
                json!(1)
            }),
            ("creator_vote_counts", "creatorVoteCounts", || json!(false)),
            ("allow_downvotes", "allowDownvotes", || json!(false)),
            ("reset_on_source_push", "resetOnSourcePush", || json!(false)),
            (
                "require_vote_on_last_iteration",
                "requireVoteOnLastIteration",
                || json!(false),
            ),
            (
                "reset_rejections_on_source_push",
                "resetRejectionsOnSourcePush",
                || json!(false),
            ),
            ("block_last_pusher_vote", "blockLastPusherVote", || {
                json!(false)
            }),
            (
                "require_vote_on_each_iteration",
                "requireVoteOnEachIteration",
                || json!(false),
            ),
        ],
    ),
    (
        "build",
        "0609b952-1397-4640-95ec-e00a01b2c241",
        "Build",
        &[
            ("build_definition_id", "buildDefinitionId", || json!(1)),
            (
                "queue_on_source_update_only",
                "queueOnSourceUpdateOnly",
                || json!(true),
            ),
            ("manual_queue_only", "manualQueueOnly", || json!(false)),
            ("name", "displayName", || Value::Null),
            ("valid_duration", "validDuration", || json!(720.0)),
        ],
    ),
    (
        "merge_strategy",
        "fa4e907d-c16b-4a4c-9dfa-4916e5d171ab",
        "Require a merge strategy",
        &[
            ("allow_squash", "allowSquash", || json!(true)),
            ("allow_no_fast_forward", "allowNoFastForward", || {
                json!(true)
            }),
            ("allow_rebase", "allowRebase", || json!(true)),
            ("allow_rebase_merge", "allowRebaseMerge", || json!(true)),
        ],
    ),
    (
        "comment_resolution",
        "c6a1889d-b943-4856-b76f-9e46bb6b0df2",
        "Comment requirements",
        &[],
    ),
    (
        "work_item_linking",
        "40e92b44-2fe1-4dd6-b3d8-74a9c21d0c6e",
        "Work item linking",
        &[],
    ),
    (
        "required_reviewers",
        "fd2167ab-b0be-447a-8ec8-39368250530e",
        "Required reviewers",
        &[
            ("required_reviewer_ids", "requiredReviewerIds", || json!([])),
            ("minimum_approver_count", "minimumApproverCount", || {
                json!(1)
            }),
            ("creator_vote_counts", "creatorVoteCounts", || json!(false)),
        ],
    ),
];

/// A policy from the admin API: `{"type","enabled"?,"blocking"?,"branch"?,"match"?,…settings}`
/// (`branch` defaults to the repository's default branch, `match` to `exact`; settings by
/// their snake_case names, see [`POLICY_TYPES`]).
pub fn parse_policy(spec: &Value, id: u64) -> Result<Policy, String> {
    let mut fields: Map<String, Value> = spec
        .as_object()
        .cloned()
        .ok_or_else(|| format!("a policy must be an object: {spec}"))?;
    let kind = match fields.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => return Err(format!("a policy needs a \"type\": {spec}")),
    };
    let (_, type_id, type_name, settings_table) = POLICY_TYPES
        .iter()
        .find(|(name, ..)| *name == kind)
        .ok_or_else(|| format!("unknown policy type {kind:?}"))?;
    let flag = |fields: &mut Map<String, Value>, name: &str| match fields.remove(name) {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(b),
        Some(other) => Err(format!("{name} must be a boolean, not {other}")),
    };
    let enabled = flag(&mut fields, "enabled")?;
    let blocking = flag(&mut fields, "blocking")?;
    let branch = match fields.remove("branch") {
        None => "main".to_string(),
        Some(Value::String(b)) => b,
        Some(other) => return Err(format!("branch must be a string, not {other}")),
    };
    let match_kind = match fields.remove("match").as_ref().and_then(Value::as_str) {
        None | Some("exact") => "Exact",
        Some("prefix") => "Prefix",
        Some(other) => return Err(format!("match must be exact or prefix, not {other:?}")),
    };
    let mut settings = Map::new();
    for (spec_name, settings_name, default) in settings_table.iter() {
        let value = fields.remove(*spec_name).unwrap_or_else(default);
        let value = match (*spec_name, value) {
            ("name", Value::Null) => json!(type_name),
            (_, value) => value,
        };
        settings.insert((*settings_name).to_string(), value);
    }
    if let Some(extra) = fields.keys().next() {
        return Err(format!("policy {kind} has no setting {extra:?}"));
    }
    let ref_name = if branch.starts_with("refs/") {
        branch
    } else {
        format!("refs/heads/{branch}")
    };
    Ok(Policy {
        id,
        type_id,
        type_name,
        enabled,
        blocking,
        ref_name,
        match_kind,
        settings,
        created: Utc::now(),
    })
}
