//! A hostile tree dropped by hand before the server starts (docs/HOSTILE-TREE.md): thousands
//! of files in one folder, folders 50 deep, names with every awkward byte Linux allows,
//! symlink loops and links out of the tree, unreadable files and folders, special files and a
//! 50 MB meta file. Everything acceptable is served; everything else is refused the way the
//! docs say and listed in `/api/health`; nothing crashes, hangs or loops.
//!
//! Permissions only count for an unprivileged process, and tests run as root: there the
//! server runs as `nobody` (a child process), over a temp folder handed to that user.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::{precreate_tokens, serve_as, Served};
use crate::helpers::*;

/// uid and gid of `nobody`, the user the server runs as when the tests run as root.
const NOBODY: (u32, u32) = (65534, 65534);
/// How long anything may take on a busy machine: generous, it only stops a hang.
const DEADLINE: Duration = Duration::from_secs(300);
/// How long a file dropped by hand may take to get its meta.
const WATCH_DEADLINE: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A temp folder holding a project (and things outside it), reachable by the user the
/// server runs as. Entries made unreadable get their permissions back when it is dropped,
/// so the folder can be removed also when the tests do not run as root.
struct Site {
    dir: tempfile::TempDir,
    project: PathBuf,
    user: Option<(u32, u32)>,
    locked: Vec<PathBuf>,
}

impl Drop for Site {
    fn drop(&mut self) {
        for p in &self.locked {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
        }
    }
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("uploads/.meta")).unwrap();
        Site {
            dir,
            project,
            user: is_root().then_some(NOBODY),
            locked: Vec::new(),
        }
    }

    fn uploads(&self) -> PathBuf {
        self.project.join("uploads")
    }

    /// The on-disk path of a path under `uploads/` given as raw bytes.
    fn at(&self, rel: &[u8]) -> PathBuf {
        self.uploads().join(OsStr::from_bytes(rel))
    }

    /// Writes a file under `uploads/` (any bytes but `/` and NUL in its name).
    fn put(&self, rel: &[u8], bytes: &[u8]) -> PathBuf {
        let p = self.at(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn link(&self, rel: &str, target: impl AsRef<Path>) {
        let p = self.at(rel.as_bytes());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// Makes a file or folder unreadable for the server (mode 000; its owner is the server's
    /// user, and only root may ignore that).
    fn lock(&mut self, p: &Path) {
        self.locked.push(p.to_path_buf());
    }

    /// Hands everything to the server's user, then locks what was marked.
    fn hand_over(&self) {
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(self.dir.path(), Some(uid), Some(gid)).unwrap();
            for e in walkdir::WalkDir::new(self.dir.path()).follow_links(false) {
                let e = e.unwrap();
                std::os::unix::fs::lchown(e.path(), Some(uid), Some(gid)).unwrap();
            }
        }
        for p in &self.locked {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
    }

    /// Starts `flextype serve` over the project, watching it, as the server's user.
    async fn serve(&self, tag: &str) -> (Served, String) {
        let (files, _) = precreate_tokens(&self.project);
        self.hand_over();
        let envs = [("FLEXTYPE__WATCH__ENABLED", "true")];
        let served = serve_as(self.dir.path(), &self.project, tag, "", &envs, self.user).await;
        (served, files)
    }
}

/// Polls `/api/health` until the start-up reconcile is done; its `reconcile` object.
async fn reconciled(server: &Served) -> Value {
    until("the start-up reconcile", DEADLINE, || async {
        let h = server.health().await;
        (h["reconcile"]["state"] == "done").then(|| h["reconcile"].clone())
    })
    .await
}

/// The number of inotify watches a process holds.
fn inotify_watches(pid: i32) -> usize {
    let mut watches = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let is_inotify =
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"));
        if is_inotify {
            let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
            let text = std::fs::read_to_string(info).unwrap_or_default();
            watches += text
                .lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count();
        }
    }
    watches
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_to_a_folder_in_the_tree_does_not_take_over_the_events_of_that_folder() {
    // Watching through links reported a file dropped into `real/` under one of the links'
    // paths (whichever the watch walk met last), so its meta was written there.
    let app = spawn_app_with(|cfg| {
        cfg.watch.enabled = true;
        let uploads = cfg.project.join("uploads");
        std::fs::create_dir_all(uploads.join("real")).unwrap();
        for link in ["aalias", "mlink", "zalias"] {
            std::os::unix::fs::symlink("real", uploads.join(link)).unwrap();
        }
    })
    .await;
    app.put_file("real/dropped.txt", b"dropped by hand\n");
    until("meta for the dropped file", WATCH_DEADLINE, || async {
        app.meta_path("real/dropped.txt").is_file().then_some(())
    })
    .await;
    for link in ["aalias", "mlink", "zalias"] {
        let twin = app.uploads().join(".meta").join(link);
        assert!(!twin.exists(), "meta was written under the link {link}");
    }
    let body = app
        .wait_search(
            &[("q", "dropped")],
            &["real/dropped.txt"],
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(body["total"], 1, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_to_a_big_folder_outside_the_tree_adds_no_watches_outside_it() {
    // Watching followed links, so a link to a large folder elsewhere (`/usr`: 15,000
    // folders) had every folder below it watched, delaying the start by seconds and
    // spending the inotify watch limit.
    let site = Site::new();
    let outside = site.dir.path().join("outside");
    for i in 0..300 {
        std::fs::create_dir_all(outside.join(format!("sub{i:03}"))).unwrap();
    }
    site.put(b"inside/a.txt", b"a\n");
    site.link("inside/elsewhere", &outside);
    site.link("root", "/");
    let (server, _) = site.serve("outside-links").await;
    reconciled(&server).await;
    let watches = inotify_watches(server.child.pid());
    assert!(
        (1..50).contains(&watches),
        "{watches} inotify watches for a tree of a few folders"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_folder_does_not_stop_the_watch_of_the_rest_of_the_tree() {
    // inotify refuses to watch a folder the server may not read, and one such folder made the
    // whole recursive watch fail: nothing dropped by hand was seen until the periodic
    // reconcile, an hour later.
    let mut site = Site::new();
    let locked = site.put(b"locked/inner.txt", b"inner\n");
    site.lock(locked.parent().unwrap());
    site.put(b"a/b/c/old.txt", b"old\n");
    site.put(b"z/old.txt", b"old\n");
    let (server, _) = site.serve("unreadable-watch").await;
    reconciled(&server).await;
    for rel in ["a/b/c/new.txt", "z/new.txt", "new.txt"] {
        site.put(rel.as_bytes(), format!("{rel}\n").as_bytes());
    }
    for rel in ["a/b/c/new.txt", "z/new.txt", "new.txt"] {
        let meta = site.uploads().join(".meta").join(format!("{rel}.yaml"));
        until(&format!("meta for {rel}"), WATCH_DEADLINE, || async {
            meta.is_file().then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_too_long_for_its_meta_file_is_refused_and_its_folder_still_lists() {
    // A name of 251 to 255 bytes is allowed by the filesystem, but its meta file's name
    // (`<name>.yaml`) is not: the file could never get meta, reading it failed with 500, and
    // so did the listing of every folder holding one.
    let long = "x".repeat(251);
    let app = spawn_app_with(|cfg| {
        let folder = cfg.project.join("uploads/long");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(&long), b"long\n").unwrap();
        std::fs::write(folder.join("ok.txt"), b"ok\n").unwrap();
    })
    .await;
    let listing = app.get_api("/api/files", &[("path", "long")]).await;
    assert_eq!(listing.status(), StatusCode::OK);
    let body: Value = listing.json().await.unwrap();
    let names: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["ok.txt"], "{body}");
    let res = app.fetch(&format!("long/{long}")).await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    let res = app
        .upload("long", &format!("{}.txt", "y".repeat(248)), b"y")
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    assert!(temp_files(&app.uploads()).is_empty());
}

/// Makes a FIFO (named pipe) at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "{path:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_meta_file_that_is_a_fifo_or_a_folder_hangs_nothing_and_is_reported() {
    // Reading a meta file that was a FIFO blocked a thread forever (the start-up reconcile
    // never ended); one that was a folder answered 500 and broke its folder's listing.
    let start = spawn_app_with(|cfg| {
        let uploads = cfg.project.join("uploads");
        std::fs::create_dir_all(uploads.join(".meta/special/folder.txt.yaml")).unwrap();
        mkfifo(&uploads.join(".meta/special/fifo.txt.yaml"));
        std::fs::create_dir_all(uploads.join("special")).unwrap();
        for name in ["fifo.txt", "folder.txt", "plain.txt"] {
            std::fs::write(uploads.join("special").join(name), name).unwrap();
        }
        mkfifo(&uploads.join("special/pipe"));
    });
    let app = tokio::time::timeout(Duration::from_secs(60), start)
        .await
        .expect("the server started and finished its start-up reconcile");
    let body: Value = app
        .get_api("/api/files", &[("path", "special")])
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["fifo.txt", "folder.txt", "plain.txt"], "{body}");
    for name in ["fifo.txt", "folder.txt"] {
        let rel = format!("special/{name}");
        let object = &body["data"][name];
        assert_eq!(object["hash"], blake3_hex(name.as_bytes()), "{object}");
        // Meta that cannot be read may be what said `protected: true`.
        let res = app
            .client
            .get(app.url(&format!("/{}", object["url"].as_str().unwrap())))
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::FORBIDDEN, "file-protected").await;
        let problem = app.health().await["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == rel.as_str())
            .cloned();
        let problem = problem.unwrap_or_else(|| panic!("no problem listed for {rel}"));
        assert_eq!(problem["code"], "invalid-meta", "{problem}");
        assert_eq!(problem["message"], "not a regular file", "{problem}");
    }
    use std::os::unix::fs::FileTypeExt;
    let meta = app.uploads().join(".meta/special");
    assert!(std::fs::metadata(meta.join("fifo.txt.yaml"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(meta.join("folder.txt.yaml").is_dir());
    let res = app.fetch("special/pipe").await;
    assert_error(res, StatusCode::NOT_FOUND, "file-not-found").await;
}

/// `GET route` on a child server with the files token.
async fn get(
    server: &Served,
    token: &str,
    route: &str,
    query: &[(&str, &str)],
) -> reqwest::Response {
    let mut q = query.to_vec();
    q.push(("token", token));
    server
        .client
        .get(server.url(route))
        .query(&q)
        .send()
        .await
        .unwrap()
}

/// The keys of a `{"data": {…}}` listing.
async fn listed(res: reqwest::Response) -> Vec<String> {
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["data"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_file_or_folder_answers_403_and_its_folder_still_lists() {
    // A file the server may not read answered 500 (reading it for its meta failed), and so
    // did the listing of its whole folder; an unreadable folder answered 500 too.
    let mut site = Site::new();
    let secret = site.put(b"locked/secret.txt", b"secret\n");
    site.lock(&secret);
    site.put(b"locked/open.txt", b"open\n");
    let inner = site.put(b"lockeddir/inner.txt", b"inner\n");
    site.lock(inner.parent().unwrap());
    let (server, token) = site.serve("unreadable").await;
    reconciled(&server).await;

    let names = listed(get(&server, &token, "/api/files", &[("path", "locked")]).await).await;
    assert_eq!(names, ["open.txt"]);
    let all = get(
        &server,
        &token,
        "/api/files",
        &[("path", ""), ("recursive", "true")],
    )
    .await;
    assert_eq!(listed(all).await, ["locked/open.txt"]);
    for path in ["locked/secret.txt", "lockeddir", "lockeddir/inner.txt"] {
        let res = get(&server, &token, "/api/files", &[("path", path)]).await;
        assert_error(res, StatusCode::FORBIDDEN, "unreadable").await;
    }
    for path in ["locked/secret.txt", "lockeddir/inner.txt"] {
        let res = server
            .client
            .get(server.url(&format!("/project/uploads/{path}")))
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::FORBIDDEN, "unreadable").await;
    }
    let res = get(&server, &token, "/api/folders", &[("path", "lockeddir")]).await;
    assert_error(res, StatusCode::FORBIDDEN, "unreadable").await;
}

/// The `(code, path)` of each problem `/api/health` lists, sorted.
async fn problems(server: &Served) -> Vec<(String, String)> {
    let health = server.health().await;
    let mut out: Vec<(String, String)> = health["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().unwrap().to_string();
            assert!(!text("message").is_empty(), "{p}");
            (text("code"), text("path"))
        })
        .collect();
    out.sort();
    out
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = items
        .iter()
        .map(|(c, p)| (c.to_string(), p.to_string()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_tree_holds_but_cannot_serve_is_listed_in_health() {
    // Names a client can never send, unreadable files and folders, broken links and special
    // files were skipped without a word: nobody could tell why a file never showed up.
    let mut site = Site::new();
    site.put(b"ok.txt", b"ok\n");
    site.put(b"bad/\xff\xfe.jpg", b"not utf-8\n");
    site.put(b"bad/line\nbreak.txt", b"newline\n");
    site.put(b"bad/back\\slash.txt", b"backslash\n");
    site.put(&[b"bad/".as_slice(), &[b'x'; 251]].concat(), b"long\n");
    site.put(b"bad/\xc0folder/inside.txt", b"below a bad folder name\n");
    site.put(b"bad/.hidden", b"hidden names are skipped, by design\n");
    site.put(b"bad/movie.mp4.part", b"so are partial downloads\n");
    site.link("links/a", "b");
    site.link("links/b", "a");
    site.link("links/nowhere", "missing.txt");
    site.link("links/root", "/");
    site.link("links/meta", "../.meta");
    site.link("links/fine", "../ok.txt");
    mkfifo(&site.at(b"links/pipe"));
    let secret = site.put(b"locked/secret.txt", b"secret\n");
    site.lock(&secret);
    let inner = site.put(b"lockeddir/inner.txt", b"inner\n");
    site.lock(inner.parent().unwrap());
    let (server, token) = site.serve("refused").await;
    let reconcile = reconciled(&server).await;
    assert_eq!(
        reconcile["files"], 2,
        "ok.txt and locked/secret.txt: {reconcile}"
    );
    let long = format!("bad/{}", "x".repeat(251));
    let want = pairs(&[
        ("unservable-name", "bad/\u{fffd}\u{fffd}.jpg"),
        ("unservable-name", "bad/line\nbreak.txt"),
        ("unservable-name", "bad/back\\slash.txt"),
        ("unservable-name", &long),
        ("unservable-name", "bad/\u{fffd}folder"),
        ("symlink-refused", "links/a"),
        ("symlink-refused", "links/b"),
        ("symlink-refused", "links/nowhere"),
        ("symlink-refused", "links/root"),
        ("symlink-refused", "links/meta"),
        ("not-a-file", "links/pipe"),
        ("unreadable", "locked/secret.txt"),
        ("unreadable", "lockeddir"),
    ]);
    assert_eq!(problems(&server).await, want);
    let res = get(&server, &token, "/api/files", &[("path", "links/fine")]).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Names a client can send: every one is served under its own name.
const ACCEPTED_NAMES: [&str; 27] = [
    " lead.txt",
    "trail.txt ",
    "two  spaces.txt",
    "-dash.txt",
    "dot.at.end.",
    "%2e%2e",
    "%2F.txt",
    "%.txt",
    "?#&=+;.txt",
    "q\"'`.txt",
    "<tag>.txt",
    "!$()*,@:[]{}|^~.txt",
    "caf\u{e9}.txt",                // NFC
    "cafe\u{301}.txt",              // NFD: the same name to a person, another to the disk
    "rtl\u{202e}gpj.exe.txt",       // right-to-left override
    "emoji\u{1f600}.txt",           // outside the BMP
    "zwj\u{200d}\u{200c}.txt",      // zero-width joiner and non-joiner
    "\u{65e5}\u{672c}\u{8a9e}.txt", // CJK
    "meta",
    "staging",
    "flextype-tmp-1",
    "x.yaml",
    "index.php",
    "con",
    "NUL.txt",
    "file.part.txt",
    "~tilde.txt",
];

/// Names a client can never send: listed in `/api/health` as `unservable-name`.
fn refused_names() -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = [
        b"\xff\xfe.jpg".as_slice(), // not UTF-8
        b"\xed\xa0\x80.txt",        // a lone UTF-16 surrogate, encoded WTF-8 style
        b"a\nb.txt",
        b"a\rb.txt",
        b"a\tb.txt",
        b"a\x01b.txt",
        b"a\x7fb.txt",
        "a\u{85}b.txt".as_bytes(), // C1 control (NEL)
        b"back\\slash.txt",
    ]
    .iter()
    .map(|n| n.to_vec())
    .collect();
    names.push(vec![b'x'; 251]);
    names
}

/// Names that are hidden by design (dot-names, partial downloads): never listed, indexed,
/// served or reported.
const HIDDEN_NAMES: [&str; 9] = [
    "...",
    "..foo",
    ".meta",
    ".staging",
    ".hidden.txt",
    "movie.mp4.part",
    "f.tmp",
    "f.crdownload",
    "~$f.doc",
];

/// Bytes of the hand-written meta file beside `huge/big.txt`.
const HUGE_META_BYTES: usize = 50 << 20;

/// What the test put in the tree, to check the server against.
struct Hostile {
    deep: String,
    outside: PathBuf,
    huge_meta: PathBuf,
}

/// Builds the hostile tree under `site` (no meta at all) with `big` files in `big/`.
fn build_hostile(site: &mut Site, big: usize) -> Hostile {
    for i in 0..big {
        site.put(
            format!("big/f{i:05}.txt").as_bytes(),
            format!("big {i}\n").as_bytes(),
        );
    }
    for name in ACCEPTED_NAMES {
        site.put(format!("names/{name}").as_bytes(), name.as_bytes());
    }
    site.put(
        &[b"names/".as_slice(), &[b'y'; 250]].concat(),
        b"longest name",
    );
    for name in refused_names() {
        site.put(&[b"names/".as_slice(), &name].concat(), &name);
    }
    for name in HIDDEN_NAMES {
        site.put(format!("names/{name}").as_bytes(), name.as_bytes());
    }
    // A name of the server's own temp files: removed at start as a leftover of a crash.
    site.put(b"names/.flextype-tmp-1", b"looks like a temp file");

    let deep: Vec<String> = (0..50).map(|i| format!("d{i:02}")).collect();
    let deep = format!("{}/deep.txt", deep.join("/"));
    site.put(deep.as_bytes(), b"fifty folders down\n");

    let outside = site.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"outside the project\n").unwrap();
    for i in 0..300 {
        std::fs::create_dir(outside.join(format!("sub{i:03}"))).unwrap();
    }
    site.put(b"links/target.txt", b"the target\n");
    site.link("links/a", "b");
    site.link("links/b", "a");
    site.link("links/loop", "..");
    site.link("links/up", "../..");
    site.link("links/root", "/");
    site.link("links/out", &outside);
    site.link("links/meta", "../.meta");
    site.link("links/chain00", "target.txt");
    for i in 1..50 {
        site.link(&format!("links/chain{i:02}"), format!("chain{:02}", i - 1));
    }

    let secret = site.put(b"locked/secret.txt", b"secret\n");
    site.lock(&secret);
    site.put(b"locked/open.txt", b"open\n");
    let inner = site.put(b"lockeddir/inner.txt", b"inner\n");
    site.lock(inner.parent().unwrap());

    site.put(b"huge/big.txt", b"a file with a huge meta\n");
    let huge_meta = site.uploads().join(".meta/huge/big.txt.yaml");
    std::fs::create_dir_all(huge_meta.parent().unwrap()).unwrap();
    let mut text = String::with_capacity(HUGE_META_BYTES + 64);
    text.push_str("title: Huge\nprotected: false\ndescription: '");
    text.extend(std::iter::repeat_n('x', HUGE_META_BYTES));
    text.push_str("'\n");
    std::fs::write(&huge_meta, text).unwrap();

    std::fs::create_dir_all(site.at(b"special")).unwrap();
    mkfifo(&site.at(b"special/pipe"));
    Hostile {
        deep,
        outside,
        huge_meta,
    }
}

/// Every file below `dir` (links not followed), with its size.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out: Vec<(PathBuf, u64)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            (e.path().to_path_buf(), e.metadata().unwrap().len())
        })
        .collect();
    out.sort();
    out
}

/// A value of `/proc/<pid>/status` in KiB (`VmHWM`: peak resident memory, `VmRSS`: now).
fn proc_kib(pid: i32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The file object at `path`, asserting 200.
async fn object(server: &Served, token: &str, path: &str) -> Value {
    let res = get(server, token, "/api/files", &[("path", path)]).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path:?}: {body}");
    body["data"].clone()
}

/// Checks that a file object's URLs serve exactly `bytes`, with the BLAKE3 hash as ETag.
async fn assert_served(server: &Served, object: &Value, bytes: &[u8]) {
    let hash = blake3_hex(bytes);
    assert_eq!(object["hash"], hash.as_str(), "{object}");
    for key in ["full_url", "hash_url"] {
        let url = object[key].as_str().unwrap();
        let res = server.client.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{key} {url}");
        let etag = res.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(etag, format!("\"{hash}\""), "{url}");
        assert_eq!(&res.bytes().await.unwrap()[..], bytes, "{url}");
    }
}

/// A file object's `url` names its path: each segment percent-encoded so that nothing in it
/// ends the path or the segment early, and decoded once it is the path again.
fn assert_url_names(object: &Value) {
    let path = object["path"].as_str().unwrap();
    let url = object["url"].as_str().unwrap();
    let rel = url.strip_prefix("project/uploads/").unwrap();
    assert!(
        rel.bytes()
            .all(|b| b.is_ascii_graphic() && !b"?#\"<>\\^`{|}".contains(&b)),
        "{url:?} holds a byte a URL path must escape"
    );
    let segments: Vec<String> = rel
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .unwrap()
                .into_owned()
        })
        .collect();
    assert_eq!(segments.join("/"), path, "{url}");
}

/// Runs `serve` over the hostile tree and checks everything it promises; prints figures.
async fn serve_a_hostile_tree(big: usize) {
    let mut site = Site::new();
    let built = Instant::now();
    let tree = build_hostile(&mut site, big);
    let outside_before = snapshot(&tree.outside);
    let huge_before = std::fs::metadata(&tree.huge_meta).unwrap();
    println!(
        "hostile: tree of {big} + {} files built in {:?}",
        ACCEPTED_NAMES.len() + 60,
        built.elapsed()
    );

    let started = Instant::now();
    let (server, token) = site.serve("hostile").await;
    let answering = started.elapsed();

    // The server answers while it reads the tree: health, the API and file URLs at once;
    // lookups by hash wait until every file's hash is known (README: the index).
    let (mut polls, mut slowest, mut during, mut by_hash) = (0, Duration::ZERO, None, None);
    let reconcile = loop {
        let asked = Instant::now();
        let health = server.health().await;
        slowest = slowest.max(asked.elapsed());
        polls += 1;
        if health["reconcile"]["state"] == "done" {
            break health["reconcile"].clone();
        }
        if during.is_none() {
            let asked = Instant::now();
            let o = object(&server, &token, "names/meta").await;
            let res = server
                .client
                .get(o["full_url"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(&res.bytes().await.unwrap()[..], b"meta");
            during = Some(asked.elapsed());
            let (client, url) = (
                server.client.clone(),
                o["hash_url"].as_str().unwrap().to_string(),
            );
            by_hash = Some(tokio::spawn(async move {
                let asked = Instant::now();
                let res = client.get(url).send().await.unwrap();
                (res.status(), asked.elapsed())
            }));
        }
        assert!(started.elapsed() < DEADLINE, "reconcile not done: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = started.elapsed();
    let by_hash = match by_hash {
        Some(task) => {
            let (status, waited) = task.await.unwrap();
            assert_eq!(status, StatusCode::OK);
            Some(waited)
        }
        None => None,
    };
    println!(
        "hostile: answering after {answering:?}; reconcile {} ms by the server, {wall:?} from \
         spawn; {polls} health polls during it, slowest {slowest:?}; a file fetched by API \
         and URL during it in {during:?}; a hash URL asked during it waited {by_hash:?}",
        reconcile["millis"]
    );

    // Every file the tree holds was walked; everything acceptable got meta.
    let accepted = ACCEPTED_NAMES.len() + 1;
    // big/, names/, deep.txt, links/target.txt, locked/{secret,open}.txt, huge/big.txt
    let walked = big + accepted + 5;
    assert_eq!(reconcile["files"], walked, "{reconcile}");
    let health = server.health().await;
    assert_eq!(health["status"], "ok");
    // Neither the unreadable file nor the one whose meta is refused is in the index.
    assert_eq!(health["files_indexed"], walked - 2, "{health}");

    // What cannot be served is listed, and why; hidden names are not.
    let mut want = vec![
        ("invalid-meta".to_string(), "huge/big.txt".to_string()),
        ("not-a-file".into(), "special/pipe".into()),
        ("unreadable".into(), "locked/secret.txt".into()),
        ("unreadable".into(), "lockeddir".into()),
    ];
    for link in ["a", "b", "up", "root", "out", "meta", "chain49"] {
        want.push(("symlink-refused".into(), format!("links/{link}")));
    }
    for name in refused_names() {
        let shown = String::from_utf8_lossy(&name).into_owned();
        want.push(("unservable-name".into(), format!("names/{shown}")));
    }
    let got = problems(&server).await;
    for w in &want {
        assert!(got.contains(w), "{w:?} is not in the problems: {got:?}");
    }
    // Links a few hops short of the kernel's limit of 40 resolve; the rest do not.
    for (code, path) in &got {
        let is_chain = path.starts_with("links/chain");
        assert!(
            want.contains(&(code.clone(), path.clone())) || is_chain,
            "unexpected problem {code} {path}"
        );
    }
    let problem = health["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "huge/big.txt")
        .unwrap();
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .starts_with("larger than"),
        "{problem}"
    );

    // Awkward names a client can send: served under their own names, URLs encoded.
    for name in ACCEPTED_NAMES {
        let o = object(&server, &token, &format!("names/{name}")).await;
        assert_eq!(o["filename"], name);
        assert_url_names(&o);
        assert_served(&server, &o, name.as_bytes()).await;
    }
    let longest = format!("names/{}", "y".repeat(250));
    let o = object(&server, &token, &longest).await;
    assert_served(&server, &o, b"longest name").await;
    let o = object(&server, &token, "names/?#&=+;.txt").await;
    assert_eq!(o["url"], "project/uploads/names/%3F%23&=+;.txt");
    let o = object(&server, &token, "names/%2e%2e").await;
    assert_eq!(o["url"], "project/uploads/names/%252e%252e");
    let names = listed(get(&server, &token, "/api/files", &[("path", "names")]).await).await;
    let mut want_names: Vec<String> = ACCEPTED_NAMES.iter().map(|n| n.to_string()).collect();
    want_names.push("y".repeat(250));
    want_names.sort();
    assert_eq!(names, want_names);
    // Names a client cannot send are refused as such, hidden ones too.
    for name in [
        "a\nb.txt",
        "a\u{85}b.txt",
        "back\\slash.txt",
        "...",
        ".meta",
        "f.tmp",
    ] {
        let res = get(
            &server,
            &token,
            "/api/files",
            &[("path", &format!("names/{name}"))],
        )
        .await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    }
    for raw in [
        "names/%FF%FE.jpg",
        "names/a%0Ab.txt",
        "names/..%2F..%2Ftokens",
    ] {
        let res = server
            .client
            .get(server.url(&format!("/project/uploads/{raw}")))
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    }
    assert!(
        !site.at(b"names/.flextype-tmp-1").exists(),
        "temp names are the server's"
    );
    assert!(site.at(b"names/\xff\xfe.jpg").exists());
    let search = get(
        &server,
        &token,
        "/api/files/search",
        &[("folder", "names"), ("limit", "0")],
    )
    .await;
    let body: Value = search.json().await.unwrap();
    assert_eq!(body["total"], accepted, "{body}");

    // 10,000 files in one folder: pages, totals and search.
    let asked = Instant::now();
    let first = get(
        &server,
        &token,
        "/api/files",
        &[("path", "big"), ("limit", "100")],
    )
    .await;
    let first = listed(first).await;
    let first_page = asked.elapsed();
    assert_eq!(first.len(), 100.min(big));
    assert_eq!(first[0], "f00000.txt");
    let asked = Instant::now();
    let offset = (big - 10).to_string();
    let last = get(
        &server,
        &token,
        "/api/files",
        &[("path", "big"), ("limit", "100"), ("offset", &offset)],
    )
    .await;
    let last = listed(last).await;
    let last_page = asked.elapsed();
    let want_last: Vec<String> = (big - 10..big).map(|i| format!("f{i:05}.txt")).collect();
    assert_eq!(last, want_last);
    let past = get(
        &server,
        &token,
        "/api/files",
        &[("path", "big"), ("offset", &big.to_string())],
    )
    .await;
    assert!(listed(past).await.is_empty());
    let mut paged = Vec::new();
    let page = 1000.min(big);
    for offset in (0..big).step_by(page) {
        let res = get(
            &server,
            &token,
            "/api/files",
            &[
                ("path", "big"),
                ("limit", &page.to_string()),
                ("offset", &offset.to_string()),
            ],
        )
        .await;
        paged.extend(listed(res).await);
    }
    let want_all: Vec<String> = (0..big).map(|i| format!("f{i:05}.txt")).collect();
    assert_eq!(paged, want_all);
    let asked = Instant::now();
    let whole = listed(get(&server, &token, "/api/files", &[("path", "big")]).await).await;
    let whole_listing = asked.elapsed();
    assert_eq!(whole.len(), big);
    let asked = Instant::now();
    let res = get(
        &server,
        &token,
        "/api/files/search",
        &[("folder", "big"), ("limit", "5"), ("sort", "filename:desc")],
    )
    .await;
    let body: Value = res.json().await.unwrap();
    let search_time = asked.elapsed();
    assert_eq!(body["total"], big, "{body}");
    assert_eq!(body["data"][0]["path"], format!("big/f{:05}.txt", big - 1));
    let i = big / 2;
    let o = object(&server, &token, &format!("big/f{i:05}.txt")).await;
    assert_served(&server, &o, format!("big {i}\n").as_bytes()).await;
    println!(
        "hostile: listing of {big} files: first page of 100 in {first_page:?}, last page in \
         {last_page:?}, all at once in {whole_listing:?}; search of the folder in {search_time:?}"
    );

    // Fifty folders deep.
    let o = object(&server, &token, &tree.deep).await;
    assert_served(&server, &o, b"fifty folders down\n").await;
    let folder = tree.deep.strip_suffix("/deep.txt").unwrap();
    let res = get(&server, &token, "/api/folders", &[("path", folder)]).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["data"]["files"],
        serde_json::json!(["deep.txt"]),
        "{body}"
    );
    let res = get(&server, &token, "/api/files/search", &[("q", "deep")]).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(hit_paths(&body), [tree.deep.as_str()], "{body}");

    // Links: followed only within the tree, never forever.
    let o = object(&server, &token, "links/chain00").await;
    assert_served(&server, &o, b"the target\n").await;
    let o = object(&server, &token, "links/loop/links/target.txt").await;
    assert_served(&server, &o, b"the target\n").await;
    for path in [
        "links/a",
        "links/chain49",
        "links/root/etc/passwd",
        "links/out/secret.txt",
        "links/up/tokens",
        "links/meta/huge/big.txt.yaml",
    ] {
        let res = get(&server, &token, "/api/files", &[("path", path)]).await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
        let res = server
            .client
            .get(server.url(&format!("/project/uploads/{path}")))
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    }
    let all = get(
        &server,
        &token,
        "/api/files",
        &[
            ("path", ""),
            ("recursive", "true"),
            ("limit", "1"),
            ("offset", &(walked - 3).to_string()),
        ],
    )
    .await;
    assert_eq!(
        listed(all).await.len(),
        1,
        "the recursive listing ends, links not followed"
    );

    // Unreadable files and folders.
    let names = listed(get(&server, &token, "/api/files", &[("path", "locked")]).await).await;
    assert_eq!(names, ["open.txt"]);
    for path in ["locked/secret.txt", "lockeddir", "lockeddir/inner.txt"] {
        let res = get(&server, &token, "/api/files", &[("path", path)]).await;
        assert_error(res, StatusCode::FORBIDDEN, "unreadable").await;
    }

    // The 50 MB meta file: refused unread, the file served with fresh facts (to API token
    // holders: meta that cannot be read may be what protects it), the meta left as written.
    let peak_before = proc_kib(server.child.pid(), "VmHWM");
    let asked = Instant::now();
    for _ in 0..20 {
        let o = object(&server, &token, "huge/big.txt").await;
        assert_eq!(o["hash"], blake3_hex(b"a file with a huge meta\n"));
        assert_eq!(o["filesize"], 24);
    }
    let huge_fetch = asked.elapsed() / 20;
    let peak_after = proc_kib(server.child.pid(), "VmHWM");
    let res = server
        .client
        .get(server.url("/project/uploads/huge/big.txt"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "file-protected").await;
    let huge_after = std::fs::metadata(&tree.huge_meta).unwrap();
    assert_eq!(huge_after.len(), huge_before.len());
    assert_eq!(
        huge_after.modified().unwrap(),
        huge_before.modified().unwrap()
    );
    println!(
        "hostile: file beside the 50 MB meta fetched in {huge_fetch:?} on average; server peak \
         RSS {peak_before} KiB before 20 fetches, {peak_after} KiB after; now {} KiB",
        proc_kib(server.child.pid(), "VmRSS")
    );

    // Special files are not served.
    let res = get(&server, &token, "/api/files", &[("path", "special/pipe")]).await;
    assert_error(res, StatusCode::NOT_FOUND, "file-not-found").await;

    // The watcher follows the tree, without watching anything outside it.
    let watches = inotify_watches(server.child.pid());
    assert!(watches < 300, "{watches} inotify watches");
    site.put(b"names/dropped later.txt", b"dropped later\n");
    let meta = site.uploads().join(".meta/names/dropped later.txt.yaml");
    until("meta for a file dropped later", WATCH_DEADLINE, || async {
        meta.is_file().then_some(())
    })
    .await;

    // Nothing outside the project was touched, and the server is still up.
    assert_eq!(snapshot(&tree.outside), outside_before);
    let mut server = server;
    assert!(server.child.try_status().is_none(), "the server ended");
    let log = server.child.stderr_text();
    assert!(!log.contains("panicked"), "{log}");
    println!(
        "hostile: {watches} inotify watches; peak RSS at the end {} KiB",
        proc_kib(server.child.pid(), "VmHWM")
    );

    // Meta was written for what is served only.
    let mut metas: Vec<String> = std::fs::read_dir(site.uploads().join(".meta/names"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    metas.sort();
    let mut want_metas: Vec<String> = want_names.iter().map(|n| format!("{n}.yaml")).collect();
    want_metas.push("dropped later.txt.yaml".into());
    want_metas.sort();
    assert_eq!(metas, want_metas);

    // A second start reads nothing again but what it could not take in (the unreadable file,
    // the file whose meta is refused), and finds the same problems.
    until("the dropped file in the index", WATCH_DEADLINE, || async {
        let res = get(&server, &token, "/api/files/search", &[("q", "dropped")]).await;
        let body: Value = res.json().await.unwrap();
        (body["total"] == 1).then_some(())
    })
    .await;
    let before = problems(&server).await;
    drop(server);
    let (server, _) = site.serve("hostile-again").await;
    let again = reconciled(&server).await;
    assert_eq!(again["reindexed"], 2, "{again}");
    assert_eq!(problems(&server).await, before);
    println!(
        "hostile: second start, reconcile of the unchanged tree in {} ms",
        again["millis"]
    );
}

/// With 2,000 files in one folder, so the normal suite stays quick on a busy machine.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_tree_is_served_and_what_cannot_be_served_is_reported() {
    serve_a_hostile_tree(2_000).await;
}

/// The full size, 10,000 files in one folder (about a minute on a busy 2-core machine):
/// `cargo test --test api hostile -- --ignored --nocapture` prints its figures.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn a_hostile_tree_with_10_000_files_in_one_folder_is_served() {
    serve_a_hostile_tree(10_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn meta_over_a_mebibyte_is_refused_unread_and_no_edit_makes_one() {
    // Meta files up to 16 MiB were parsed: 15 MiB of short keys took the server to 1.9 GB
    // and seconds per request. Nor could an edit be allowed to write meta that would then be
    // refused when read back (the file would turn protected).
    let limit = 1024 * 1024;
    let app = spawn_app_with(|cfg| {
        let uploads = cfg.project.join("uploads");
        std::fs::create_dir_all(uploads.join("m")).unwrap();
        std::fs::write(uploads.join("m/keys.txt"), b"keys").unwrap();
        std::fs::create_dir_all(uploads.join(".meta/m")).unwrap();
        let mut text = String::from("title: Keys\n");
        for i in 0.. {
            if text.len() > limit {
                break;
            }
            text.push_str(&format!("k{i:07}: v\n"));
        }
        std::fs::write(uploads.join(".meta/m/keys.txt.yaml"), text).unwrap();
    })
    .await;
    let res = app.fetch("m/keys.txt").await;
    assert_eq!(res.status(), StatusCode::OK);
    let object: Value = res.json().await.unwrap();
    assert_eq!(object["data"]["hash"], blake3_hex(b"keys"));
    assert!(
        object["data"].get("k0000000").is_none(),
        "{}",
        object["data"]["title"]
    );
    let health = app.health().await;
    let problem = &health["problems"][0];
    assert_eq!(problem["code"], "invalid-meta", "{health}");
    assert_eq!(problem["message"], format!("larger than {limit} bytes"));

    app.uploaded("m", "notes.txt", b"notes").await;
    let before = std::fs::read(app.meta_path("m/notes.txt")).unwrap();
    // Edits leave 128 KiB below the limit for the facts the server adds later.
    let body = serde_json::json!({ "path": "m/notes.txt", "field": "notes", "value": "n".repeat(limit - 100 * 1024) });
    let res = app
        .call(reqwest::Method::POST, "/api/files/meta", body)
        .await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "meta-too-large").await;
    assert_eq!(std::fs::read(app.meta_path("m/notes.txt")).unwrap(), before);
    let body = serde_json::json!({ "path": "m/notes.txt", "field": "notes", "value": "n".repeat(limit / 2) });
    app.called(reqwest::Method::POST, "/api/files/meta", body)
        .await;
}
