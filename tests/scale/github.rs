//! The simulation's GitHub: what an org's access-audit reads answer, fed to the gateway's own
//! reading machine (`onecode_edge::access::reading`), and one access snapshot step spent as
//! `edge::access::snapshot::step` spends an invocation's subrequest budget.

use onecode_edge::access::reading::{Answer, Next, Org, Phase, Progress, Repository};
use onecode_edge::budget::Budget;

/// Subrequests a step spends before it reads (`edge::access::snapshot::step`): the org and the
/// run from D1, an installation token, the org's repositories from D1.
const STEP_OVERHEAD: u32 = 4;
/// What a step keeps back for its own writes (`RESERVE` in `edge::access::snapshot`).
const STEP_RESERVE: u32 = 4;

/// An org as its GitHub answers the access reads: its members (the first three admins, the
/// last two without 2FA), no outside collaborator, one pending invitation, and the default
/// branch of every other repository protected (reviews and a required check).
pub struct AccessAnswers<'a> {
    pub login: &'a str,
    pub members: &'a [String],
}

const PROTECTION: &str = r#"{"required_status_checks":{"strict":true,"contexts":["ci/build"],"checks":[{"context":"ci/build","app_id":15368}]},
"required_pull_request_reviews":{"dismiss_stale_reviews":true,"require_code_owner_reviews":false,"required_approving_review_count":1},
"enforce_admins":{"enabled":false},"allow_force_pushes":{"enabled":false},"allow_deletions":{"enabled":false}}"#;

fn logins(names: &[String]) -> String {
    let page: Vec<_> = names
        .iter()
        .map(|login| serde_json::json!({"login": login, "type": "User", "site_admin": false}))
        .collect();
    serde_json::to_string(&page).expect("logins JSON")
}

impl AccessAnswers<'_> {
    fn page(&self, phase: Phase) -> String {
        let members = self.members;
        match phase {
            Phase::Settings => serde_json::json!({
                "login": self.login,
                "two_factor_requirement_enabled": true,
                "default_repository_permission": "read",
                "members_can_create_public_repositories": false,
            })
            .to_string(),
            Phase::Members => logins(members),
            Phase::Admins => logins(&members[..members.len().min(3)]),
            Phase::TwoFactor => logins(&members[members.len().saturating_sub(2)..]),
            Phase::Invitations => {
                r#"[{"id":1,"login":"new-hire","role":"direct_member"}]"#.to_string()
            }
            Phase::OutsideCollaborators | Phase::Repositories | Phase::Done => "[]".to_string(),
        }
    }

    fn repository(&self, index: usize) -> Vec<Answer> {
        let classic = if index.is_multiple_of(2) {
            Answer::Ok(PROTECTION.to_string())
        } else {
            Answer::NotFound
        };
        vec![classic, Answer::Ok("[]".to_string())]
    }

    /// Reads what one invocation's budget (`SUBREQUEST_LIMIT`) allows into `progress`: true
    /// when the reading is done.
    pub fn step(
        &self,
        subrequest_limit: u32,
        org: &Org<'_>,
        repositories: &[Repository],
        progress: &mut Progress,
        now: i64,
    ) -> bool {
        let budget = Budget::new(subrequest_limit);
        for _ in 0..STEP_OVERHEAD {
            budget.spend().expect("a step's overhead fits the budget");
        }
        loop {
            let next = progress.next(org, repositories);
            let cost = match &next {
                Next::Done => return true,
                Next::Page(_) => 1,
                Next::Repository(_, urls) => urls.len().max(1) as u32,
            };
            if budget.remaining() < cost + STEP_RESERVE {
                return false;
            }
            for _ in 0..cost {
                budget.spend().expect("checked against the budget");
            }
            match next {
                Next::Done => return true,
                Next::Page(_) => progress
                    .page_read(org, &self.page(progress.phase), None, now)
                    .expect("the simulated page parses"),
                Next::Repository(index, _) => progress
                    .repository_read(org, &repositories[index], self.repository(index), now)
                    .expect("the simulated protection parses"),
            }
        }
    }
}

/// A whole reading with no database: the steps it takes under `subrequest_limit` and the bytes
/// of progress JSON the steps before the last write (`ADVANCE_ACCESS_RUN`).
pub fn reading_cost(
    answers: &AccessAnswers<'_>,
    subrequest_limit: u32,
    org: &Org<'_>,
    repositories: &[Repository],
    now: i64,
) -> (u64, u64) {
    let mut progress = Progress::start(org);
    let (mut steps, mut written) = (1, 0);
    while !answers.step(subrequest_limit, org, repositories, &mut progress, now) {
        written += serde_json::to_string(&progress)
            .expect("progress JSON")
            .len() as u64;
        steps += 1;
    }
    (steps, written)
}
