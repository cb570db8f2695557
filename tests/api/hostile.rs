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
use std::time::Duration;

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
