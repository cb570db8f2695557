//! The `flextype` command (SPEC §7, §8): the server and the token commands run as child
//! processes over a temp project, as a user would run them.
//!
//! Every child is held by a [`Child`] guard that kills and reaps it when dropped, so a failing
//! test leaves no process behind. The child helpers here are shared with `crash.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use flextype::auth::{TokenKind, TokenStore};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// How long a child may take to start or to answer, on a busy machine.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a command that should end right away may take.
const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// A child process that is killed and reaped when dropped, also when a test panics.
pub struct Child {
    child: std::process::Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Child {
    /// Starts `flextype <args>` in `dir`, its output going to `<dir>/<tag>.stdout|stderr`.
    pub fn spawn(dir: &Path, args: &[&str], envs: &[(&str, &str)], tag: &str) -> Child {
        Child::spawn_as(dir, args, envs, tag, None)
    }

    /// [`Child::spawn`] as another user (uid, gid), for tests where permissions must count
    /// although they run as root.
    pub fn spawn_as(
        dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        tag: &str,
        user: Option<(u32, u32)>,
    ) -> Child {
        let stdout = dir.join(format!("{tag}.stdout"));
        let stderr = dir.join(format!("{tag}.stderr"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flextype"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("FLEXTYPE__") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = user {
            use std::os::unix::process::CommandExt;
            // As root, std also drops the supplementary groups before switching.
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect("the flextype binary starts");
        Child {
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Waits for the process to end by itself; panics after `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(s) = self.try_status() {
                return s;
            }
            assert!(
                Instant::now() < until,
                "the process did not end within {deadline:?}; stderr:\n{}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// SIGKILL, then reap.
    pub fn kill_now(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        let s = self.child.wait().unwrap();
        self.status = Some(s);
        s
    }
}

/// A free port on 127.0.0.1 (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Writes a config file for a child server and returns its path. Watching is off unless
/// `extra` has a `watch:` section of its own.
pub fn write_config(dir: &Path, name: &str, project: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join(name);
    let watch = match extra.lines().any(|l| l.starts_with("watch:")) {
        true => "",
        false => "watch: { enabled: false }\n",
    };
    let text = format!(
        "project: '{}'\nserver: {{ address: '127.0.0.1:{port}', workers: 2 }}\n{watch}{extra}",
        project.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs a command that should end by itself; returns its status, stdout and stderr.
pub async fn run(dir: &Path, args: &[&str], tag: &str) -> (ExitStatus, String, String) {
    let mut c = Child::spawn(dir, args, &[], tag);
    let status = c.wait_exit(EXIT_DEADLINE).await;
    (status, c.stdout_text(), c.stderr_text())
}

/// Runs a command over an existing project, with a config naming it written beside it.
pub async fn run_with_project(
    project: &Path,
    args: &[&str],
    tag: &str,
) -> (ExitStatus, String, String) {
    let dir = project.parent().unwrap();
    let config = write_config(dir, &format!("{tag}.yaml"), project, free_port(), "");
    let mut all = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    run(dir, &all, tag).await
}

/// A server running as a child process.
pub struct Served {
    pub child: Child,
    pub port: u16,
    pub config: PathBuf,
    pub client: reqwest::Client,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The `/api/health` body, once the server answers it.
    pub async fn health(&self) -> Value {
        let res = self.client.get(self.url("/api/health")).send().await;
        match res {
            Ok(r) if r.status() == StatusCode::OK => r.json().await.unwrap(),
            Ok(r) => panic!("health answered {}", r.status()),
            Err(e) => panic!("health: {e}"),
        }
    }

    /// Waits until `/api/health` reports the start-up reconcile as done.
    pub async fn wait_reconciled(&self) {
        let until = Instant::now() + START_DEADLINE;
        loop {
            let h = self.health().await;
            if h["reconcile"]["state"] == "done" {
                return;
            }
            assert!(
                Instant::now() < until && h["reconcile"]["state"] != "failed",
                "reconcile not done: {h}; stderr:\n{}",
                self.child.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Polls `GET /api/health` on `port` until it answers 200; `Err` with the child's stderr if it
/// ended first.
pub async fn wait_healthy(child: &mut Child, port: u16) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let until = Instant::now() + START_DEADLINE;
    loop {
        if let Some(s) = child.try_status() {
            return Err(format!("exited with {s}; stderr:\n{}", child.stderr_text()));
        }
        let url = format!("http://127.0.0.1:{port}/api/health");
        if let Ok(r) = client.get(url).send().await {
            if r.status() == StatusCode::OK {
                return Ok(());
            }
        }
        assert!(
            Instant::now() < until,
            "server did not answer within {START_DEADLINE:?}; stderr:\n{}",
            child.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Starts `flextype serve` over `project` on a free port and waits until it answers.
/// `extra` is appended to the config file. Retries with another port if the one picked was
/// taken in the meantime.
pub async fn serve(
    dir: &Path,
    project: &Path,
    tag: &str,
    extra: &str,
    envs: &[(&str, &str)],
) -> Served {
    serve_as(dir, project, tag, extra, envs, None).await
}

/// [`serve`] as another user (uid, gid).
pub async fn serve_as(
    dir: &Path,
    project: &Path,
    tag: &str,
    extra: &str,
    envs: &[(&str, &str)],
    user: Option<(u32, u32)>,
) -> Served {
    for attempt in 0..3 {
        let port = free_port();
        let tag = format!("{tag}-{attempt}");
        let config = write_config(dir, &format!("{tag}.yaml"), project, port, extra);
        let config_arg = config.to_str().unwrap().to_string();
        let mut child = Child::spawn_as(dir, &["serve", "--config", &config_arg], envs, &tag, user);
        match wait_healthy(&mut child, port).await {
            Ok(()) => {
                return Served {
                    child,
                    port,
                    config,
                    client: reqwest::Client::new(),
                }
            }
            Err(e) if e.contains("binding") && attempt < 2 => continue,
            Err(e) => panic!("flextype serve failed: {e}"),
        }
    }
    unreachable!()
}

/// Creates one files and one access token in `project` before a server starts.
pub fn precreate_tokens(project: &Path) -> (String, String) {
    let store = TokenStore::new(&project.join("tokens"), false);
    let (_, f) = store.create(TokenKind::Files, "test", 0).unwrap();
    let (_, a) = store.create(TokenKind::Access, "test", 0).unwrap();
    (f.as_str().to_string(), a.as_str().to_string())
}

fn is_token(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The ids (folder names) of the tokens of a kind.
fn token_ids(project: &Path, kind: &str) -> Vec<String> {
    match std::fs::read_dir(project.join("tokens").join(kind)) {
        Ok(r) => r
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A temp dir with a config naming `<dir>/project`; returns (dir, project, config path).
fn setup() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let config = write_config(dir.path(), "flextype.yaml", &project, free_port(), "");
    (dir, project, config.to_str().unwrap().to_string())
}

async fn read_root(server: &Served, token: &str) -> StatusCode {
    server
        .client
        .get(server.url("/api/files"))
        .query(&[("path", ""), ("token", token)])
        .send()
        .await
        .unwrap()
        .status()
}

async fn upload(server: &Served, files: &str, access: &str, name: &str, bytes: &[u8]) -> Value {
    let form = Form::new()
        .text("token", files.to_string())
        .text("access_token", access.to_string())
        .text("folder", "")
        .part(
            "file",
            Part::bytes(bytes.to_vec()).file_name(name.to_string()),
        );
    let res = server
        .client
        .post(server.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "upload of {name}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn token_create_prints_only_the_token_and_list_shows_its_id_but_never_the_token() {
    let (dir, project, config) = setup();
    let d = dir.path();
    let (status, out, err) = run(
        d,
        &[
            "token", "create", "--kind", "files", "--title", "Site", "--config", &config,
        ],
        "create",
    )
    .await;
    assert!(status.success(), "{status}; stderr: {err}");
    let token = out.trim();
    assert!(is_token(token), "stdout is not a lone token: {out:?}");
    assert_eq!(out.lines().count(), 1, "stdout: {out:?}");

    let ids = token_ids(&project, "files");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = &ids[0];
    assert_ne!(id, token, "the folder is named by id, not by the token");
    let file = project.join("tokens/files").join(id).join("token.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(token), "{text}");
    let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        y["hash"].as_str(),
        Some(blake3_hex(token.as_bytes()).as_str())
    );
    assert_eq!(y["title"].as_str(), Some("Site"));
    assert_eq!(y["state"].as_str(), Some("enabled"));

    let (status, out, err) = run(d, &["token", "list", "--config", &config], "list").await;
    assert!(status.success(), "{status}; stderr: {err}");
    assert!(out.contains(id.as_str()), "list lacks the id: {out}");
    assert!(out.contains("Site"), "list lacks the title: {out}");
    assert!(!out.contains(token), "list shows the token: {out}");
    assert!(!err.contains(token), "list shows the token: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_create_writes_the_kind_title_and_call_limit_asked_for() {
    let (dir, project, config) = setup();
    let (status, out, err) = run(
        dir.path(),
        &[
            "token",
            "create",
            "--kind",
            "access",
            "--title",
            "Editor",
            "--limit-calls",
            "5",
            "--config",
            &config,
        ],
        "create",
    )
    .await;
    assert!(status.success(), "{status}; stderr: {err}");
    let token = out.trim();
    assert!(is_token(token), "{out:?}");
    assert!(token_ids(&project, "files").is_empty());
    let ids = token_ids(&project, "access");
    assert_eq!(ids.len(), 1);
    let file = project
        .join("tokens/access")
        .join(&ids[0])
        .join("token.yaml");
    let y: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(y["limit_calls"].as_u64(), Some(5));
    assert_eq!(y["title"].as_str(), Some("Editor"));
}

#[tokio::test(flavor = "multi_thread")]
async fn token_revoke_removes_a_token_and_an_unknown_id_fails() {
    let (dir, project, config) = setup();
    let d = dir.path();
    let create = ["token", "create", "--kind", "files", "--config", &config];
    let (status, _, err) = run(d, &create, "create-1").await;
    assert!(status.success(), "{err}");
    let (status, _, err) = run(d, &create, "create-2").await;
    assert!(status.success(), "{err}");
    let ids = token_ids(&project, "files");
    assert_eq!(ids.len(), 2);

    let (status, _, err) = run(d, &["token", "revoke", &ids[0], "--config", &config], "rv").await;
    assert!(status.success(), "{status}; stderr: {err}");
    assert_eq!(token_ids(&project, "files"), vec![ids[1].clone()]);

    let (status, _, _) = run(d, &["token", "revoke", &ids[0], "--config", &config], "rv2").await;
    assert!(!status.success(), "revoking it twice succeeded");
    let (status, _, err) = run(
        d,
        &["token", "revoke", "0000000000000000", "--config", &config],
        "rv3",
    )
    .await;
    assert!(!status.success(), "an unknown id was revoked");
    assert!(err.contains("0000000000000000"), "stderr: {err}");
    let (status, _, _) = run(d, &["token", "revoke", "..", "--config", &config], "rv4").await;
    assert!(!status.success());
    assert_eq!(token_ids(&project, "files"), vec![ids[1].clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_created_and_revoked_by_the_cli_count_on_the_next_request_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    precreate_tokens(&project);
    let server = serve(d, &project, "serve", "", &[]).await;
    let config = server.config.to_str().unwrap().to_string();

    let (status, out, err) = run(
        d,
        &["token", "create", "--kind", "files", "--config", &config],
        "create",
    )
    .await;
    assert!(status.success(), "{err}");
    let token = out.trim().to_string();
    assert_eq!(read_root(&server, &token).await, StatusCode::OK);

    let hash = blake3_hex(token.as_bytes());
    let id = token_ids(&project, "files")
        .into_iter()
        .find(|id| {
            let p = project.join("tokens/files").join(id).join("token.yaml");
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains(&hash)
        })
        .expect("the new token's folder");
    let (status, _, err) = run(d, &["token", "revoke", &id, "--config", &config], "rv").await;
    assert!(status.success(), "{err}");
    assert_eq!(read_root(&server, &token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_migrate_converts_a_legacy_token_whose_value_keeps_working() {
    let (dir, project, config) = setup();
    let d = dir.path();
    let legacy = "feedfacecafebeef0123456789abcdef";
    let legacy_dir = project.join("tokens/files").join(legacy);
    std::fs::create_dir_all(&legacy_dir).unwrap();
    std::fs::write(
        legacy_dir.join("token.yaml"),
        "title: old\nstate: enabled\ncalls: 7\n",
    )
    .unwrap();

    let (status, out, err) = run(d, &["token", "list", "--config", &config], "list").await;
    assert!(status.success(), "{err}");
    assert!(out.contains("old"), "{out}");

    let (status, _, err) = run(d, &["token", "migrate", "--config", &config], "migrate").await;
    assert!(status.success(), "{status}; stderr: {err}");
    assert!(!legacy_dir.exists(), "the plaintext folder is still there");
    let ids = token_ids(&project, "files");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids[0], legacy);
    let text = std::fs::read_to_string(
        project
            .join("tokens/files")
            .join(&ids[0])
            .join("token.yaml"),
    )
    .unwrap();
    assert!(!text.contains(legacy), "{text}");
    let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        y["hash"].as_str(),
        Some(blake3_hex(legacy.as_bytes()).as_str())
    );
    assert_eq!(y["title"].as_str(), Some("old"), "fields are kept: {text}");
    assert_eq!(y["calls"].as_u64(), Some(7), "fields are kept: {text}");

    // Migrating again changes nothing.
    let (status, _, err) = run(d, &["token", "migrate", "--config", &config], "migrate-2").await;
    assert!(status.success(), "{err}");
    assert_eq!(token_ids(&project, "files"), ids);

    // A server started afterwards (legacy tokens off) accepts the same value.
    let server = serve(d, &project, "serve", "", &[]).await;
    assert_eq!(read_root(&server, legacy).await, StatusCode::OK);
    assert!(
        !server.child.stdout_text().contains("token:"),
        "tokens existed, so none are created"
    );
}

/// Runs `serve` with a broken config and returns its status and stderr; it must end by itself.
async fn serve_refused(dir: &Path, config_text: &str, tag: &str) -> (ExitStatus, String) {
    let config = dir.join(format!("{tag}.yaml"));
    std::fs::write(&config, config_text).unwrap();
    let started = Instant::now();
    let mut c = Child::spawn(
        dir,
        &["serve", "--config", config.to_str().unwrap()],
        &[],
        tag,
    );
    let status = c.wait_exit(EXIT_DEADLINE).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    (status, c.stderr_text())
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_config_with_an_unknown_key_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let text = format!(
        "project: '{}'\nserver: {{ address: '127.0.0.1:{}' }}\nmedia:\n  max_file_sise: 3\n",
        project.display(),
        free_port()
    );
    let (status, err) = serve_refused(dir.path(), &text, "unknown-key").await;
    assert!(!status.success(), "{status}");
    assert!(err.contains("max_file_sise"), "stderr: {err}");
    assert!(
        !project.exists(),
        "nothing is created when the config is refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_bad_value_and_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let text = format!(
        "project: '{}'\nserver:\n  address: '127.0.0.1:{}'\n  workers: many\n",
        project.display(),
        free_port()
    );
    let (status, err) = serve_refused(dir.path(), &text, "bad-value").await;
    assert!(!status.success(), "{status}");
    assert!(err.contains("server.workers"), "stderr: {err}");
    assert!(
        !project.exists(),
        "nothing is created when the config is refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_bad_address_and_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let text = format!(
        "project: '{}'\nserver:\n  address: 'localhost-ish'\n",
        project.display()
    );
    let (status, err) = serve_refused(dir.path(), &text, "bad-address").await;
    assert!(!status.success(), "{status}");
    assert!(err.contains("server.address"), "stderr: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_with_a_missing_config_file_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let mut c = Child::spawn(
        dir.path(),
        &["serve", "--config", missing.to_str().unwrap()],
        &[],
        "missing",
    );
    let status = c.wait_exit(EXIT_DEADLINE).await;
    let err = c.stderr_text();
    assert!(!status.success(), "{status}");
    assert!(err.contains("nope.yaml"), "stderr names the file: {err}");
    let lower = err.to_lowercase();
    assert!(
        lower.contains("does not exist")
            || lower.contains("not found")
            || lower.contains("no such"),
        "stderr says what is wrong: {err}"
    );
    assert!(!dir.path().join("project").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_environment_variable_overrides_the_configured_address() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    precreate_tokens(&project);
    for attempt in 0..3 {
        let (in_file, in_env) = (free_port(), free_port());
        if in_file == in_env {
            continue;
        }
        let config = write_config(d, "env.yaml", &project, in_file, "");
        let address = format!("127.0.0.1:{in_env}");
        let tag = format!("env-{attempt}");
        let mut child = Child::spawn(
            d,
            &["serve", "--config", config.to_str().unwrap()],
            &[("FLEXTYPE__SERVER__ADDRESS", &address)],
            &tag,
        );
        match wait_healthy(&mut child, in_env).await {
            Ok(()) => {
                assert!(
                    std::net::TcpStream::connect(("127.0.0.1", in_file)).is_err(),
                    "the port from the file answers too"
                );
                return;
            }
            Err(e) if e.contains("binding") && attempt < 2 => continue,
            Err(e) => panic!("the server did not listen on the env port: {e}"),
        }
    }
    panic!("no free pair of ports");
}

/// The value after `label` on the line that holds it.
fn printed(stdout: &str, label: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|v| v.trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_a_files_and_an_access_token_once_and_they_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    let mut server = serve(d, &project, "first", "", &[]).await;
    let out = server.child.stdout_text();
    let files = printed(&out, "files token:").unwrap_or_else(|| panic!("stdout: {out}"));
    let access = printed(&out, "access token:").unwrap_or_else(|| panic!("stdout: {out}"));
    assert!(is_token(&files), "{files:?}");
    assert!(is_token(&access), "{access:?}");
    assert_ne!(files, access);
    assert_eq!(token_ids(&project, "files").len(), 1);
    assert_eq!(token_ids(&project, "access").len(), 1);

    let body = upload(&server, &files, &access, "hello.txt", b"hello").await;
    assert_eq!(body["data"]["hash"], blake3_hex(b"hello"));
    assert_eq!(
        std::fs::read(project.join("uploads/hello.txt")).unwrap(),
        b"hello"
    );
    let err = server.child.stderr_text();
    assert!(!err.contains(&files) && !err.contains(&access), "{err}");

    server.child.signal(libc::SIGTERM);
    server.child.wait_exit(EXIT_DEADLINE).await;

    let again = serve(d, &project, "second", "", &[]).await;
    let out = again.child.stdout_text();
    assert!(
        !out.contains("token:"),
        "second start printed tokens: {out}"
    );
    assert!(!out.contains(&files) && !out.contains(&access), "{out}");
    assert_eq!(token_ids(&project, "files").len(), 1);
    assert_eq!(token_ids(&project, "access").len(), 1);
    assert_eq!(read_root(&again, &files).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_server_cleanly_with_status_0_and_keeps_the_call_counts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    let (files, _) = precreate_tokens(&project);
    let mut server = serve(d, &project, "serve", "", &[]).await;
    for _ in 0..3 {
        assert_eq!(read_root(&server, &files).await, StatusCode::OK);
    }
    // The client keeps its idle keep-alive connection open across the shutdown.
    let started = Instant::now();
    server.child.signal(libc::SIGTERM);
    let status = server.child.wait_exit(EXIT_DEADLINE).await;
    let took = started.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr:\n{}",
        server.child.stderr_text()
    );
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");

    let id = token_ids(&project, "files")
        .into_iter()
        .next()
        .expect("a files token");
    let y: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(project.join("tokens/files").join(id).join("token.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(y["calls"].as_u64(), Some(3), "{y:?}");
    assert!(temp_files(&project).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_values_never_appear_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    let (files, access) = precreate_tokens(&project);
    let store = TokenStore::new(&project.join("tokens"), false);
    let (_, limited) = store.create(TokenKind::Files, "limited", 1).unwrap();
    let limited = limited.as_str().to_string();
    let unknown = "0123456789abcdef0123456789abcdef".to_string();
    let mut server = serve(d, &project, "serve", "", &[("RUST_LOG", "debug")]).await;
    let c = server.client.clone();

    // Tokens in the query, in headers, in a multipart body and in a JSON body.
    assert_eq!(read_root(&server, &files).await, StatusCode::OK);
    let res = c
        .get(server.url("/api/files"))
        .query(&[("path", "")])
        .header("Authorization", format!("Bearer {files}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    upload(&server, &files, &access, "a.txt", b"hello").await;
    let res = c
        .post(server.url("/api/files/meta"))
        .header("Authorization", format!("Token {files}"))
        .header("X-Access-Token", &access)
        .json(&json!({"path": "a.txt", "field": "alt", "value": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c
        .put(server.url("/api/files"))
        .json(&json!({"path": "a.txt", "new_path": "b.txt",
                      "token": files, "access_token": access}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Refused tokens: unknown, over the limit, and a failing call with good tokens.
    assert_eq!(read_root(&server, &unknown).await, StatusCode::UNAUTHORIZED);
    assert_eq!(read_root(&server, &limited).await, StatusCode::OK);
    assert_eq!(
        read_root(&server, &limited).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let res = c
        .get(server.url("/api/files"))
        .query(&[("path", "nope.txt"), ("token", &files)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = c
        .delete(server.url("/api/files"))
        .json(&json!({"path": "../x", "token": files, "access_token": access}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    server.child.signal(libc::SIGTERM);
    server.child.wait_exit(EXIT_DEADLINE).await;
    let out = server.child.stdout_text();
    let err = server.child.stderr_text();
    assert!(err.contains("listening"), "debug logs are captured: {err}");
    for (what, t) in [
        ("files", &files),
        ("access", &access),
        ("limited", &limited),
        ("unknown", &unknown),
    ] {
        assert!(
            !err.contains(t.as_str()),
            "the {what} token is in stderr:\n{err}"
        );
        assert!(
            !out.contains(t.as_str()),
            "the {what} token is in stdout:\n{out}"
        );
    }
}
