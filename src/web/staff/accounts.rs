//! Staff accounts: who may sign in to the console. Created, removed and given a new password from the
//! command line (`philia-bot staff`); passwords are kept as argon2id hashes. Removing an account or
//! resetting its password ends its sessions, so the change takes effect in every open browser at once.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::store::entities::{staff_accounts, staff_sessions};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0:?} is not a staff name: use 1 to 40 letters, digits, '.', '-' or '_'")]
    BadName(String),
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("there is already a staff account {0:?}")]
    Exists(String),
    #[error("there is no staff account {0:?} (see `philia-bot staff list`)")]
    NotFound(String),
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// A staff name as stored: trimmed and lowercase, so "Ana" and "ana " are one account.
pub fn normalize_name(name: &str) -> Result<String, AccountError> {
    let name = name.trim().to_lowercase();
    let fits = (1..=40).contains(&name.chars().count())
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if fits { Ok(name) } else { Err(AccountError::BadName(name)) }
}

/// The argon2id hash of `password` with a fresh salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::ShortPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches `hash` (a PHC string; a malformed one matches nothing).
pub fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash of nothing anyone types, checked when the name is unknown, so a wrong name takes as long to
/// refuse as a wrong password and does not tell which accounts exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that never signs in").unwrap_or_default())
}

/// Creates an account; its password is hashed here.
pub async fn add(db: &impl ConnectionTrait, name: &str, password: &str) -> Result<staff_accounts::Model, AccountError> {
    let name = normalize_name(name)?;
    let hash = hash_password(password)?;
    if find(db, &name).await?.is_some() {
        return Err(AccountError::Exists(name));
    }
    let now = Utc::now();
    let account = staff_accounts::ActiveModel {
        name: Set(name),
        password_hash: Set(hash),
        created_at: Set(now),
        password_changed_at: Set(now),
        ..Default::default()
    };
    Ok(account.insert(db).await?)
}

/// The account named `name` (in any case).
pub async fn find(db: &impl ConnectionTrait, name: &str) -> Result<Option<staff_accounts::Model>, DbErr> {
    let Ok(name) = normalize_name(name) else { return Ok(None) };
    staff_accounts::Entity::find().filter(staff_accounts::Column::Name.eq(name)).one(db).await
}

/// Every account, by name.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<staff_accounts::Model>, DbErr> {
    staff_accounts::Entity::find().order_by_asc(staff_accounts::Column::Name).all(db).await
}

/// Removes an account and signs it out everywhere; the audit log keeps its name.
pub async fn remove(db: &impl ConnectionTrait, name: &str) -> Result<(), AccountError> {
    let account = find(db, name).await?.ok_or_else(|| AccountError::NotFound(name.trim().to_lowercase()))?;
    end_sessions(db, account.id).await?;
    staff_accounts::Entity::delete_by_id(account.id).exec(db).await?;
    Ok(())
}

/// Gives an account a new password and signs it out everywhere.
pub async fn reset_password(db: &impl ConnectionTrait, name: &str, password: &str) -> Result<(), AccountError> {
    let account = find(db, name).await?.ok_or_else(|| AccountError::NotFound(name.trim().to_lowercase()))?;
    let hash = hash_password(password)?;
    end_sessions(db, account.id).await?;
    let mut model: staff_accounts::ActiveModel = account.into();
    model.password_hash = Set(hash);
    model.password_changed_at = Set(Utc::now());
    model.update(db).await?;
    Ok(())
}

/// The account when `password` is its password. Slow on purpose (argon2): call it off the async threads.
pub fn verify(account: Option<&staff_accounts::Model>, password: &str) -> bool {
    match account {
        Some(account) => password_matches(&account.password_hash, password),
        None => {
            password_matches(decoy_hash(), password);
            false
        }
    }
}

async fn end_sessions(db: &impl ConnectionTrait, staff_id: i64) -> Result<(), DbErr> {
    staff_sessions::Entity::delete_many().filter(staff_sessions::Column::StaffId.eq(staff_id)).exec(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_lowercase_and_plain() {
        assert_eq!(normalize_name("  Ana ").unwrap(), "ana");
        assert_eq!(normalize_name("kim.o-2_x").unwrap(), "kim.o-2_x");
        assert!(matches!(normalize_name(""), Err(AccountError::BadName(_))));
        assert!(matches!(normalize_name("a b"), Err(AccountError::BadName(_))));
        assert!(matches!(normalize_name(&"x".repeat(41)), Err(AccountError::BadName(_))));
    }

    #[test]
    fn a_password_is_hashed_with_argon2id_and_only_it_matches() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches(&hash, "correct horse battery"));
        assert!(!password_matches(&hash, "correct horse battery "));
        assert!(!password_matches("not a hash", "correct horse battery"));
        assert!(matches!(hash_password("short"), Err(AccountError::ShortPassword)));
    }
}
