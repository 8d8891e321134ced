//! The `philia-bot config check` linter: every file of a config folder on its own, so one run lists as
//! much as it can (unknown files, TOML syntax, unknown keys, wrong types, and the bot's texts through the
//! checker their owner passes in).

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

use super::problem::{figment_problems, toml_error_line};
use super::{
    DatabaseSettings, EMBEDDED_DEFAULT, Environment, JobSettings, LlmSettings, LogSettings, Problem, RedisSettings,
    ServerSettings, Settings, ShopSettings, StaffSettings, TikTokSettings, WebhookSettings, WorkerSettings,
};

/// The settings files a config folder may hold.
pub const SETTINGS_FILES: &[&str] = &["default.toml", "local.toml", "production.toml"];

/// The other files of a config folder (the bot's texts, keywords and size chart): their names, and the
/// check that reads and validates them all. Their owners (the bot, the shop) know their shape; the
/// settings do not.
pub struct TextFiles<'a> {
    pub names: &'a [&'a str],
    pub check: &'a dyn Fn(&Path) -> Vec<Problem>,
}

/// Everything wrong with the files of `config_dir`: files nothing reads, each settings file on its own,
/// and the text files.
pub fn check_config_dir(config_dir: &Path, texts: &TextFiles<'_>) -> Vec<Problem> {
    let mut known = SETTINGS_FILES.to_vec();
    known.extend(texts.names);
    let mut problems = unknown_config_files(config_dir, &known);
    problems.extend(check_settings_files(config_dir));
    problems.extend((texts.check)(config_dir));
    problems
}

/// `.toml` files in `config_dir` that nothing reads (a misspelt file name would otherwise be ignored).
pub fn unknown_config_files(config_dir: &Path, known: &[&str]) -> Vec<Problem> {
    match std::fs::read_dir(config_dir) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(std::result::Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
                .iter()
                .filter(|name| name.ends_with(".toml") && !known.contains(&name.as_str()))
                .map(|name| {
                    Problem::new(
                        config_dir.join(name).display().to_string(),
                        "(file)",
                        format!("not a known config file (known: {})", known.join(", ")),
                    )
                })
                .collect()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => vec![Problem::new(config_dir.display().to_string(), "(folder)", format!("cannot read: {e}"))],
    }
}

/// Checks every settings file present in `config_dir` on its own: TOML syntax, unknown keys (all of them)
/// and wrong types (the first per section), so one run of `config check` lists as much as it can.
pub fn check_settings_files(config_dir: &Path) -> Vec<Problem> {
    SETTINGS_FILES
        .iter()
        .map(|name| config_dir.join(name))
        .filter(|path| path.exists())
        .flat_map(|path| check_settings_file(&path))
        .collect()
}

fn check_settings_file(path: &Path) -> Vec<Problem> {
    let source = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return vec![Problem::new(source, "(file)", format!("cannot read: {e}"))],
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            return vec![Problem::new(
                source,
                "(syntax)",
                e.message().to_owned()
                    + &toml_error_line(&text, &e).map(|l| format!(" (line {l})")).unwrap_or_default(),
            )];
        }
    };
    // The sections are the fields serde knows of `Settings`, besides the top-level `environment`.
    let sections: Vec<&str> = field_names::<Settings>().iter().copied().filter(|f| *f != "environment").collect();
    let mut problems = Vec::new();
    for (key, value) in &table {
        if key == "environment" {
            if let Err(e) = Environment::deserialize(value.clone()) {
                problems.push(Problem::new(&source, key, e.to_string()));
            }
            continue;
        }
        if !value.is_table() && sections.contains(&key.as_str()) {
            problems.push(Problem::new(
                &source,
                key,
                format!("must be a table ([{key}]), found a {}", value.type_str()),
            ));
            continue;
        }
        problems.extend(match key.as_str() {
            "log" => check_section::<LogSettings>(path, key, value),
            "server" => check_section::<ServerSettings>(path, key, value),
            "database" => check_section::<DatabaseSettings>(path, key, value),
            "redis" => check_section::<RedisSettings>(path, key, value),
            "worker" => check_section::<WorkerSettings>(path, key, value),
            "jobs" => check_section::<JobSettings>(path, key, value),
            "webhook" => check_section::<WebhookSettings>(path, key, value),
            "tiktok" => check_section::<TikTokSettings>(path, key, value),
            "llm" => check_section::<LlmSettings>(path, key, value),
            "shop" => check_section::<ShopSettings>(path, key, value),
            "staff" => check_section::<StaffSettings>(path, key, value),
            _ => vec![Problem::new(&source, key, format!("unknown section (known: {})", sections.join(", ")))],
        });
    }
    problems
}

/// Every settings section and the fields it knows, read from the structs.
pub fn sections() -> Vec<(&'static str, &'static [&'static str])> {
    field_names::<Settings>()
        .iter()
        .filter(|section| **section != "environment")
        .map(|section| (*section, section_fields(section)))
        .collect()
}

fn section_fields(section: &str) -> &'static [&'static str] {
    match section {
        "log" => field_names::<LogSettings>(),
        "server" => field_names::<ServerSettings>(),
        "database" => field_names::<DatabaseSettings>(),
        "redis" => field_names::<RedisSettings>(),
        "worker" => field_names::<WorkerSettings>(),
        "jobs" => field_names::<JobSettings>(),
        "webhook" => field_names::<WebhookSettings>(),
        "tiktok" => field_names::<TikTokSettings>(),
        "llm" => field_names::<LlmSettings>(),
        "shop" => field_names::<ShopSettings>(),
        "staff" => field_names::<StaffSettings>(),
        _ => &[],
    }
}

/// One section of a settings file read as `T`: every key `T` does not know (all of them, whatever else
/// is wrong), and the first value of a wrong type, with its field path. The file is read over the
/// embedded defaults, as loading does, so a section that sets only some fields is complete.
fn check_section<T: serde::de::DeserializeOwned>(path: &Path, section: &str, value: &toml::Value) -> Vec<Problem> {
    let source = path.display().to_string();
    let known = field_names::<T>();
    let mut problems: Vec<Problem> = value
        .as_table()
        .into_iter()
        .flat_map(|table| table.keys())
        .filter(|key| !known.contains(&key.as_str()))
        .map(|key| {
            Problem::new(&source, format!("{section}.{key}"), format!("unknown field (known: {})", known.join(", ")))
        })
        .collect();
    let layered = Figment::from(Toml::string(EMBEDDED_DEFAULT)).merge(Toml::file_exact(path));
    if let Err(error) = layered.focus(section).extract::<T>() {
        problems.extend(figment_problems(error).into_iter().map(|problem| Problem {
            source: source.clone(),
            field: format!("{section}.{}", problem.field),
            message: problem.message,
        }));
    }
    problems
}

/// The field names serde expects for a struct, read from the derive (which passes them to
/// `deserialize_struct`), so the list of known keys can never drift from the structs.
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Introspect<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Introspect<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("introspection only"))
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("introspection only"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

#[cfg(test)]
// figment's Jail closures return figment::Error, whose size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn wrong_type_and_unknown_keys_name_file_and_field() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_dir("config")?;
            jail.create_file(
                "config/default.toml",
                "[server]\nport = \"eighty\"\nprot = 1\n[worker]\nconcurency = 2\n[wrokers]\nx = 1\n",
            )?;
            let problems = check_settings_files(&jail.directory().join("config"));
            let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
            assert!(problems.iter().all(|p| p.source.ends_with("config/default.toml")), "{problems:?}");
            assert!(text.iter().any(|t| t.starts_with("server.port: invalid type")), "{text:?}");
            assert!(text.iter().any(|t| t.starts_with("server.prot: unknown field")), "{text:?}");
            assert!(text.iter().any(|t| t.starts_with("worker.concurency: unknown field")), "{text:?}");
            assert!(text.iter().any(|t| t.starts_with("wrokers: unknown section")), "{text:?}");
            assert!(Settings::load(&jail.directory().join("config")).is_err());
            Ok(())
        });
    }

    #[test]
    fn a_section_that_sets_a_few_fields_is_complete() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            jail.create_file("config/production.toml", "[database]\nmax_connections = 20\n")?;
            assert_eq!(check_settings_files(&jail.directory().join("config")), []);
            Ok(())
        });
    }

    #[test]
    fn toml_syntax_error_names_the_line() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            jail.create_file("config/local.toml", "[server]\nport = 80\nhost = \n")?;
            let problems = check_settings_files(&jail.directory().join("config"));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].field, "(syntax)");
            assert!(problems[0].message.contains("line 3"), "{problems:?}");
            Ok(())
        });
    }

    #[test]
    fn every_settings_section_is_checked() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            let sections: Vec<&str> =
                field_names::<Settings>().iter().copied().filter(|f| *f != "environment").collect();
            assert!(sections.len() >= 10 && !sections.contains(&"config_dir"), "{sections:?}");
            assert!(super::sections().iter().all(|(_, fields)| !fields.is_empty()), "a section without its fields");
            let file: String = sections.iter().map(|section| format!("[{section}]\n")).collect();
            jail.create_file("config/default.toml", &file)?;
            assert_eq!(check_settings_files(&jail.directory().join("config")), []);
            Ok(())
        });
    }
}
