//! Starting the real server over a temporary project, and typed request helpers.
#![allow(dead_code)] // each test module uses its own subset of the helpers

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use flextype::auth::{TokenKind, TokenStore};
use flextype::config::Config;
use flextype::startup::Application;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

pub struct TestApp {
    pub address: String,
    pub dir: tempfile::TempDir,
    pub project: PathBuf,
    pub files_token: String,
    pub access_token: String,
    pub client: reqwest::Client,
    handle: ServerHandle,
    config: Config,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A config for a test: its own project folder, port 0, few workers.
pub fn test_config(project: &Path) -> Config {
    let defaults = Config::default();
    Config {
        project: project.to_path_buf(),
        server: flextype::config::ServerConfig {
            address: "127.0.0.1:0".into(),
            workers: 2,
            ..defaults.server
        },
        watch: flextype::config::WatchConfig {
            enabled: false,
            ..defaults.watch
        },
        ..defaults
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server on a new temp project after `tweak` adjusts the config.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path().join("project");
    let mut config = test_config(&project);
    tweak(&mut config);
    std::fs::create_dir_all(project.join("tokens")).unwrap();
    let store = TokenStore::new(&project.join("tokens"), false);
    let (_, files) = store.create(TokenKind::Files, "test", 0).unwrap();
    let (_, access) = store.create(TokenKind::Access, "test", 0).unwrap();
    let (address, handle, running) = start(&config).await;
    TestApp {
        address,
        project: project.canonicalize().unwrap(),
        dir,
        files_token: files.as_str().to_string(),
        access_token: access.as_str().to_string(),
        client: reqwest::Client::builder().build().unwrap(),
        handle,
        config,
        running: Some(running),
    }
}

/// Starts a server and waits for its start-up scan.
async fn start(
    config: &Config,
) -> (
    String,
    ServerHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let app = Application::build(config.clone())
        .await
        .unwrap_or_else(|e| panic!("the server did not start: {e:#}"));
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let library = app.library().clone();
    let running = tokio::spawn(app.run_until_stopped());
    library.wait_scanned().await;
    (address, handle, running)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Tests run on the multi-thread runtime, so the server keeps running while this
        // thread waits for it to stop.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(handle.stop(false));
        });
    }
}

impl TestApp {
    /// Stops the server and waits until it has let go of the project (the files stay).
    pub async fn stop(&mut self) {
        self.handle.stop(true).await;
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
        // The server's future ends before every worker thread has dropped its share of the
        // application state, and with it the search index and its lock: wait for the lock,
        // so a restart never finds the index busy.
        let lock = self.project.join("cache/.index.lock");
        until(
            "the index lock to be released",
            Duration::from_secs(10),
            || async {
                let Ok(file) = std::fs::File::options().write(true).open(&lock) else {
                    return Some(());
                };
                file.try_lock().ok()
            },
        )
        .await;
    }

    /// Stops the server and waits until it has let go of the project, runs `between` on the
    /// project folder, and starts a new server over it (on a new port).
    pub async fn restart(mut self, between: impl FnOnce(&Path)) -> TestApp {
        self.stop().await;
        between(&self.project);
        let (address, handle, running) = start(&self.config).await;
        self.address = address;
        self.handle = handle;
        self.running = Some(running);
        self
    }

    pub fn uploads(&self) -> PathBuf {
        self.project.join("uploads")
    }

    /// Where a file lives on disk.
    pub fn file_path(&self, rel: &str) -> PathBuf {
        self.uploads().join(rel)
    }

    /// Where a file's meta lives on disk.
    pub fn meta_path(&self, rel: &str) -> PathBuf {
        self.uploads().join(".meta").join(format!("{rel}.yaml"))
    }

    /// Puts a file on disk directly, as a person would.
    pub fn put_file(&self, rel: &str, bytes: &[u8]) {
        let p = self.file_path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.address, path_and_query)
    }

    /// GET with the files token in the query.
    pub async fn get_api(&self, route: &str, query: &[(&str, &str)]) -> Response {
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("token", &self.files_token));
        self.client
            .get(self.url(route))
            .query(&q)
            .send()
            .await
            .unwrap()
    }

    /// A JSON call with both tokens in the body.
    pub async fn call(&self, method: Method, route: &str, mut body: Value) -> Response {
        body["token"] = json!(self.files_token);
        body["access_token"] = json!(self.access_token);
        self.client
            .request(method, self.url(route))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A JSON call with both tokens that must answer 200; its body.
    pub async fn called(&self, method: Method, route: &str, body: Value) -> Value {
        let what = format!("{method} {route} {body}");
        let res = self.call(method, route, body).await;
        assert_eq!(res.status(), StatusCode::OK, "{what}");
        res.json().await.unwrap()
    }

    /// The `/api/health` body (no token needed).
    pub async fn health(&self) -> Value {
        let res = self
            .client
            .get(self.url("/api/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// A search that must succeed; its whole body.
    pub async fn search(&self, query: &[(&str, &str)]) -> Value {
        let res = self.get_api("/api/files/search", query).await;
        assert_eq!(res.status(), StatusCode::OK, "search {query:?}");
        res.json().await.unwrap()
    }

    /// Polls a search until its paths are exactly `want`, in order; its body then.
    pub async fn wait_search(
        &self,
        query: &[(&str, &str)],
        want: &[&str],
        deadline: Duration,
    ) -> Value {
        until(
            &format!("search {query:?} = {want:?}"),
            deadline,
            || async {
                let body = self.search(query).await;
                (hit_paths(&body) == want).then_some(body)
            },
        )
        .await
    }

    pub async fn fetch(&self, path: &str) -> Response {
        self.get_api("/api/files", &[("path", path)]).await
    }

    /// Uploads files (name, bytes) into a folder with extra form fields.
    pub async fn upload_many(
        &self,
        folder: &str,
        files: &[(&str, &[u8])],
        extra: &[(&str, &str)],
    ) -> Response {
        let mut form = Form::new()
            .text("token", self.files_token.clone())
            .text("access_token", self.access_token.clone())
            .text("folder", folder.to_string());
        for (k, v) in extra {
            form = form.text(k.to_string(), v.to_string());
        }
        for (name, bytes) in files {
            form = form.part(
                "file",
                Part::bytes(bytes.to_vec()).file_name(name.to_string()),
            );
        }
        self.client
            .post(self.url("/api/files"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn upload(&self, folder: &str, name: &str, bytes: &[u8]) -> Response {
        self.upload_many(folder, &[(name, bytes)], &[]).await
    }

    /// Uploads and returns the file object, asserting success.
    pub async fn uploaded(&self, folder: &str, name: &str, bytes: &[u8]) -> Value {
        let res = self.upload(folder, name, bytes).await;
        assert_eq!(res.status(), StatusCode::OK, "upload of {name} failed");
        res.json::<Value>().await.unwrap()["data"].clone()
    }
}

/// Asserts a JSON error body with this status and code.
pub async fn assert_error(res: Response, status: StatusCode, code: &str) {
    let got = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "unexpected status; body: {body}");
    assert_eq!(body["code"], code, "unexpected code; body: {body}");
    assert_eq!(body["http_status_code"], status.as_u16(), "body: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
}

/// The paths of a search body's hits, in order.
pub fn hit_paths(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `check` every 50 ms until it gives `Some`, failing with `what` after `deadline`:
/// tests wait for the server's background work this way, never by sleeping alone.
pub async fn until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A small real JPEG image made in memory.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, 90])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// A small real JPEG carrying an EXIF block (APP1) with a camera, a date and a position.
/// `corrupt` scribbles over the block's TIFF header, as a damaged camera file would have.
pub fn jpeg_with_camera_exif(corrupt: bool) -> Vec<u8> {
    use exif::{Field, In, Rational, Tag, Value};
    let ascii = |tag, s: &str| Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![s.as_bytes().to_vec()]),
    };
    let rational = |tag, parts: &[(u32, u32)]| Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Rational(
            parts
                .iter()
                .map(|&(num, denom)| Rational { num, denom })
                .collect(),
        ),
    };
    let fields = [
        ascii(Tag::Make, "NIKON CORPORATION"),
        ascii(Tag::Model, "NIKON D750"),
        ascii(Tag::DateTimeOriginal, "2021:05:01 09:30:00"),
        ascii(Tag::GPSLatitudeRef, "S"),
        rational(Tag::GPSLatitude, &[(33, 1), (51, 1), (0, 1)]),
        ascii(Tag::GPSLongitudeRef, "E"),
        rational(Tag::GPSLongitude, &[(151, 1), (12, 1), (0, 1)]),
    ];
    let mut app1 = exif_app1(&fields);
    if corrupt {
        app1[6..30].fill(0xEE);
    }
    splice_app1(&jpeg(16, 9), &app1)
}

/// The payload of an EXIF APP1 segment (`Exif\0\0` and a TIFF block) holding `fields`.
pub fn exif_app1(fields: &[exif::Field]) -> Vec<u8> {
    let mut writer = exif::experimental::Writer::new();
    fields.iter().for_each(|f| writer.push_field(f));
    let mut tiff = std::io::Cursor::new(Vec::new());
    writer.write(&mut tiff, false).unwrap();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff.into_inner());
    app1
}

/// A JPEG with an APP1 segment of `payload` put right after its start-of-image marker.
pub fn splice_app1(jpeg: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend(payload);
    out.extend(&jpeg[2..]);
    out
}

/// A small real PNG image made in memory.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(width, height, image::Rgba([10, 200, 30, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// Every file below `dir` whose name marks it as a temp file of the server. A `tokens`
/// folder below `dir` is skipped: call counters are flushed there every second, so a temp
/// file may exist at any moment by design (scan the tokens folder itself to check it).
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || e.file_name() != "tokens")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".flextype-tmp-")
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}
