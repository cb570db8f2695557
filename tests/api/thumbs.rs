//! Thumbnails (`?thumb=`) over HTTP: sizes and crops, orientation, no EXIF in the output,
//! the original for anything that is not a configured size of a decodable image, the
//! content-keyed disk cache (moves, changes, restarts), one generation for concurrent
//! requests, 503 when every worker is busy, validators and hash URLs.

use exif::{Field, In, Rational, Tag, Value};
use image::{DynamicImage, GenericImageView, ImageFormat, Rgb, RgbImage};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value as Json};

use crate::helpers::*;

const RED: [u8; 3] = [220, 20, 20];
const GREEN: [u8; 3] = [20, 200, 20];
const BLUE: [u8; 3] = [20, 20, 220];

/// What a GET answered.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
            .to_str()
            .unwrap()
            .to_string()
    }

    /// The body as an image, checking that Content-Type names the format of its bytes.
    fn image(&self) -> DynamicImage {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        let format = image::guess_format(&self.body).expect("an image");
        assert_eq!(self.header("content-type"), format.to_mime_type());
        image::load_from_memory(&self.body).unwrap()
    }
}

async fn get(app: &TestApp, path_and_query: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = app.client.get(app.url(path_and_query));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    Got {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.bytes().await.unwrap().to_vec(),
    }
}

async fn thumb(app: &TestApp, rel: &str, spec: &str) -> Got {
    get(app, &format!("/project/uploads/{rel}?thumb={spec}"), &[]).await
}

async fn thumb_stats(app: &TestApp) -> Json {
    app.health().await["thumbs"].clone()
}

async fn generated(app: &TestApp) -> u64 {
    thumb_stats(app).await["generated"].as_u64().unwrap()
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Three horizontal bands, red over green over blue.
fn bands(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |_, y| {
        Rgb([RED, GREEN, BLUE][(y * 3 / height) as usize])
    }))
}

/// Left half red, right half blue.
fn halves(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, _| {
        Rgb(if x < width / 2 { RED } else { BLUE })
    }))
}

fn plain(width: u32, height: u32, colour: [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, Rgb(colour)))
}

/// Asserts that a pixel is close to a colour (lossy formats move it a little).
fn assert_colour(img: &DynamicImage, x: u32, y: u32, want: [u8; 3]) {
    let got = img.get_pixel(x, y).0;
    let close = (0..3).all(|i| got[i].abs_diff(want[i]) <= 40);
    assert!(close, "pixel ({x},{y}) is {got:?}, want about {want:?}");
}

fn with_sizes(sizes: &[&str]) -> impl FnOnce(&mut flextype::config::Config) {
    let sizes: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    move |c| c.media.thumbs.sizes = sizes
}

/// A PNG whose header declares 65535×65535 pixels, with one tiny (invalid) data chunk.
fn png_bomb() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend(u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend(data);
        out.extend(&crc_input);
        out.extend(crc32(&crc_input).to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend(65535u32.to_be_bytes());
    ihdr.extend(65535u32.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]); // 8-bit RGBA
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread")]
async fn each_thumb_form_comes_out_at_its_exact_size() {
    let app = spawn_app_with(with_sizes(&[
        "100x100", "300x0", "0x300", "600x600f", "100x300t",
    ]))
    .await;
    app.uploaded("pics", "wide.jpg", &jpeg(1200, 800)).await;
    for (spec, want) in [
        ("100x100", (100, 100)),
        ("300x0", (300, 200)),
        ("0x300", (450, 300)),
        ("600x600f", (600, 400)),
        ("100x300t", (100, 300)),
    ] {
        let got = thumb(&app, "pics/wide.jpg", spec).await;
        assert_eq!(got.image().dimensions(), want, "{spec}");
        assert_eq!(got.header("content-type"), "image/jpeg");
    }
    assert_eq!(generated(&app).await, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn crops_keep_the_centre_the_top_or_the_bottom_band() {
    let app = spawn_app_with(with_sizes(&["100x100", "100x100t", "100x100b", "100x100f"])).await;
    let src = encode(bands(300, 900), ImageFormat::Png);
    app.uploaded("pics", "bands.png", &src).await;
    for (spec, colour) in [("100x100", GREEN), ("100x100t", RED), ("100x100b", BLUE)] {
        let img = thumb(&app, "pics/bands.png", spec).await.image();
        assert_eq!(img.dimensions(), (100, 100), "{spec}");
        for y in [5, 50, 95] {
            assert_colour(&img, 50, y, colour);
        }
    }
    // Fit keeps all three bands.
    let fit = thumb(&app, "pics/bands.png", "100x100f").await.image();
    assert_eq!(fit.dimensions(), (33, 100));
    assert_colour(&fit, 16, 5, RED);
    assert_colour(&fit, 16, 50, GREEN);
    assert_colour(&fit, 16, 95, BLUE);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_source_format_gives_a_thumbnail_whose_type_matches_its_bytes() {
    let app = spawn_app().await;
    let src = halves(400, 200);
    for (name, format, want) in [
        ("a.png", ImageFormat::Png, ImageFormat::Png),
        ("a.gif", ImageFormat::Gif, ImageFormat::Png),
        ("a.webp", ImageFormat::WebP, ImageFormat::WebP),
        ("a.jpg", ImageFormat::Jpeg, ImageFormat::Jpeg),
    ] {
        app.uploaded("fmt", name, &encode(src.clone(), format))
            .await;
        let got = thumb(&app, &format!("fmt/{name}"), "300x0").await;
        let img = got.image();
        assert_eq!(image::guess_format(&got.body).unwrap(), want, "{name}");
        assert_eq!(img.dimensions(), (300, 150), "{name}");
        assert_colour(&img, 10, 75, RED);
        assert_colour(&img, 290, 75, BLUE);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_size_not_in_the_config_bad_grammar_and_non_images_get_the_original() {
    let app = spawn_app().await;
    let jpg = jpeg(640, 480);
    app.uploaded("pics", "photo.jpg", &jpg).await;
    let original = get(&app, "/project/uploads/pics/photo.jpg", &[]).await;
    for spec in ["50x50", "abc", "100x100x", "0x0", "", "100x100%20"] {
        let got = thumb(&app, "pics/photo.jpg", spec).await;
        assert_eq!(got.status, StatusCode::OK, "{spec}");
        assert!(got.body == jpg, "{spec}: not the original");
        assert_eq!(got.header("etag"), original.header("etag"), "{spec}");
    }
    app.uploaded("docs", "notes.txt", b"plain words").await;
    let got = thumb(&app, "docs/notes.txt", "100x100").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, b"plain words");
    assert_eq!(
        got.header("etag"),
        format!("\"{}\"", blake3_hex(b"plain words"))
    );
    assert_eq!(generated(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn exif_orientation_6_turns_a_landscape_photo_into_a_portrait_thumbnail() {
    let app = spawn_app().await;
    let stored = encode(halves(600, 400), ImageFormat::Jpeg);
    let orientation = Field {
        tag: Tag::Orientation,
        ifd_num: In::PRIMARY,
        value: Value::Short(vec![6]),
    };
    let src = splice_app1(&stored, &exif_app1(&[orientation]));
    app.uploaded("pics", "turned.jpg", &src).await;
    let img = thumb(&app, "pics/turned.jpg", "300x0").await.image();
    // Displayed 400×600: 300 wide is 450 high.
    assert_eq!(img.dimensions(), (300, 450));
    // Orientation 6 turns the picture a quarter clockwise: its left (red) half is on top.
    assert_colour(&img, 150, 20, RED);
    assert_colour(&img, 150, 430, BLUE);
}

#[tokio::test(flavor = "multi_thread")]
async fn thumbnails_carry_no_exif_so_no_position_leaks() {
    let app = spawn_app().await;
    let ascii = |tag, s: &str| Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![s.as_bytes().to_vec()]),
    };
    let degrees = |tag, d: u32| Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Rational(vec![
            Rational { num: d, denom: 1 },
            Rational { num: 51, denom: 1 },
            Rational { num: 0, denom: 1 },
        ]),
    };
    let fields = [
        ascii(Tag::Make, "NIKON CORPORATION"),
        ascii(Tag::GPSLatitudeRef, "S"),
        degrees(Tag::GPSLatitude, 33),
        ascii(Tag::GPSLongitudeRef, "E"),
        degrees(Tag::GPSLongitude, 151),
    ];
    let src = splice_app1(&jpeg(800, 600), &exif_app1(&fields));
    let object = app.uploaded("pics", "gps.jpg", &src).await;
    assert!(object["exif"]["GPSLatitude"].is_number(), "{object}");
    let got = thumb(&app, "pics/gps.jpg", "300x0").await;
    assert_eq!(got.image().dimensions(), (300, 225));
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(has(&src, b"Exif\0\0"));
    assert!(
        !has(&got.body, b"Exif"),
        "the thumbnail carries an EXIF block"
    );
    assert!(!has(&got.body, b"NIKON"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thumbnail_has_its_own_etag_answers_304_and_keeps_the_urls_cache_control() {
    let app = spawn_app().await;
    let src = jpeg(640, 480);
    let hash = blake3_hex(&src);
    app.uploaded("pics", "photo.jpg", &src).await;
    let got = thumb(&app, "pics/photo.jpg", "100x100").await;
    assert_eq!(got.image().dimensions(), (100, 100));
    let etag = got.header("etag");
    assert_eq!(etag, format!("\"{hash}-100x100\""));
    assert_eq!(got.header("cache-control"), "no-cache");
    assert_eq!(got.header("content-length"), got.body.len().to_string());
    for _ in 0..2 {
        // The second round is answered from memory.
        let again = get(
            &app,
            "/project/uploads/pics/photo.jpg?thumb=100x100",
            &[("if-none-match", &etag)],
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert_eq!(again.header("etag"), etag);
        let whole = thumb(&app, "pics/photo.jpg", "100x100").await;
        assert_eq!(whole.body, got.body);
    }
    // The original's ETag does not match the thumbnail.
    let original = get(
        &app,
        "/project/uploads/pics/photo.jpg",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(original.status, StatusCode::OK);
    assert_eq!(original.body, src);
    assert_eq!(generated(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn hash_urls_serve_thumbnails_that_never_go_stale() {
    let app = spawn_app().await;
    let src = encode(halves(400, 200), ImageFormat::Png);
    let hash = blake3_hex(&src);
    app.uploaded("pics", "h.png", &src).await;
    for url in [
        format!("/media/{hash}.png?thumb=300x0"),
        format!("/media/{hash}?thumb=300x0"),
    ] {
        let got = get(&app, &url, &[]).await;
        assert_eq!(got.image().dimensions(), (300, 150), "{url}");
        assert_eq!(
            got.header("cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(got.header("etag"), format!("\"{hash}-300x0\""));
    }
    // The same content by path shares the cached thumbnail.
    let by_path = thumb(&app, "pics/h.png", "300x0").await;
    assert_eq!(by_path.header("cache-control"), "no-cache");
    assert_eq!(generated(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_file_keeps_its_thumbnail_in_the_cache() {
    let app = spawn_app().await;
    app.uploaded("a", "photo.jpg", &jpeg(640, 480)).await;
    let first = thumb(&app, "a/photo.jpg", "100x100").await;
    assert_eq!(first.image().dimensions(), (100, 100));
    let cached = cache_files(&app);
    assert_eq!(cached.len(), 1);
    let mtime = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    app.called(
        Method::PUT,
        "/api/files",
        json!({"path": "a/photo.jpg", "new_path": "b/moved.jpg"}),
    )
    .await;
    let moved = thumb(&app, "b/moved.jpg", "100x100").await;
    assert_eq!(moved.body, first.body);
    let stats = thumb_stats(&app).await;
    assert_eq!(stats["generated"], 1, "{stats}");
    assert_eq!(stats["cache_hits"], 1, "{stats}");
    assert_eq!(cache_files(&app), cached);
    assert_eq!(
        std::fs::metadata(&cached[0]).unwrap().modified().unwrap(),
        mtime
    );
    let old = thumb(&app, "a/photo.jpg", "100x100").await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
}

/// Every thumbnail file in the project's cache, sorted.
fn cache_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = walkdir::WalkDir::new(app.project.join("cache/thumbs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_file_gets_a_new_thumbnail_never_the_old_one() {
    let app = spawn_app().await;
    let red = encode(plain(400, 300, RED), ImageFormat::Png);
    let blue = encode(plain(400, 300, BLUE), ImageFormat::Png);
    app.uploaded("pics", "swap.png", &red).await;
    let first = thumb(&app, "pics/swap.png", "100x100").await.image();
    assert_colour(&first, 50, 50, RED);
    let res = app
        .upload_many("pics", &[("swap.png", &blue)], &[("overwrite", "true")])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let second = thumb(&app, "pics/swap.png", "100x100").await;
    assert_colour(&second.image(), 50, 50, BLUE);
    assert_eq!(
        second.header("etag"),
        format!("\"{}-100x100\"", blake3_hex(&blue))
    );
    assert_eq!(generated(&app).await, 2);
    assert_eq!(cache_files(&app).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_requests_make_the_thumbnail_once() {
    let app = spawn_app().await;
    app.uploaded("pics", "busy.jpg", &jpeg(1600, 1200)).await;
    let requests = (0..8).map(|_| thumb(&app, "pics/busy.jpg", "600x600f"));
    let answers = futures_util::future::join_all(requests).await;
    let first = &answers[0].body;
    for got in &answers {
        assert_eq!(got.image().dimensions(), (600, 450));
        assert_eq!(&got.body, first);
    }
    assert_eq!(generated(&app).await, 1);
    assert!(temp_files(&app.project).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn pixel_bombs_and_corrupt_images_get_the_original_and_the_server_stays_healthy() {
    let app = spawn_app().await;
    let bomb = png_bomb();
    app.uploaded("evil", "bomb.png", &bomb).await;
    let mut corrupt = jpeg(64, 64)[..20].to_vec();
    corrupt.extend(b"\xff\x01 this is not a JPEG segment at all \xff\xd9");
    app.uploaded("evil", "corrupt.jpg", &corrupt).await;
    for _ in 0..2 {
        let got = thumb(&app, "evil/bomb.png", "100x100").await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, bomb);
        assert_eq!(got.header("content-type"), "image/png");
        let got = thumb(&app, "evil/corrupt.jpg", "300x0").await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, corrupt);
    }
    let stats = thumb_stats(&app).await;
    assert_eq!(stats["generated"], 0, "{stats}");
    assert!(stats["refused"].as_u64().unwrap() >= 2, "{stats}");
    assert!(cache_files(&app).is_empty());
    // Still serving thumbnails of good images.
    app.uploaded("pics", "fine.jpg", &jpeg(200, 100)).await;
    assert_eq!(
        thumb(&app, "pics/fine.jpg", "100x100")
            .await
            .image()
            .dimensions(),
        (100, 100)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_above_max_source_pixels_gets_the_original() {
    let app = spawn_app_with(|c| c.media.thumbs.max_source_pixels = 10_000).await;
    let src = jpeg(200, 100);
    app.uploaded("pics", "big.jpg", &src).await;
    let got = thumb(&app, "pics/big.jpg", "100x100").await;
    assert_eq!(got.body, src);
    assert_eq!(thumb_stats(&app).await["refused"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_that_find_no_free_worker_in_time_get_503_with_retry_after() {
    let sizes = [
        "100x100", "300x0", "0x300", "600x600f", "100x100t", "100x100b", "200x200f",
    ];
    let app = spawn_app_with(|c| {
        c.media.thumbs.sizes = sizes.iter().map(|s| s.to_string()).collect();
        c.media.thumbs.workers = 1;
        c.media.thumbs.max_wait_ms = 0;
    })
    .await;
    // Noise compresses badly and decodes slowly: every generation takes a while.
    let noise = RgbImage::from_fn(2000, 2000, |x, y| {
        let v =
            (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)).wrapping_mul(2_246_822_519);
        Rgb([(v >> 8) as u8, (v >> 16) as u8, (v >> 24) as u8])
    });
    app.uploaded(
        "pics",
        "noise.png",
        &encode(DynamicImage::ImageRgb8(noise), ImageFormat::Png),
    )
    .await;
    let requests = sizes.iter().map(|s| thumb(&app, "pics/noise.png", s));
    let answers = futures_util::future::join_all(requests).await;
    let mut busy = 0;
    for got in &answers {
        match got.status {
            StatusCode::OK => {
                got.image();
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert!(got.header("retry-after").parse::<u64>().unwrap() >= 1);
                let body: Json = serde_json::from_slice(&got.body).unwrap();
                assert_eq!(body["code"], "thumbnail-busy", "{body}");
                assert_eq!(body["http_status_code"], 503);
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        busy >= 1,
        "one worker, no wait, {} requests at once: someone must be turned away",
        sizes.len()
    );
    let stats = thumb_stats(&app).await;
    assert_eq!(stats["busy"], busy, "{stats}");
    // Asking again later works.
    let refused = sizes
        .iter()
        .zip(&answers)
        .find(|(_, g)| g.status == StatusCode::SERVICE_UNAVAILABLE)
        .unwrap()
        .0;
    let retry = until(
        "a retried thumbnail",
        std::time::Duration::from_secs(60),
        || async {
            let got = thumb(&app, "pics/noise.png", refused).await;
            (got.status == StatusCode::OK).then_some(got)
        },
    )
    .await;
    retry.image();
}

#[tokio::test(flavor = "multi_thread")]
async fn thumbnails_survive_a_restart_in_the_disk_cache() {
    let app = spawn_app().await;
    app.uploaded("pics", "keep.jpg", &jpeg(640, 480)).await;
    let first = thumb(&app, "pics/keep.jpg", "300x0").await;
    assert_eq!(first.image().dimensions(), (300, 225));
    let app = app.restart(|_| {}).await;
    let again = thumb(&app, "pics/keep.jpg", "300x0").await;
    assert_eq!(again.body, first.body);
    let stats = thumb_stats(&app).await;
    assert_eq!(stats["generated"], 0, "{stats}");
    assert_eq!(stats["cache_hits"], 1, "{stats}");
    assert_eq!(stats["cache_files"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thumbnail_deleted_from_the_cache_is_made_again() {
    let mut app = spawn_app_with(|c| c.server.hot_cache_bytes = 0).await;
    app.uploaded("pics", "gone.jpg", &jpeg(640, 480)).await;
    let first = thumb(&app, "pics/gone.jpg", "100x100").await;
    std::fs::remove_dir_all(app.project.join("cache/thumbs")).unwrap();
    let again = thumb(&app, "pics/gone.jpg", "100x100").await;
    assert_eq!(again.body, first.body);
    assert_eq!(generated(&app).await, 2);
    assert_eq!(cache_files(&app).len(), 1);
    app.stop().await;
}
