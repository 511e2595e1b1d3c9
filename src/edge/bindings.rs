//! One invocation's view of the platform: configuration, the clock reading, the subrequest
//! budget, and thin wrappers over KV, D1 and Queues that spend from the budget and turn
//! JavaScript errors into [`Internal`] (logged, never sent to a client).

use crate::api::problem::Problem;
use crate::budget::Budget;
use crate::config::{require_secret, Config, GitLabInstance, Secret};
use crate::edge::binding_faults::{self, Op};
use std::cell::OnceCell;
use std::rc::Rc;
use wasm_bindgen::JsValue;
use worker::{
    D1Database, D1PreparedStatement, D1Result, Env, QueueContentType, RawMessageBuilder,
    SendMessage,
};

/// An internal failure: the detail is for the log only.
#[derive(Debug)]
pub struct Internal(pub String);

impl Internal {
    pub fn new(context: &str, e: impl std::fmt::Display) -> Self {
        Internal(format!("{context}: {e}"))
    }
}

impl From<Internal> for Problem {
    fn from(e: Internal) -> Problem {
        worker::console_error!("internal error: {}", e.0);
        Problem::Internal
    }
}

pub const STATE_KV: &str = "STATE_KV";
pub const DB: &str = "DB";
pub const BACKUP_QUEUE: &str = "BACKUP_QUEUE";
pub const SYNC_QUEUE: &str = "SYNC_QUEUE";
pub const ANALYSIS_QUEUE: &str = "ANALYSIS_QUEUE";
/// R2: the backups' git bundles.
pub const BACKUPS: &str = "BACKUPS";

pub struct Ctx {
    pub env: Env,
    pub config: Rc<Config>,
    pub budget: Budget,
    /// Unix seconds, read once.
    pub now: i64,
    /// Random id sent as `x-onecode-invocation` on outbound calls (tracing and subrequest counts).
    pub invocation: String,
    /// The configured GitLab instances, parsed on first use.
    gitlab: OnceCell<Result<Vec<GitLabInstance>, Problem>>,
    /// The D1 binding, looked up on first use (a push prepares several statements).
    db: OnceCell<D1Database>,
}

/// A D1 parameter.
pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

impl Param<'_> {
    fn js(&self) -> JsValue {
        match self {
            Param::Text(s) => JsValue::from_str(s),
            // D1 refuses BigInt; every integer we bind is far below 2^53.
            Param::Int(n) => JsValue::from_f64(*n as f64),
            Param::Null => JsValue::NULL,
        }
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(s: &'a str) -> Self {
        Param::Text(s)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(s: &'a String) -> Self {
        Param::Text(s)
    }
}

impl From<i64> for Param<'_> {
    fn from(n: i64) -> Self {
        Param::Int(n)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(n: Option<i64>) -> Self {
        n.map_or(Param::Null, Param::Int)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Param::Null, Param::Text)
    }
}

thread_local! {
    /// The configuration, read from the first invocation's environment and kept for the
    /// isolate's life: an isolate's variables and secrets never change (a new value deploys a
    /// new version, which starts new isolates). A configuration error is not kept.
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
}

impl Ctx {
    pub fn new(env: Env) -> Result<Ctx, Problem> {
        let config = match CONFIG.with(|c| c.get().cloned()) {
            Some(config) => config,
            None => {
                let config = Rc::new(Config::from_lookup(|name| lookup(&env, name))?);
                CONFIG.with(|c| c.get_or_init(|| config).clone())
            }
        };
        let invocation =
            crate::edge::platform::random_uuid().map_err(|e| Problem::from(Internal(e)))?;
        Ok(Ctx {
            env,
            budget: Budget::new(config.subrequest_limit),
            config,
            now: crate::edge::platform::now(),
            invocation,
            gitlab: OnceCell::new(),
            db: OnceCell::new(),
        })
    }

    /// The GitLab instances the gateway may connect (see `config::gitlab_instances`).
    pub fn gitlab_instances(&self) -> Result<&[GitLabInstance], Problem> {
        self.gitlab
            .get_or_init(|| crate::config::gitlab_instances(|n| lookup(&self.env, n), &self.config))
            .as_deref()
            .map_err(Clone::clone)
    }

    pub fn secret(&self, name: &str) -> Result<Secret, Problem> {
        require_secret(|n| lookup(&self.env, n), name)
    }

    /// One more platform call: counted against the budget, and failed when the suite armed a
    /// fault for it (`binding_faults`, e2e builds only).
    fn spend(&self, what: &str, op: Op) -> Result<(), Internal> {
        self.budget
            .spend()
            .map_err(|_| Internal(format!("subrequest budget exhausted before {what}")))?;
        binding_faults::check(op).map_err(|e| Internal::new(what, e))
    }

    pub fn statement(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<D1PreparedStatement, Internal> {
        let values: Vec<JsValue> = params.iter().map(Param::js).collect();
        self.db()?
            .prepare(sql)
            .bind(&values)
            .map_err(|e| Internal::new("D1 bind", e))
    }

    fn db(&self) -> Result<&D1Database, Internal> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let db = self
            .env
            .d1(DB)
            .map_err(|e| Internal::new("D1 binding", e))?;
        Ok(self.db.get_or_init(|| db))
    }

    /// Runs statements as one D1 batch (one transaction, one subrequest).
    pub async fn batch(
        &self,
        statements: Vec<D1PreparedStatement>,
    ) -> Result<Vec<D1Result>, Internal> {
        self.spend("D1 batch", Op::D1Batch)?;
        self.db()?
            .batch(statements)
            .await
            .map_err(|e| Internal::new("D1 batch", e))
    }

    pub async fn run(&self, sql: &str, params: &[Param<'_>]) -> Result<D1Result, Internal> {
        let statement = self.statement(sql, params)?;
        self.spend("D1 run", Op::D1Query)?;
        statement
            .run()
            .await
            .map_err(|e| Internal::new("D1 run", e))
    }

    pub async fn rows<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<T>, Internal> {
        let statement = self.statement(sql, params)?;
        self.spend("D1 query", Op::D1Query)?;
        let result = statement
            .all()
            .await
            .map_err(|e| Internal::new("D1 query", e))?;
        result.results().map_err(|e| Internal::new("D1 rows", e))
    }

    pub async fn kv_get(&self, key: &str) -> Result<Option<String>, Internal> {
        self.spend("KV get", Op::KvGet)?;
        let kv = self
            .env
            .kv(STATE_KV)
            .map_err(|e| Internal::new("KV binding", e))?;
        kv.get(key)
            .text()
            .await
            .map_err(|e| Internal::new("KV get", e))
    }

    pub async fn kv_put(&self, key: &str, value: &str, ttl_secs: u64) -> Result<(), Internal> {
        self.spend("KV put", Op::KvPut)?;
        let kv = self
            .env
            .kv(STATE_KV)
            .map_err(|e| Internal::new("KV binding", e))?;
        kv.put(key, value)
            .map_err(|e| Internal::new("KV put", e))?
            .expiration_ttl(ttl_secs)
            .execute()
            .await
            .map_err(|e| Internal::new("KV put", e))
    }

    pub async fn kv_delete(&self, key: &str) -> Result<(), Internal> {
        self.spend("KV delete", Op::KvDelete)?;
        let kv = self
            .env
            .kv(STATE_KV)
            .map_err(|e| Internal::new("KV binding", e))?;
        kv.delete(key)
            .await
            .map_err(|e| Internal::new("KV delete", e))
    }

    /// Sends JSON messages (≤ 100, each ≤ 128 KB: the caller chunks) in one `sendBatch`.
    pub async fn send_batch<M: serde::Serialize>(
        &self,
        queue: &str,
        messages: &[M],
        delay_secs: u32,
    ) -> Result<(), Internal> {
        if messages.is_empty() {
            return Ok(());
        }
        self.spend("queue sendBatch", Op::QueueSend)?;
        let q = self
            .env
            .queue(queue)
            .map_err(|e| Internal::new("queue binding", e))?;
        let mut bodies = Vec::with_capacity(messages.len());
        let mut batch: Vec<SendMessage<JsValue>> = Vec::with_capacity(messages.len());
        for m in messages {
            let json = serde_json::to_string(m).map_err(|e| Internal::new("message JSON", e))?;
            let mut builder = RawMessageBuilder::new(JsValue::from_str(&json));
            if delay_secs > 0 {
                builder = builder.delay_seconds(delay_secs);
            }
            batch.push(builder.build_with_content_type(QueueContentType::Text));
            bodies.push(json);
        }
        q.send_raw_batch(batch)
            .await
            .map_err(|e| Internal::new("queue sendBatch", e))?;
        crate::edge::queue_trace::sent(queue, bodies.iter().map(String::as_str));
        Ok(())
    }
}

/// Rows changed by statement `i` of a batch (0 when D1 reports none).
pub fn changes(results: &[D1Result], i: usize) -> u64 {
    results
        .get(i)
        .and_then(|r| r.meta().ok().flatten())
        .and_then(|m| m.changes)
        .unwrap_or(0) as u64
}

/// Vars and secrets are both plain text bindings; secrets win when both exist.
pub(super) fn lookup(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|s| s.to_string())
        .or_else(|| env.var(name).ok().map(|v| v.to_string()))
}
