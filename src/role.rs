//! Which parts of the system a process runs (`serve --role`), and what each role requires of the
//! settings beyond their own validation. `startup` builds a process for its role.

use crate::config::{DatabaseKind, Environment, Problem, Settings};

/// Which parts of the system a process runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The webhook ingress and the worker pool in one process (one Railway service does everything).
    #[default]
    All,
    /// Only the HTTP ingress: verifies, parses and enqueues webhooks.
    Web,
    /// Only the worker pool: consumes jobs and replies.
    Worker,
}

impl Role {
    pub fn runs_web(self) -> bool {
        matches!(self, Role::All | Role::Web)
    }

    pub fn runs_worker(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Web => "web",
            Role::Worker => "worker",
        }
    }

    /// What `production` requires of a process with this role, and what split roles require anywhere,
    /// beyond [`Settings::validate`].
    pub fn requirements(self, settings: &Settings) -> Vec<Problem> {
        let mut problems = Vec::new();
        if settings.environment == Environment::Production {
            let source = "production";
            if settings.tiktok.webhook_secret.is_none() && self.runs_web() {
                problems.push(Problem::new(
                    source,
                    "tiktok.webhook_secret",
                    "required: set TIKTOK_WEBHOOK_SECRET (unsigned webhooks are never accepted in production)",
                ));
            }
            // A dry run must be asked for: without credentials no customer would get a reply.
            let tiktok = &settings.tiktok;
            if tiktok.dry_run.is_none() && !tiktok.has_credentials() {
                problems.push(Problem::new(
                    source,
                    "tiktok.access_token",
                    "no TikTok credentials, so no customer would get a reply: set TIKTOK_ACCESS_TOKEN, or \
                     TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET; or set PHILIA_TIKTOK__DRY_RUN=true to run \
                     without sending on purpose",
                ));
            }
            if settings.database.kind() != Some(DatabaseKind::Postgres) {
                problems.push(Problem::new(
                    source,
                    "database.url",
                    "must be a PostgreSQL URL: set DATABASE_URL=postgres://… (SQLite is for local use only)",
                ));
            }
        }
        if settings.redis.url.is_none() {
            if settings.environment == Environment::Production {
                // The in-process queue loses every accepted webhook at the next deploy, and TikTok does not
                // send again what was answered 200.
                problems.push(Problem::new(
                    "production",
                    "redis.url",
                    "required: set REDIS_URL (the in-process queue loses accepted messages at every deploy)",
                ));
            } else if self != Role::All {
                problems.push(Problem::new(
                    format!("--role {}", self.as_str()),
                    "redis.url",
                    "required: set REDIS_URL (split web and worker processes share their queue through Redis)",
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_names_each_missing_setting() {
        let mut settings = Settings::defaults();
        settings.environment = Environment::Production;
        let fields =
            |role: Role| -> Vec<String> { role.requirements(&settings).into_iter().map(|p| p.field).collect() };
        assert_eq!(fields(Role::Web), ["tiktok.webhook_secret", "tiktok.access_token", "database.url", "redis.url"]);
        // Issue 14, failure 8: one process doing everything still needs Redis in production.
        assert_eq!(fields(Role::All), ["tiktok.webhook_secret", "tiktok.access_token", "database.url", "redis.url"]);
        assert_eq!(fields(Role::Worker), ["tiktok.access_token", "database.url", "redis.url"]);
    }
}
