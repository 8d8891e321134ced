//! Deploy as code: docker-compose.yml, the CI workflow, railway.toml, railway.worker.toml and the Dockerfile say
//! what the README says, checked here where no Docker engine runs; and the health probe their checks run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestDatabase, TestRedis, report_skip, spawn_app, spawn_app_with, test_settings, use_redis};
use philia_bot::healthcheck;
use philia_bot::role::Role;

const BIN: &str = env!("CARGO_BIN_EXE_philia-bot");

fn repo_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(repo_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The crate's `rust-version`, the toolchain CI and the image build with.
fn rust_version() -> String {
    let manifest: toml::Table = repo_file("Cargo.toml").parse().expect("Cargo.toml parses");
    manifest["package"]["rust-version"].as_str().expect("Cargo.toml has package.rust-version").to_owned()
}

// ---------------------------------------------------------------------------------------------------------
// docker-compose.yml

#[derive(Deserialize)]
struct Compose {
    services: BTreeMap<String, ComposeService>,
    volumes: BTreeMap<String, IgnoredAny>,
}

#[derive(Deserialize)]
struct ComposeService {
    image: Option<String>,
    build: Option<String>,
    command: Option<Vec<String>>,
    #[serde(default)]
    environment: BTreeMap<String, Option<String>>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    depends_on: BTreeMap<String, DependsOn>,
    healthcheck: Option<ComposeHealthcheck>,
}

#[derive(Deserialize)]
struct DependsOn {
    condition: String,
}

#[derive(Deserialize)]
struct ComposeHealthcheck {
    #[serde(default)]
    test: Vec<String>,
    #[serde(default)]
    disable: bool,
}

fn compose() -> Compose {
    serde_saphyr::from_str(&repo_file("docker-compose.yml")).expect("docker-compose.yml is YAML of the expected shape")
}

fn service<'a>(compose: &'a Compose, name: &str) -> &'a ComposeService {
    compose.services.get(name).unwrap_or_else(|| panic!("docker-compose.yml has no `{name}` service"))
}

fn conditions(service: &ComposeService) -> BTreeMap<&str, &str> {
    service.depends_on.iter().map(|(name, dependency)| (name.as_str(), dependency.condition.as_str())).collect()
}

/// The port a `test: [CMD, philia-bot, health, --url, http://127.0.0.1:PORT/ready]` check asks, when the
/// check is that, in exec form (the image has no shell for CMD-SHELL).
fn probed_ready_port(test: &[String]) -> Option<u16> {
    let [cmd, bin, health, flag, url] = test else { return None };
    if (cmd.as_str(), bin.as_str(), health.as_str(), flag.as_str()) != ("CMD", "philia-bot", "health", "--url") {
        return None;
    }
    let url = url::Url::parse(url).ok()?;
    (url.host_str() == Some("127.0.0.1") && url.path() == "/ready").then_some(url.port()?)
}

#[test]
fn compose_runs_postgres_16_and_redis_7_with_health_checks_and_named_volumes() {
    let compose = compose();
    for (name, image, probe) in [("postgres", "postgres:16", "pg_isready"), ("redis", "redis:7", "redis-cli")] {
        let database = service(&compose, name);
        assert!(database.image.as_deref().is_some_and(|i| i.starts_with(image)), "{name} runs {image}");
        let check = database.healthcheck.as_ref().unwrap_or_else(|| panic!("{name} has a health check"));
        assert_eq!(check.test.first().map(String::as_str), Some("CMD"), "{name}: exec-form health check");
        assert!(check.test.iter().any(|part| part == probe), "{name} is probed with {probe}: {:?}", check.test);
        assert!(!database.volumes.is_empty(), "{name} keeps its data in a volume");
        for volume in &database.volumes {
            let source = volume.split(':').next().unwrap_or_default();
            assert!(compose.volumes.contains_key(source), "{name}: `{volume}` mounts a named volume declared below");
        }
    }
    let redis = service(&compose, "redis").command.as_deref().unwrap_or_default().join(" ");
    assert!(redis.contains("--appendonly yes"), "the job queue's Redis keeps an append-only file: {redis}");
}

#[test]
fn compose_migrates_once_before_web_and_worker_start() {
    let compose = compose();
    let migrate = service(&compose, "migrate");
    assert_eq!(migrate.command.as_deref(), Some(&["philia-bot", "migrate", "up"].map(String::from)[..]));
    assert_eq!(conditions(migrate), BTreeMap::from([("postgres", "service_healthy")]));
    assert!(migrate.healthcheck.as_ref().is_some_and(|check| check.disable), "a one-shot needs no server check");
    for name in ["web", "worker"] {
        assert_eq!(
            conditions(service(&compose, name)),
            BTreeMap::from([
                ("migrate", "service_completed_successfully"),
                ("postgres", "service_healthy"),
                ("redis", "service_healthy"),
            ]),
            "{name} starts after the migration succeeded and the databases are healthy"
        );
    }
}

#[test]
fn compose_web_and_worker_run_their_roles_from_the_one_project_image() {
    let compose = compose();
    let (migrate, web, worker) = (service(&compose, "migrate"), service(&compose, "web"), service(&compose, "worker"));
    for (name, app) in [("migrate", migrate), ("web", web), ("worker", worker)] {
        assert_eq!(app.build.as_deref(), Some("."), "{name} is built from the repository's Dockerfile");
        assert_eq!(app.image, web.image, "{name} shares the one image");
    }
    let serve = |role: &str| ["philia-bot", "serve", "--role", role].map(String::from).to_vec();
    assert_eq!(web.command, Some(serve("web")));
    assert_eq!(worker.command, Some(serve("worker")));

    assert!(web.ports.iter().any(|p| p == "8000:8000"), "web publishes port 8000: {:?}", web.ports);
    let web_check = &web.healthcheck.as_ref().expect("web has a health check").test;
    assert_eq!(probed_ready_port(web_check), Some(8000), "web is checked on /ready: {web_check:?}");

    let metrics_port = worker.environment.get("PHILIA_SERVER__METRICS_PORT").cloned().flatten();
    let metrics_port: u16 = metrics_port.expect("the worker sets PHILIA_SERVER__METRICS_PORT").parse().unwrap();
    assert!(
        worker.ports.iter().any(|p| p.rsplit(':').next() == Some(metrics_port.to_string().as_str())),
        "the worker publishes its metrics port {metrics_port}: {:?}",
        worker.ports
    );
    let worker_check = &worker.healthcheck.as_ref().expect("worker has a health check").test;
    assert_eq!(probed_ready_port(worker_check), Some(metrics_port), "worker is checked on /ready: {worker_check:?}");
}

/// Variables `.env.example` names (set or commented out) that compose must not pass through: the tests' own,
/// and what each service's command and the image fix (port, role, config folder) or compose itself uses.
const NOT_PASSED_TO_CONTAINERS: &[&str] =
    &["PORT", "PHILIA_ROLE", "PHILIA_CONFIG_DIR", "POSTGRES_PASSWORD", "PHILIA_REQUIRE_SERVICES"];

fn env_example_variables() -> Vec<String> {
    repo_file(".env.example")
        .lines()
        .filter_map(|line| {
            let name = line.trim_start_matches('#').trim_start().split_once('=')?.0;
            let is_name =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn compose_points_the_bot_at_its_databases_and_passes_every_documented_variable_through() {
    let compose = compose();
    for name in ["migrate", "web", "worker"] {
        let environment = &service(&compose, name).environment;
        let value = |key: &str| environment.get(key).cloned().flatten().unwrap_or_default();
        assert_eq!(url::Url::parse(&value("DATABASE_URL")).unwrap().host_str(), Some("postgres"), "{name}");
        assert_eq!(url::Url::parse(&value("REDIS_URL")).unwrap().host_str(), Some("redis"), "{name}");
        for variable in env_example_variables() {
            if variable.starts_with("TEST_") || NOT_PASSED_TO_CONTAINERS.contains(&variable.as_str()) {
                continue;
            }
            assert!(environment.contains_key(&variable), "{name}: .env.example's {variable} reaches the container");
        }
        for (variable, value) in environment {
            if variable.contains("SECRET") || variable.contains("TOKEN") || variable.ends_with("_KEY") {
                assert_eq!(value, &None, "{name}: {variable} is passed through from .env, never written here");
            }
        }
    }
}

/// `docker compose` (v2) and `docker-compose` (Debian's 1.29), whichever are installed.
fn compose_tools() -> Vec<Vec<&'static str>> {
    let runs = |argv: &[&str]| Command::new(argv[0]).args(&argv[1..]).output().is_ok_and(|o| o.status.success());
    [vec!["docker", "compose"], vec!["docker-compose"]]
        .into_iter()
        .filter(|tool| runs(&[tool.as_slice(), &["version"]].concat()))
        .collect()
}

/// Whether a missing tool must fail the test instead of skipping it (CI sets `PHILIA_REQUIRE_SERVICES=1`).
fn tools_required() -> bool {
    std::env::var("PHILIA_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

#[test]
fn compose_file_is_valid_for_docker_compose() {
    let tools = compose_tools();
    if tools.is_empty() {
        let why = "neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose)";
        assert!(!tools_required(), "{why}, and PHILIA_REQUIRE_SERVICES=1");
        report_skip("deploy::compose_file_is_valid_for_docker_compose", why);
        return;
    }
    // An empty env file: the check is of the repository's file, not of a developer's .env.
    let empty_env = tempfile::NamedTempFile::new().unwrap();
    for tool in tools {
        let output = Command::new(tool[0])
            .args(&tool[1..])
            .arg("--env-file")
            .arg(empty_env.path())
            .args(["config", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "`{} config` rejects docker-compose.yml:\n{}{}",
            tool.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// .github/workflows/ci.yml

#[derive(Deserialize)]
struct Workflow {
    on: BTreeMap<String, IgnoredAny>,
    jobs: BTreeMap<String, Job>,
}

#[derive(Deserialize)]
struct Job {
    #[serde(default)]
    services: BTreeMap<String, CiService>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct CiService {
    image: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    options: String,
}

#[derive(Deserialize)]
struct Step {
    uses: Option<String>,
    run: Option<String>,
    #[serde(default)]
    with: BTreeMap<String, serde_json::Value>,
}

impl Step {
    fn uses(&self, action: &str) -> bool {
        self.uses.as_deref().is_some_and(|uses| uses.split('@').next() == Some(action))
    }

    fn runs(&self, text: &str) -> bool {
        self.run.as_deref().is_some_and(|run| run.contains(text))
    }
}

fn workflow() -> Workflow {
    serde_saphyr::from_str(&repo_file(".github/workflows/ci.yml")).expect("ci.yml is YAML of the expected shape")
}

/// The job that runs `.ci/run`, the single source of what CI checks.
fn ci_run_job(workflow: &Workflow) -> (&str, &Job) {
    let mut jobs = workflow.jobs.iter().filter(|(_, job)| job.steps.iter().any(|step| step.runs(".ci/run")));
    let (name, job) = jobs.next().expect("a job runs .ci/run");
    assert!(jobs.next().is_none(), "one job runs .ci/run");
    (name, job)
}

#[test]
fn ci_runs_ci_run_on_every_push_and_pull_request_with_postgres_and_redis_services() {
    let workflow = workflow();
    assert!(workflow.on.contains_key("push") && workflow.on.contains_key("pull_request"), "on push and pull_request");
    let (_, job) = ci_run_job(&workflow);
    for (name, image, port) in [("postgres", "postgres:16", "5432:5432"), ("redis", "redis:7", "6379:6379")] {
        let service = job.services.get(name).unwrap_or_else(|| panic!("the .ci/run job has a {name} service"));
        assert!(service.image.starts_with(image), "{name} runs {image}, not {}", service.image);
        assert!(service.ports.iter().any(|p| p == port), "{name} is on {port}: {:?}", service.ports);
        assert!(service.options.contains("--health-cmd"), "steps wait for {name} to be healthy");
    }
    assert_eq!(job.services["postgres"].env.get("POSTGRES_HOST_AUTH_METHOD").map(String::as_str), Some("trust"));
    // .ci/run waits with pg_isready and redis-cli; the reliability tests start private redis-server processes.
    let packages = job.steps.iter().filter_map(|step| step.run.as_deref()).collect::<Vec<_>>().join("\n");
    for package in ["postgresql-client", "redis-server", "redis-tools"] {
        assert!(packages.contains(package), "the job installs {package}");
    }
    assert!(
        job.steps.iter().any(|step| step.uses("Swatinem/rust-cache") || step.uses("actions/cache")),
        "the cargo registry and target/ are cached"
    );
}

#[test]
fn ci_toolchain_and_the_image_build_are_the_crates_rust_version() {
    let workflow = workflow();
    let (_, job) = ci_run_job(&workflow);
    let toolchain = job.steps.iter().find(|step| step.uses("dtolnay/rust-toolchain")).expect("a toolchain step");
    let rust_version = rust_version();
    assert_eq!(toolchain.with.get("toolchain").and_then(|v| v.as_str()), Some(rust_version.as_str()));
    let components = toolchain.with.get("components").and_then(|v| v.as_str()).unwrap_or_default();
    assert!(components.contains("rustfmt") && components.contains("clippy"), "components: {components}");

    let build_image = dockerfile_stages().remove(0).from;
    assert!(
        build_image.starts_with(&format!("rust:{rust_version}-")),
        "the image is built with the same toolchain: {build_image}"
    );
}

#[test]
fn ci_builds_the_docker_image_in_a_second_job_without_pushing() {
    let workflow = workflow();
    let (ci_run, _) = ci_run_job(&workflow);
    let builds = |step: &Step| {
        let pushes = step.with.get("push").and_then(sea_orm::JsonValue::as_bool).unwrap_or(false);
        (step.uses("docker/build-push-action") && !pushes) || step.runs("docker build ")
    };
    let image_jobs: Vec<&String> =
        workflow.jobs.iter().filter(|(_, job)| job.steps.iter().any(builds)).map(|(name, _)| name).collect();
    assert!(!image_jobs.is_empty() && !image_jobs.iter().any(|name| *name == ci_run), "{image_jobs:?}");
}

#[test]
fn ci_run_installs_docker_compose_so_the_compose_check_never_skips_in_ci() {
    let script = repo_file(".ci/run");
    assert!(script.contains("apt-get install") && script.contains("docker-compose"), ".ci/run installs docker-compose");
    assert!(script.contains("--no-install-recommends"), "without the Docker engine it recommends");
}

// ---------------------------------------------------------------------------------------------------------
// railway.toml, railway.worker.toml

fn railway(name: &str) -> toml::Table {
    repo_file(name).parse().unwrap_or_else(|e| panic!("{name} is TOML: {e}"))
}

fn text<'a>(table: &'a toml::Table, section: &str, key: &str) -> Option<&'a str> {
    table.get(section)?.get(key)?.as_str()
}

fn builds_the_dockerfile(name: &str, config: &toml::Table) {
    assert_eq!(text(config, "build", "builder"), Some("DOCKERFILE"), "{name}");
    let dockerfile = text(config, "build", "dockerfilePath").unwrap_or("Dockerfile");
    assert!(repo_path(dockerfile).is_file(), "{name}: {dockerfile} exists");
}

#[test]
fn railway_toml_builds_the_dockerfile_migrates_before_each_deploy_and_checks_ready() {
    let config = railway("railway.toml");
    builds_the_dockerfile("railway.toml", &config);
    let deploy = config.get("deploy").expect("a [deploy] section");
    assert_eq!(text(&config, "deploy", "startCommand"), Some("philia-bot serve"), "both roles in one service");
    let pre_deploy = deploy.get("preDeployCommand").and_then(|v| v.as_array()).expect("preDeployCommand");
    assert_eq!(pre_deploy, &vec![toml::Value::from("philia-bot migrate up")]);
    assert_eq!(text(&config, "deploy", "healthcheckPath"), Some("/ready"));
    assert!(deploy.get("healthcheckTimeout").and_then(toml::Value::as_integer).is_some_and(|secs| secs > 0));
    assert_eq!(text(&config, "deploy", "restartPolicyType"), Some("ON_FAILURE"));
    assert!(deploy.get("restartPolicyMaxRetries").and_then(toml::Value::as_integer).is_some_and(|n| n > 0));
}

#[test]
fn railway_worker_toml_runs_the_worker_without_migrating_or_an_http_check() {
    let config = railway("railway.worker.toml");
    builds_the_dockerfile("railway.worker.toml", &config);
    assert_eq!(text(&config, "deploy", "startCommand"), Some("philia-bot serve --role worker"));
    let deploy = config.get("deploy").expect("a [deploy] section");
    assert!(deploy.get("preDeployCommand").is_none(), "the web service migrates; two at once would race");
    assert!(deploy.get("healthcheckPath").is_none(), "the worker serves nothing on Railway's PORT");
    let restart = text(&config, "deploy", "restartPolicyType");
    assert!(matches!(restart, Some("ALWAYS" | "ON_FAILURE")), "the worker is restarted: {restart:?}");
}

// ---------------------------------------------------------------------------------------------------------
// Dockerfile, .dockerignore

struct Instruction {
    keyword: String,
    arguments: String,
}

struct Stage {
    from: String,
    instructions: Vec<Instruction>,
}

/// The Dockerfile's stages, each with its instructions (continuation lines joined, comments left out).
fn dockerfile_stages() -> Vec<Stage> {
    let mut logical_lines = Vec::new();
    let mut current = String::new();
    for line in repo_file("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                logical_lines.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical_lines.iter().filter(|line| !line.trim().is_empty()) {
        let (keyword, arguments) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let (keyword, arguments) = (keyword.to_ascii_uppercase(), arguments.trim().to_owned());
        if keyword == "FROM" {
            let from = arguments.split_whitespace().next().unwrap_or_default().to_owned();
            stages.push(Stage { from, instructions: Vec::new() });
        } else {
            stages
                .last_mut()
                .expect("the Dockerfile starts with FROM")
                .instructions
                .push(Instruction { keyword, arguments });
        }
    }
    stages
}

impl Stage {
    fn all(&self, keyword: &str) -> impl Iterator<Item = &str> {
        self.instructions.iter().filter(move |i| i.keyword == keyword).map(|i| i.arguments.as_str())
    }

    fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).last()
    }
}

/// An exec-form (JSON array) command: no shell needed to start it.
fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments).unwrap_or_else(|_| panic!("exec form (a JSON array), not `{arguments}`"))
}

#[test]
fn dockerfile_builds_in_stages_and_runs_serve_as_a_non_root_user_with_no_shell() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "a build stage and a run stage");
    let run = stages.last().unwrap();
    assert!(run.from.starts_with("gcr.io/distroless/"), "a runtime image with no shell: {}", run.from);
    assert_eq!(run.all("RUN").count(), 0, "the run stage has no RUN: there is no shell to run it");
    let user = run.last("USER").expect("the run stage names its user");
    assert!(!["root", "0"].contains(&user.split(':').next().unwrap()), "non-root user, not {user}");
    assert_eq!(exec_form(run.last("CMD").expect("a CMD")), ["philia-bot", "serve"]);
    assert!(run.all("EXPOSE").any(|ports| ports.split_whitespace().any(|p| p == "8000")), "EXPOSE 8000");
    assert!(run.all("ENV").any(|env| env.contains("ENVIRONMENT=production")), "production by default");
    assert!(run.all("COPY").any(|copy| copy == "config config"), "the config folder is in the image");

    let healthcheck = run.last("HEALTHCHECK").expect("a HEALTHCHECK");
    let (_, command) = healthcheck.split_once("CMD ").expect("HEALTHCHECK … CMD [...]");
    assert_eq!(probed_ready_port(&[vec!["CMD".to_owned()], exec_form(command)].concat()), Some(8000), "{healthcheck}");
}

/// Every file a source embeds at compile time (`include_str!`/`include_bytes!`), relative to the repository.
fn embedded_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            embedded_files(&path, found);
            continue;
        }
        let Ok(source) = std::fs::read_to_string(&path) else { continue };
        for macro_call in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in source.match_indices(macro_call) {
                let rest = &source[at + macro_call.len()..];
                let relative = &rest[..rest.find('"').expect("a closing quote")];
                let absolute = path.parent().unwrap().join(relative);
                let normal: PathBuf = absolute.components().fold(PathBuf::new(), |mut normal, part| {
                    match part {
                        std::path::Component::ParentDir => {
                            normal.pop();
                        }
                        other => normal.push(other),
                    }
                    normal
                });
                found.push(normal.strip_prefix(root).expect("inside the repository").to_owned());
            }
        }
    }
}

#[test]
fn dockerfile_build_stage_copies_every_file_the_sources_embed() {
    let mut embedded = Vec::new();
    embedded_files(&repo_path("src"), &mut embedded);
    embedded_files(&repo_path("migration/src"), &mut embedded);
    assert!(!embedded.is_empty(), "the sources embed the built-in texts");
    let stages = dockerfile_stages();
    let copied: Vec<&str> = stages[0]
        .all("COPY")
        .filter(|copy| !copy.starts_with("--from"))
        .flat_map(|copy| {
            let parts: Vec<&str> = copy.split_whitespace().filter(|part| !part.starts_with("--")).collect();
            parts[..parts.len() - 1].to_vec()
        })
        .collect();
    let ignored: Vec<String> = repo_file(".dockerignore").lines().map(|l| l.trim().to_owned()).collect();
    for file in embedded {
        assert!(
            copied.iter().any(|source| file.starts_with(source.trim_end_matches('/'))),
            "the build stage copies {} (embedded by the sources) before building: COPY sources {copied:?}",
            file.display()
        );
        assert!(!ignored.iter().any(|pattern| file.starts_with(pattern)), ".dockerignore keeps {}", file.display());
    }
}

#[test]
fn dockerignore_keeps_secrets_build_output_and_data_out_of_the_image() {
    let ignored: Vec<String> = repo_file(".dockerignore").lines().map(|l| l.trim().to_owned()).collect();
    for entry in [".env", "target", "data", ".git"] {
        assert!(ignored.iter().any(|line| line == entry), ".dockerignore lists {entry}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// The commands the deploy files run

/// Every `philia-bot …` command that starts the bot or migrates it: compose commands, Railway's start and
/// pre-deploy commands, the Dockerfile's CMD and the Procfile. (Health checks are checked above.)
fn deploy_commands() -> Vec<(String, Vec<String>)> {
    let mut commands = Vec::new();
    for (name, service) in &compose().services {
        if let Some(command) = service.command.as_ref().filter(|c| c.first().is_some_and(|bin| bin == "philia-bot")) {
            commands.push((format!("docker-compose.yml {name}"), command.clone()));
        }
    }
    let words = |line: &str| line.split_whitespace().map(String::from).collect::<Vec<_>>();
    for file in ["railway.toml", "railway.worker.toml"] {
        let config = railway(file);
        commands.push((format!("{file} startCommand"), words(text(&config, "deploy", "startCommand").unwrap())));
        let pre_deploy =
            config["deploy"].get("preDeployCommand").and_then(|v| v.as_array()).cloned().unwrap_or_default();
        for command in pre_deploy {
            commands.push((format!("{file} preDeployCommand"), words(command.as_str().unwrap())));
        }
    }
    let cmd = dockerfile_stages().pop().unwrap().last("CMD").map(exec_form).unwrap();
    commands.push(("Dockerfile CMD".to_owned(), cmd));
    for line in repo_file("Procfile").lines().filter(|line| !line.trim().is_empty()) {
        let (process, command) = line.split_once(':').expect("Procfile lines are `process: command`");
        commands.push((format!("Procfile {process}"), words(command)));
    }
    commands
}

#[test]
fn every_command_the_deploy_files_run_is_one_the_binary_accepts() {
    let commands = deploy_commands();
    assert!(commands.len() >= 9, "compose, Railway, Dockerfile and Procfile commands: {commands:?}");
    for (source, command) in commands {
        assert_eq!(command[0], "philia-bot", "{source}");
        // `--help` after the arguments: clap parses and validates them all, then prints help and exits 0.
        let output = Command::new(BIN).args(&command[1..]).arg("--help").env_clear().output().unwrap();
        assert!(
            output.status.success(),
            "{source}: `{}` is not a valid command:\n{}",
            command.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// The health probe (`philia-bot health --url …`) the Dockerfile and compose checks run

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn health_probe_passes_against_a_ready_app() {
    let app = spawn_app(TestDatabase::sqlite()).await;
    let url = format!("{}/ready", app.address);
    assert_eq!(healthcheck::check(&url, PROBE_TIMEOUT).await, Ok(()));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn health_probe_passes_against_a_workers_metrics_port_as_compose_checks_it() {
    let test = "deploy::health_probe_passes_against_a_workers_metrics_port_as_compose_checks_it";
    let Some(redis) = TestRedis::new(test) else { return };
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    use_redis(&mut settings, Some(&redis));
    settings.server.metrics_port = Some(0);
    let app = spawn_app_with(db, settings, Role::Worker).await;
    let url = format!("{}/ready", app.address);
    assert_eq!(healthcheck::check(&url, PROBE_TIMEOUT).await, Ok(()));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn health_probe_fails_with_the_status_and_body_of_an_unready_answer() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ready"))
        .respond_with(ResponseTemplate::new(503).set_body_string(r#"{"db":"connected","redis":"unreachable"}"#))
        .mount(&server)
        .await;
    let url = format!("{}/ready", server.uri());
    let error = healthcheck::check(&url, PROBE_TIMEOUT).await.unwrap_err();
    assert!(error.contains("503") && error.contains(r#""redis":"unreachable""#), "{error}");
    assert!(error.contains(&url), "the failure names what was asked: {error}");
}

#[tokio::test]
async fn health_probe_fails_when_nothing_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/ready");
    let error = healthcheck::check(&url, PROBE_TIMEOUT).await.unwrap_err();
    assert!(error.contains(&url), "the failure names what was asked: {error}");
    assert!(error.to_lowercase().contains("refused"), "and the cause: {error}");
}
