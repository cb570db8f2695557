//! Crash rounds: the real binary is killed with SIGKILL at a random moment while clients send
//! a random mix of uploads (small to 4 MiB, some streamed slowly, some overwriting), moves,
//! copies, meta edits and deletes of files, and moves, copies and deletes of whole folders,
//! all at once. After each kill the server is started again
//! over the same project and, once its start-up reconcile is done, the round checks:
//!
//! - no temp file anywhere in `uploads/` (`.meta` and `.staging` included);
//! - no torn file: every file holds exactly the bytes of one upload (content names itself),
//!   and its meta holds the hash and size of those bytes;
//! - every file has its meta, and orphaned meta is gone once the grace period is over;
//! - everything acknowledged is there as acknowledged (content, uuid, editors' fields), and
//!   every operation the kill cut off left its old state or its whole new state ([`Model`]);
//! - no two files share a uuid, and the API lists exactly the files on disk;
//! - after a clean stop, `flextype verify` finds nothing (index included).
//!
//! `FLEXTYPE_CRASH_ROUNDS` sets the number of rounds (default 50), `FLEXTYPE_CRASH_SEED` the
//! seed of every random choice (printed at the start; the timing of a run cannot be replayed,
//! the sequence of choices can), `FLEXTYPE_CRASH_KEEP=1` keeps the project folder (with every
//! server's log beside it), `FLEXTYPE_CRASH_LOG` is the servers' `RUST_LOG`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::model::{FileState, Model, Op, Settled};
use super::*;
use crate::cli::run_with_project;

/// Watching on, as by default, with a short grace for orphaned meta so a round need not wait.
const CONFIG: &str = "watch: { enabled: true, orphan_grace_s: 2 }\n";
/// Clients sending operations at the same time.
const CLIENTS: usize = 8;
/// How long anything may take on a busy machine before the round fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// What the clients of one round did.
#[derive(Default)]
struct Counts {
    sent: AtomicUsize,
    acked: AtomicUsize,
    in_flight: AtomicUsize,
    cut_off: AtomicUsize,
    /// What each client is waiting for, to tell which request hangs.
    waiting: Mutex<BTreeMap<usize, String>>,
}

/// The figures of one round, and summed over all of them.
#[derive(Default, Clone)]
struct Figures {
    sent: usize,
    acked: usize,
    in_flight_at_kill: usize,
    cut_off: usize,
    /// Left on disk by the kill, for the restart to clean up or complete.
    left: Leftovers,
    settled: Settled,
    files: usize,
}

/// What a kill left half-done on disk, found before the restart.
#[derive(Default, Clone, Copy)]
struct Leftovers {
    temp_files: usize,
    files_without_meta: usize,
    meta_without_file: usize,
}

impl Leftovers {
    fn find(project: &Path) -> Leftovers {
        let uploads = project.join("uploads");
        let files = paths_on_disk(&uploads);
        let metas = metas_on_disk(&uploads);
        Leftovers {
            temp_files: temp_files(&uploads).len(),
            files_without_meta: files.difference(&metas).count(),
            meta_without_file: metas.difference(&files).count(),
        }
    }
}

impl std::fmt::Display for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} temp files, {} files without meta, {} meta without file",
            self.temp_files, self.files_without_meta, self.meta_without_file
        )
    }
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.in_flight_at_kill += o.in_flight_at_kill;
        self.cut_off += o.cut_off;
        self.left.temp_files += o.left.temp_files;
        self.left.files_without_meta += o.left.files_without_meta;
        self.left.meta_without_file += o.left.meta_without_file;
        self.settled.add(&o.settled);
        self.files = o.files;
    }
}

/// One client's view of the server: its address and the tokens.
struct Api {
    client: reqwest::Client,
    base: String,
    tokens: Tokens,
}

/// The server's answer: its status, and its body when it could be read.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Option<Value>,
}

impl Api {
    fn new(server: &Served, tokens: &Tokens) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            base: server.url(""),
            tokens: tokens.clone(),
        }
    }

    async fn json(
        &self,
        method: Method,
        route: &str,
        mut body: Value,
    ) -> reqwest::Result<reqwest::Response> {
        body["token"] = json!(self.tokens.0);
        body["access_token"] = json!(self.tokens.1);
        let url = format!("{}{route}", self.base);
        self.client.request(method, url).json(&body).send().await
    }

    async fn send(&self, op: &Op) -> reqwest::Result<Answer> {
        let res = match op {
            Op::Upload {
                path,
                content,
                slow,
            }
            | Op::Overwrite {
                path,
                content,
                slow,
                ..
            } => {
                let at = path.rsplit_once('/').unwrap_or(("", path));
                let extra: &[(&str, &str)] = match op {
                    Op::Overwrite { .. } => &[("overwrite", "true")],
                    _ => &[],
                };
                let url = format!("{}/api/files", self.base);
                send_upload(
                    &self.client,
                    &url,
                    &self.tokens,
                    at,
                    content.bytes(),
                    *slow,
                    extra,
                )
                .await?
            }
            Op::Move { from, to, .. } => {
                let body = json!({ "path": from, "new_path": to });
                self.json(Method::PUT, "/api/files", body).await?
            }
            Op::Copy { from, to, .. } => {
                let body = json!({ "path": from, "new_path": to });
                self.json(Method::PUT, "/api/files/copy", body).await?
            }
            Op::Meta { path, edit, .. } => {
                let (method, field, value) = edit.request();
                let mut body = json!({ "path": path, "field": field });
                if let Some(v) = value {
                    body["value"] = v.clone();
                }
                self.json(method, "/api/files/meta", body).await?
            }
            Op::Delete { path, .. } => {
                self.json(Method::DELETE, "/api/files", json!({ "path": path }))
                    .await?
            }
            Op::MoveFolder { from, to, .. } => {
                let body = json!({ "path": from, "new_path": to });
                self.json(Method::PUT, "/api/folders", body).await?
            }
            Op::CopyFolder { from, to, .. } => {
                let body = json!({ "path": from, "new_path": to });
                self.json(Method::PUT, "/api/folders/copy", body).await?
            }
            Op::DeleteFolder { path, .. } => {
                let body = json!({ "path": path, "recursive": true });
                self.json(Method::DELETE, "/api/folders", body).await?
            }
        };
        let status = res.status();
        let body = res
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok(Answer { status, body })
    }
}

/// Sends operations until `stop`; returns what went wrong while the server was up.
async fn client(
    n: usize,
    api: Arc<Api>,
    model: Arc<Mutex<Model>>,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let op = model.lock().unwrap().pick();
        counts.sent.fetch_add(1, Ordering::SeqCst);
        counts.in_flight.fetch_add(1, Ordering::SeqCst);
        let since = Instant::now();
        counts.waiting.lock().unwrap().insert(n, format!("{op:?}"));
        let answer = api.send(&op).await;
        counts.waiting.lock().unwrap().remove(&n);
        counts.in_flight.fetch_sub(1, Ordering::SeqCst);
        if since.elapsed() > DEADLINE / 2 {
            wrong.push(format!("{op:?} took {:?}: {answer:?}", since.elapsed()));
        }
        let mut model = model.lock().unwrap();
        match answer {
            Ok(a) if a.status.is_success() => {
                counts.acked.fetch_add(1, Ordering::SeqCst);
                model.acknowledged(&op, a.body.as_ref());
            }
            Ok(a) => {
                wrong.push(format!(
                    "{op:?} answered {}: {}",
                    a.status,
                    a.body.unwrap_or(Value::Null)
                ));
                model.refused(&op);
            }
            Err(e) => {
                if !stop.load(Ordering::SeqCst) {
                    wrong.push(format!("{op:?} failed while the server was up: {e}"));
                }
                counts.cut_off.fetch_add(1, Ordering::SeqCst);
                model.cut(op);
            }
        }
    }
    wrong
}

/// The files on disk as the model sees them, checked on the way: every file whole and with
/// meta that describes it.
fn disk_state(uploads: &Path) -> BTreeMap<String, FileState> {
    let system = flextype::storage::meta::SYSTEM_FIELDS;
    files_on_disk(uploads)
        .into_iter()
        .map(|(rel, bytes)| {
            let content = Content::named_by(&bytes).unwrap_or_else(|| {
                let head = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]);
                panic!("{rel} holds no upload's content (torn?): {head:?}")
            });
            assert!(
                content.is(&bytes),
                "{rel} is torn: {} bytes on disk, {content:?} has {}",
                bytes.len(),
                content.size
            );
            let meta = meta_describing(uploads, &rel, &bytes);
            let uuid = meta["uuid"].as_str().map(str::to_string);
            let fields = meta
                .into_iter()
                .filter(|(k, _)| !system.contains(&k.as_str()))
                .collect();
            let state = FileState {
                content,
                uuid,
                fields,
            };
            (rel, state)
        })
        .collect()
}

/// The checks after a restart; the model takes the outcome of every operation cut off.
async fn check(server: &Served, tokens: &Tokens, project: &Path, model: &mut Model) -> Settled {
    let uploads = project.join("uploads");
    assert_no_temp_files(project);

    let files: BTreeSet<String> = files_on_disk(&uploads).into_keys().collect();
    let metas = metas_on_disk(&uploads);
    let bare: Vec<_> = files.difference(&metas).collect();
    assert!(bare.is_empty(), "files without meta: {bare:?}");
    // Meta whose file is gone (a delete cut off between the two) is held for the grace
    // period, in case its file shows up elsewhere, then removed.
    until("orphaned meta to be removed", DEADLINE, || async {
        let orphans: Vec<String> = metas_on_disk(&uploads)
            .difference(&files)
            .cloned()
            .collect();
        orphans.is_empty().then_some(())
    })
    .await;

    let disk = disk_state(&uploads);
    let settled = model
        .settle(&disk)
        .unwrap_or_else(|errors| panic!("the tree is not as acknowledged:\n{}", errors.join("\n")));

    let res = server
        .client
        .get(server.url("/api/files"))
        .query(&[("path", ""), ("recursive", "true"), ("token", &tokens.0)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let listed = body["data"].as_object().unwrap();
    let listed_paths: BTreeSet<&str> = listed.keys().map(String::as_str).collect();
    let disk_paths: BTreeSet<&str> = disk.keys().map(String::as_str).collect();
    assert_eq!(listed_paths, disk_paths, "the API lists other files");
    for (path, f) in &disk {
        assert_eq!(
            listed[path]["uuid"].as_str(),
            f.uuid.as_deref(),
            "{path}: {}",
            listed[path]
        );
    }
    settled
}

/// Stops the server cleanly and runs `flextype verify` over the project.
async fn stop_and_verify(server: &mut Served, project: &Path, tag: &str) {
    server.child.signal(libc::SIGTERM);
    let status = server.child.wait_exit(DEADLINE).await;
    assert!(
        status.success(),
        "the server did not stop cleanly: {status}; stderr:\n{}",
        server.child.stderr_text()
    );
    let (status, out, err) = run_with_project(project, &["verify"], tag).await;
    assert!(
        status.success(),
        "flextype verify found problems ({status}):\n{out}\n{err}"
    );
}

/// Starts the server over the project and waits for its start-up reconcile.
async fn start(dir: &Path, project: &Path, tag: &str) -> Served {
    let log = std::env::var("FLEXTYPE_CRASH_LOG").ok();
    let envs: Vec<(&str, &str)> = log.iter().map(|l| ("RUST_LOG", l.as_str())).collect();
    let server = serve(dir, project, tag, CONFIG, &envs).await;
    server.wait_reconciled().await;
    server
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// Runs the rounds over one project.
async fn crash_rounds(rounds: u64) {
    let seed = env_number("FLEXTYPE_CRASH_SEED").unwrap_or_else(rand::random);
    eprintln!(
        "crash rounds: {rounds} rounds, seed {seed} (replay with FLEXTYPE_CRASH_SEED={seed})"
    );
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    if std::env::var_os("FLEXTYPE_CRASH_KEEP").is_some() {
        eprintln!(
            "crash rounds: the project stays in {}",
            dir.keep().display()
        );
    }
    let project = d.join("project");
    let tokens = precreate_tokens(&project);
    let mut model = Arc::new(Mutex::new(Model::new(rand::rngs::StdRng::seed_from_u64(
        seed,
    ))));
    let mut total = Figures::default();
    let mut server = start(&d, &project, "round-0").await;

    for round in 1..=rounds {
        let round_started = Instant::now();
        let api = Arc::new(Api::new(&server, &tokens));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| {
                tokio::spawn(client(
                    n,
                    api.clone(),
                    model.clone(),
                    stop.clone(),
                    counts.clone(),
                ))
            })
            .collect();
        // Now and then right away, mostly once many operations are under way.
        let kill_after = {
            let mut m = model.lock().unwrap();
            let rng = m.rng();
            match rng.random_bool(0.2) {
                true => Duration::from_millis(rng.random_range(10..300)),
                false => Duration::from_millis(rng.random_range(300..3000)),
            }
        };
        tokio::time::sleep(kill_after).await;
        stop.store(true, Ordering::SeqCst);
        let in_flight_at_kill = counts.in_flight.load(Ordering::SeqCst);
        server.child.kill_now();

        let mut wrong = Vec::new();
        for c in clients {
            let w = tokio::time::timeout(DEADLINE, c)
                .await
                .unwrap_or_else(|_| {
                    let waiting = counts.waiting.lock().unwrap();
                    panic!("round {round}: a client hung after the kill: {waiting:?}")
                })
                .unwrap();
            wrong.extend(w);
        }
        assert!(
            wrong.is_empty(),
            "round {round} (seed {seed}): requests went wrong before the kill:\n{}",
            wrong.join("\n")
        );

        let left = Leftovers::find(&project);

        server = start(&d, &project, &format!("round-{round}-restart")).await;
        let m = Arc::get_mut(&mut model).expect("no client is left");
        let settled = check(&server, &tokens, &project, m.get_mut().unwrap()).await;
        stop_and_verify(&mut server, &project, &format!("verify-{round}")).await;

        let figures = Figures {
            sent: counts.sent.load(Ordering::SeqCst),
            acked: counts.acked.load(Ordering::SeqCst),
            in_flight_at_kill,
            cut_off: counts.cut_off.load(Ordering::SeqCst),
            left,
            settled,
            files: model.lock().unwrap().files.len(),
        };
        eprintln!(
            "round {round}/{rounds}: killed after {kill_after:?} with {} ops sent, {} acked, {} \
             in flight; left {left}; cut off (done/all): {}; {} files; {:.1} s",
            figures.sent,
            figures.acked,
            figures.in_flight_at_kill,
            figures.settled,
            figures.files,
            round_started.elapsed().as_secs_f64()
        );
        total.add(&figures);
        if round < rounds {
            server = start(&d, &project, &format!("round-{round}-next")).await;
        }
    }
    eprintln!(
        "crash rounds: {rounds} rounds without a failure (seed {seed}) in {:.0} s\n  \
         {} ops sent, {} acknowledged, {} in flight at a kill ({} got no answer)\n  \
         cut off: {} done, {} not done; by kind (done/all): {}\n  \
         left by the kills: {}\n  \
         {} files at the end",
        started.elapsed().as_secs_f64(),
        total.sent,
        total.acked,
        total.in_flight_at_kill,
        total.cut_off,
        total.settled.done(),
        total.settled.not_done(),
        total.settled,
        total.left,
        total.files,
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "takes minutes: run by bench/crash.sh"]
async fn crash_rounds_of_kill_9_during_mixed_operations_lose_nothing_acknowledged_and_tear_nothing()
{
    crash_rounds(env_number("FLEXTYPE_CRASH_ROUNDS").unwrap_or(50)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_crash_rounds_of_kill_9_during_mixed_operations_lose_nothing_acknowledged() {
    crash_rounds(2).await;
}
