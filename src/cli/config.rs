//! `philia-bot config check`: every file of the config folder, then the layered settings, then what the
//! role requires; prints `ok` or one `file: field: what is wrong` line per problem.

use std::path::Path;

use clap::Subcommand;

use super::Exit;
use crate::bot::{self, BotFiles};
use crate::config::check::{TextFiles, check_config_dir};
use crate::config::{Problem, Settings};
use crate::role::Role;
use crate::shop;

#[derive(Subcommand)]
pub enum Action {
    /// Validate every config file and the effective settings; print `ok` (exit 0) or each problem as
    /// `file: field: what is wrong` (exit 1).
    Check {
        /// Also check what this role requires (e.g. Redis for split roles).
        #[arg(long, value_enum, env = "PHILIA_ROLE", default_value = "all")]
        role: Role,
    },
}

/// Prints the answer; [`Exit::Failure`] when there are problems (the answer, not a fatal error).
pub fn run(config_dir: &Path, action: Action) -> Exit {
    let Action::Check { role } = action;
    let (problems, warnings) = problems(config_dir, role);
    for warning in &warnings {
        println!("warning: {warning}");
    }
    if problems.is_empty() {
        println!("ok");
        return Exit::Success;
    }
    for problem in &problems {
        println!("{problem}");
    }
    Exit::Failure
}

/// Every problem `config check` reports, in the order an operator fixes them: the files on their own
/// first; once they are fine, the layered result (environment variables included), the role, and the
/// texts against the shop's settings (facts they use, amounts written by hand: the warnings).
fn problems(config_dir: &Path, role: Role) -> (Vec<Problem>, Vec<Problem>) {
    let names = [
        bot::REPLIES_FILE,
        bot::intent::INTENTS_FILE,
        bot::intent::FAQ_FILE,
        bot::intent::EXAMPLES_FILE,
        shop::SIZE_CHART_FILE,
    ];
    let check = |dir: &Path| BotFiles::load(dir).err().unwrap_or_default();
    let mut problems = check_config_dir(config_dir, &TextFiles { names: &names, check: &check });
    // On Railway every setting is an environment variable: a misspelt one is as wrong as a misspelt key.
    problems.extend(crate::config::unknown_env_vars());
    if !problems.is_empty() {
        return (problems, Vec::new());
    }
    let settings = match Settings::load(config_dir) {
        Ok(settings) => settings,
        Err(e) => return (e.0, Vec::new()),
    };
    let mut problems = role.requirements(&settings);
    let texts = match BotFiles::load(config_dir) {
        Ok(files) => crate::startup::check_texts(&files, &settings.shop),
        Err(files) => bot::facts::TextCheck { problems: files, warnings: Vec::new() },
    };
    problems.extend(texts.problems);
    (problems, texts.warnings)
}
