//! The backup executor (issue #9): one `backup_job.v1` message → one verified snapshot of a
//! repository's refs in R2, as a git bundle, streamed.
//!
//! 1. The job, its repository and org (`BACKUP_TARGET`); a job already done, or of an org or
//!    repository no longer active, is acknowledged and nothing is fetched.
//! 2. A `running` snapshot is claimed (one per repository: a second job finds it and is
//!    coalesced); runs older than 20 minutes are failed and their uploads aborted first.
//! 3. Credentials for the work at hand: a GitHub installation token (Basic
//!    `x-access-token:<token>`), a GitLab access token (Basic `oauth2:<token>`) or a Microsoft
//!    one (Bearer); each only sent under its provider's configured origin (`outbound::git`).
//! 4. `GET {git_url}/info/refs?service=git-upload-pack` → the refs to keep (`backup::refs`), and
//!    the plan against the previous ok snapshot (`backup::plan`): `unchanged` (nothing more is
//!    fetched), `empty`, a full bundle, or an incremental one whose prerequisites are the
//!    previous tips (a full one at least every `full_every` snapshots).
//! 5. `POST {git_url}/git-upload-pack` (wants, haves, done): the answer streams through
//!    `backup::response` and `backup::pack` (signature, version, object count, trailing SHA-1)
//!    into R2 behind the bundle header: a single `put` when it stays under one part, otherwise a
//!    multipart upload of equal `PART_BYTES` parts. Nothing is held but the part being filled.
//! 6. Only a verified, completed upload makes the snapshot `ok` (with the bundle's SHA-256, its
//!    size, object count and refs); any failure aborts the upload, fails the snapshot with a
//!    reason (never a secret) and retries the message.

use super::bindings::{Ctx, Internal, Param, BACKUPS};
use super::github_client;
use super::outbound::{self, CallError};
use super::platform;
use super::provider_tokens;
use crate::backup::{bundle, pack, plan, refs, request, response};
use crate::credential_origins::Issuer;
use crate::provider::Provider;
use crate::sql;
use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use url::Url;

/// R2 multipart parts are at least 5 MiB and all equal but the last.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// A `running` snapshot older than this was abandoned (a consumer invocation has 15 minutes).
const ABANDONED_AFTER_SECS: i64 = 20 * 60;

#[derive(Deserialize)]
struct Target {
    job_status: String,
    repository_id: String,
    git_url: Option<String>,
    repository_status: String,
    org_id: String,
    tenant_id: String,
    org_status: String,
    provider: String,
    installation_id: Option<f64>,
    connection_id: Option<String>,
    full_every: f64,
}

#[derive(Deserialize)]
struct LastOk {
    id: String,
    refs: Option<String>,
    since_full: Option<f64>,
}

/// Why a backup did not produce a snapshot; the message is retried.
pub struct Failed(pub String);

impl From<Internal> for Failed {
    fn from(e: Internal) -> Self {
        Failed(e.0)
    }
}

impl From<CallError> for Failed {
    fn from(e: CallError) -> Self {
        Failed(e.to_string())
    }
}

/// Takes the backup `job_id` asks for. `Ok` when the job is settled (a snapshot recorded, or
/// nothing to do).
pub async fn take(ctx: &Ctx, job_id: &str) -> Result<(), Failed> {
    let rows: Vec<Target> = ctx
        .rows(sql::BACKUP_TARGET, &[Param::from(job_id)])
        .await?;
    let Some(target) = rows.into_iter().next() else {
        return Ok(());
    };
    let now = crate::time::rfc3339(ctx.now);
    if target.job_status != "queued" {
        return Ok(());
    }
    if target.org_status != "active" || target.repository_status != "active" {
        return mark_received(ctx, job_id, &now).await;
    }
    abandon_stale(ctx, &target.repository_id).await?;
    let snapshot_id = format!(
        "{:012x}{}",
        worker::Date::now().as_millis(),
        hex::encode(platform::random_bytes::<8>().map_err(Internal)?)
    );
    let claimed = ctx
        .run(
            sql::CLAIM_SNAPSHOT,
            &[
                Param::from(&snapshot_id),
                Param::from(&target.org_id),
                Param::from(&target.repository_id),
                Param::from(&now),
                Param::from(job_id),
            ],
        )
        .await?;
    if claimed.meta().ok().flatten().and_then(|m| m.changes) != Some(1) {
        // Another backup of this repository is running: this job is coalesced into it.
        return mark_received(ctx, job_id, &now).await;
    }
    let mut upload = Upload::new(&target, &snapshot_id);
    match snapshot(ctx, &target, &mut upload).await {
        Ok(done) => {
            finish(ctx, &target, job_id, &snapshot_id, done).await?;
            Ok(())
        }
        Err(Failed(why)) => {
            upload.abort().await;
            let at = crate::time::rfc3339(platform::now());
            ctx.batch(vec![
                ctx.statement(
                    sql::FAIL_SNAPSHOT,
                    &[Param::from(&snapshot_id), Param::from(&why), Param::from(&at)],
                )?,
                ctx.statement(
                    sql::RECORD_LAST_BACKUP,
                    &[
                        Param::from(&target.repository_id),
                        Param::from("failed"),
                        Param::from(&at),
                    ],
                )?,
            ])
            .await?;
            Err(Failed(why))
        }
    }
}

async fn mark_received(ctx: &Ctx, job_id: &str, now: &str) -> Result<(), Failed> {
    let ids = serde_json::json!([job_id]).to_string();
    ctx.run(
        sql::MARK_JOBS_RECEIVED,
        &[Param::from(&ids), Param::from(now)],
    )
    .await?;
    Ok(())
}

/// Fails the repository's abandoned runs and aborts their uploads (best effort).
async fn abandon_stale(ctx: &Ctx, repository_id: &str) -> Result<(), Failed> {
    #[derive(Deserialize)]
    struct Stale {
        object_key: Option<String>,
        upload_id: Option<String>,
    }
    let stale: Vec<Stale> = ctx
        .rows(
            sql::ABANDON_STALE_SNAPSHOTS,
            &[
                Param::from(repository_id),
                Param::from(&crate::time::rfc3339(ctx.now - ABANDONED_AFTER_SECS)),
                Param::from(&crate::time::rfc3339(ctx.now)),
            ],
        )
        .await?;
    for s in stale {
        if let (Some(key), Some(upload_id)) = (s.object_key, s.upload_id) {
            let aborted = match ctx.env.bucket(BACKUPS) {
                Ok(bucket) => match bucket.resume_multipart_upload(&key, &upload_id) {
                    Ok(upload) => upload.abort().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = aborted {
                worker::console_warn!("abandoned upload {key} not aborted: {e}");
            }
        }
    }
    Ok(())
}

/// What a finished backup records.
struct Done {
    outcome: &'static str,
    kind: Option<&'static str>,
    base: Option<String>,
    refs: plan::RefMap,
    object_key: Option<String>,
    bytes: u64,
    sha256: Option<String>,
    objects: u32,
}

async fn finish(
    ctx: &Ctx,
    target: &Target,
    job_id: &str,
    snapshot_id: &str,
    done: Done,
) -> Result<(), Internal> {
    let at = crate::time::rfc3339(platform::now());
    let refs: BTreeMap<&str, String> = done
        .refs
        .iter()
        .map(|(name, oid)| (name.as_str(), oid.to_hex()))
        .collect();
    let refs = serde_json::to_string(&refs).map_err(|e| Internal::new("refs JSON", e))?;
    let ids = serde_json::json!([job_id]).to_string();
    let mut statements = vec![
        ctx.statement(
            sql::FINISH_SNAPSHOT,
            &[
                Param::from(snapshot_id),
                Param::from(done.outcome),
                Param::from(done.kind),
                Param::from(done.base.as_deref()),
                Param::from(&refs),
                Param::from(done.object_key.as_deref()),
                Param::from(done.bytes as i64),
                Param::from(done.sha256.as_deref()),
                Param::from(i64::from(done.objects)),
                Param::from(&at),
            ],
        )?,
        ctx.statement(
            sql::RECORD_LAST_BACKUP,
            &[
                Param::from(&target.repository_id),
                Param::from(done.outcome),
                Param::from(&at),
            ],
        )?,
        ctx.statement(
            sql::MARK_JOBS_RECEIVED,
            &[Param::from(&ids), Param::from(&at)],
        )?,
    ];
    if done.outcome == "ok" {
        statements.push(ctx.statement(
            sql::RECORD_FIRST_BACKUP_ACTIVITY,
            &[
                Param::from(&target.org_id),
                Param::from(&target.repository_id),
                Param::from(snapshot_id),
                Param::from(&at),
            ],
        )?);
    }
    ctx.batch(statements).await?;
    Ok(())
}

/// The `Authorization` value and its issuer for the org's provider.
async fn credentials(ctx: &Ctx, target: &Target) -> Result<(String, Option<Url>), Failed> {
    let basic = |user: &str, token: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
        )
    };
    match Provider::from_db(&target.provider) {
        Some(Provider::GitHub) => {
            let id = target
                .installation_id
                .ok_or_else(|| Failed("the org has no installation".into()))?
                as u64;
            let jwt = github_client::app_jwt(ctx)
                .await
                .map_err(|p| Failed(p.detail()))?;
            let token = github_client::installation_token(ctx, &jwt, id).await?;
            Ok((basic("x-access-token", &token), None))
        }
        Some(provider) => {
            let connection = target
                .connection_id
                .as_deref()
                .ok_or_else(|| Failed("the org has no connection".into()))?;
            let access = provider_tokens::access_token(ctx, connection, None)
                .await
                .map_err(|f| Failed(f.to_string()))?;
            let value = match provider {
                Provider::GitLab => basic("oauth2", access.token.expose()),
                _ => format!("Bearer {}", access.token.expose()),
            };
            let instance = (provider == Provider::GitLab).then_some(access.base_url);
            Ok((value, instance))
        }
        None => Err(Failed(format!("unknown provider {}", target.provider))),
    }
}

async fn snapshot(ctx: &Ctx, target: &Target, upload: &mut Upload) -> Result<Done, Failed> {
    let git_url = target
        .git_url
        .as_deref()
        .ok_or_else(|| Failed("the repository has no git URL yet (a sync records it)".into()))?;
    let git_url = Url::parse(git_url).map_err(|e| Failed(format!("bad git URL: {e}")))?;
    let (authorization, instance) = credentials(ctx, target).await?;
    let issuer = match (&instance, target.provider.as_str()) {
        (Some(instance), _) => Issuer::GitLab(instance),
        (None, "github") => Issuer::GitHub,
        (None, _) => Issuer::Microsoft,
    };
    let join = |suffix: &str| {
        let mut url = git_url.clone();
        url.set_path(&format!("{}/{suffix}", git_url.path().trim_end_matches('/')));
        url.set_query(None);
        url
    };
    let mut info = join("info/refs");
    info.set_query(Some("service=git-upload-pack"));
    let advertised = outbound::git(ctx, &info, &authorization, issuer, None)
        .await?
        .bytes()
        .await
        .map_err(|e| Failed(format!("reading the ref advertisement: {e}")))?;
    let advertisement = refs::parse_advertisement(&advertised)
        .map_err(|e| Failed(format!("ref advertisement: {e}")))?;
    let current = refs::select_refs(&advertisement);

    let previous: Vec<LastOk> = ctx
        .rows(
            sql::LAST_OK_SNAPSHOT,
            &[Param::from(&target.repository_id)],
        )
        .await?;
    let previous = previous.into_iter().next();
    let previous_refs: Option<plan::RefMap> = previous.as_ref().and_then(|p| {
        let map: BTreeMap<String, String> = serde_json::from_str(p.refs.as_deref()?).ok()?;
        map.into_iter()
            .map(|(k, v)| Some((k, crate::backup::oid::Oid::from_hex(&v)?)))
            .collect()
    });
    let since_full = previous
        .as_ref()
        .and_then(|p| p.since_full)
        .unwrap_or(0.0) as u32;
    let decision = plan::decide(
        previous_refs.as_ref(),
        &current,
        since_full,
        target.full_every.max(1.0) as u32,
    );
    let base = previous.map(|p| p.id);
    let (kind, wants, haves, prerequisites) = match decision {
        plan::Decision::Unchanged => {
            return Ok(Done {
                outcome: "unchanged",
                kind: None,
                base,
                refs: current,
                object_key: None,
                bytes: 0,
                sha256: None,
                objects: 0,
            })
        }
        plan::Decision::Empty => {
            return Ok(Done {
                outcome: "empty",
                kind: None,
                base: None,
                refs: current,
                object_key: None,
                bytes: 0,
                sha256: None,
                objects: 0,
            })
        }
        plan::Decision::Full { wants } => ("full", wants, Vec::new(), Vec::new()),
        plan::Decision::Incremental {
            wants,
            haves,
            prerequisites,
        } => ("incremental", wants, haves, prerequisites),
    };
    let header = bundle::header(&current, &prerequisites)
        .map_err(|e| Failed(format!("bundle header: {e}")))?;
    upload.push(ctx, &header).await?;
    let mut verifier = pack::PackVerifier::new();
    if wants.is_empty() {
        // Nothing new to fetch (e.g. only a branch deleted): an empty pack.
        let empty = pack::empty_pack();
        verifier.push(&empty).map_err(|e| Failed(e.to_string()))?;
        upload.push(ctx, &empty).await?;
    } else {
        let request = request::build_request(&wants, &haves, &advertisement.capabilities)
            .map_err(|e| Failed(format!("upload-pack request: {e:?}")))?;
        let mut answer = outbound::git(
            ctx,
            &join("git-upload-pack"),
            &authorization,
            issuer,
            Some(&request.body),
        )
        .await?;
        let mut parser = response::ResponseParser::new(request.side_band);
        let mut body = answer
            .stream()
            .map_err(|e| Failed(format!("upload-pack body: {e}")))?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Failed(format!("upload-pack transfer: {e}")))?;
            for piece in parser.push(&chunk).map_err(|e| Failed(e.to_string()))? {
                verifier.push(piece).map_err(|e| Failed(e.to_string()))?;
                upload.push(ctx, piece).await?;
            }
        }
        parser.finish().map_err(|e| Failed(e.to_string()))?;
    }
    let summary = verifier.finish().map_err(|e| Failed(e.to_string()))?;
    let (object_key, bytes, sha256) = upload.complete(ctx).await?;
    Ok(Done {
        outcome: "ok",
        kind: Some(kind),
        base: (kind == "incremental").then_some(base).flatten(),
        refs: current,
        object_key: Some(object_key),
        bytes,
        sha256: Some(sha256),
        objects: summary.objects,
    })
}

/// The bundle on its way to R2: the part being filled, the SHA-256 of everything so far, and
/// the multipart upload once the bundle outgrows one part.
struct Upload {
    snapshot_id: String,
    key: String,
    part: Vec<u8>,
    hash: Sha256,
    bytes: u64,
    multipart: Option<(worker::MultipartUpload, Vec<worker::UploadedPart>)>,
}

impl Upload {
    fn new(target: &Target, snapshot_id: &str) -> Upload {
        Upload {
            snapshot_id: snapshot_id.to_string(),
            key: format!(
                "{}/{}/{}/{snapshot_id}.bundle",
                target.tenant_id, target.org_id, target.repository_id
            ),
            part: Vec::new(),
            hash: Sha256::new(),
            bytes: 0,
            multipart: None,
        }
    }

    async fn push(&mut self, ctx: &Ctx, bytes: &[u8]) -> Result<(), Failed> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.part.extend_from_slice(bytes);
        while self.part.len() >= PART_BYTES {
            let rest = self.part.split_off(PART_BYTES);
            let full = std::mem::replace(&mut self.part, rest);
            self.send_part(ctx, full).await?;
        }
        Ok(())
    }

    async fn send_part(&mut self, ctx: &Ctx, part: Vec<u8>) -> Result<(), Failed> {
        if self.multipart.is_none() {
            let bucket = ctx
                .env
                .bucket(BACKUPS)
                .map_err(|e| Internal::new("R2 binding", e))?;
            ctx.budget
                .spend()
                .map_err(|_| Failed("subrequest budget exhausted before an upload".into()))?;
            let upload = bucket
                .create_multipart_upload(&self.key)
                .execute()
                .await
                .map_err(|e| Failed(format!("R2 multipart upload: {e}")))?;
            let upload_id = upload.upload_id().await;
            // Recorded before the first part, so an abandoned upload can be aborted.
            ctx.run(
                sql::RECORD_UPLOAD,
                &[
                    Param::from(&self.snapshot_id),
                    Param::from(&self.key),
                    Param::from(&upload_id),
                ],
            )
            .await?;
            self.multipart = Some((upload, Vec::new()));
        }
        let Some((upload, parts)) = self.multipart.as_mut() else {
            return Err(Failed("no multipart upload".into()));
        };
        ctx.budget
            .spend()
            .map_err(|_| Failed("subrequest budget exhausted before an upload part".into()))?;
        let number = parts.len() as u16 + 1;
        let uploaded = upload
            .upload_part(number, part)
            .await
            .map_err(|e| Failed(format!("R2 part {number}: {e}")))?;
        parts.push(uploaded);
        Ok(())
    }

    /// Stores what is left and completes the object: `(key, bytes, sha256)`.
    async fn complete(&mut self, ctx: &Ctx) -> Result<(String, u64, String), Failed> {
        let sha256 = hex::encode(std::mem::take(&mut self.hash).finalize());
        let last = std::mem::take(&mut self.part);
        if self.multipart.is_none() {
            let bucket = ctx
                .env
                .bucket(BACKUPS)
                .map_err(|e| Internal::new("R2 binding", e))?;
            ctx.budget
                .spend()
                .map_err(|_| Failed("subrequest budget exhausted before the upload".into()))?;
            bucket
                .put(&self.key, last)
                .execute()
                .await
                .map_err(|e| Failed(format!("R2 put: {e}")))?;
            return Ok((self.key.clone(), self.bytes, sha256));
        }
        if !last.is_empty() {
            self.send_part(ctx, last).await?;
        }
        let Some((upload, parts)) = self.multipart.take() else {
            return Err(Failed("no multipart upload".into()));
        };
        ctx.budget
            .spend()
            .map_err(|_| Failed("subrequest budget exhausted before completing".into()))?;
        upload
            .complete(parts)
            .await
            .map_err(|e| Failed(format!("R2 complete: {e}")))?;
        Ok((self.key.clone(), self.bytes, sha256))
    }

    /// A failed backup leaves no object behind.
    async fn abort(&mut self) {
        if let Some((upload, _)) = self.multipart.take() {
            if let Err(e) = upload.abort().await {
                worker::console_warn!("upload {} not aborted: {e}", self.key);
            }
        }
    }
}
