//! `philia-bot staff add|remove|reset-password|list`: the accounts that sign in to the staff console.
//! Passwords are typed at a hidden prompt (twice), or read from standard input when it is not a
//! terminal, so a script can pipe one in; they never appear on the command line.

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;

use super::desk::{Desk, table};
use crate::web::staff::accounts;

#[derive(Subcommand)]
pub enum Action {
    /// Create a staff account; the password is prompted for.
    Add { name: String },
    /// Remove a staff account; it is signed out everywhere at once.
    Remove { name: String },
    /// Give a staff account a new password (prompted for); it is signed out everywhere.
    ResetPassword { name: String },
    /// List the staff accounts.
    List,
}

pub async fn run(desk: &Desk, action: Action) -> anyhow::Result<()> {
    let db = desk.db();
    match action {
        Action::Add { name } => {
            let name = accounts::normalize_name(&name)?;
            if accounts::find(db, &name).await?.is_some() {
                return Err(accounts::AccountError::Exists(name).into());
            }
            let password = new_password(&name)?;
            let account = accounts::add(db, &name, &password).await?;
            println!("{}: staff account created; sign in at /staff", account.name);
        }
        Action::Remove { name } => {
            accounts::remove(db, &name).await?;
            println!("{}: staff account removed, signed out everywhere", name.trim().to_lowercase());
        }
        Action::ResetPassword { name } => {
            let Some(account) = accounts::find(db, &name).await? else {
                return Err(accounts::AccountError::NotFound(name.trim().to_lowercase()).into());
            };
            let password = new_password(&account.name)?;
            accounts::reset_password(db, &account.name, &password).await?;
            println!("{}: new password set, signed out everywhere", account.name);
        }
        Action::List => {
            let created = format!("CREATED ({})", desk.zone());
            let changed = format!("PASSWORD SET ({})", desk.zone());
            let mut t = table(&["NAME", &created, &changed]);
            let all = accounts::list(db).await?;
            for account in &all {
                t.add_row([
                    account.name.clone(),
                    desk.local(account.created_at),
                    desk.local(account.password_changed_at),
                ]);
            }
            println!("{t}\n{} staff account(s)", all.len());
        }
    }
    Ok(())
}

/// The new password: prompted twice, hidden, at a terminal; else the first line of standard input.
fn new_password(name: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        accounts::hash_password(&password)?;
        return Ok(password);
    }
    loop {
        let password = rpassword::prompt_password(format!("password for {name}: "))?;
        if password.chars().count() < accounts::MIN_PASSWORD_CHARS {
            eprintln!("too short: use at least {} characters", accounts::MIN_PASSWORD_CHARS);
            continue;
        }
        if rpassword::prompt_password("the same password again: ")? == password {
            return Ok(password);
        }
        eprintln!("the two passwords differ; again");
    }
}
