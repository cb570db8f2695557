//! The JSON shapes of files and folders: meta plus computed fields.

use actix_web::HttpRequest;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::library::names::split_name;
use crate::library::{Entry, FolderInfo};
use crate::storage::meta::mapping_to_json;
use crate::storage::paths::MediaPath;

/// Characters escaped in a URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

pub const UPLOADS_URL: &str = "project/uploads";

/// The public base URL: config `url`, else the request's scheme and host.
pub fn base_url(config: &Config, req: &HttpRequest) -> String {
    if !config.url.is_empty() {
        return config.url.trim_end_matches('/').to_string();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// A media path as URL text, each segment escaped.
pub fn url_path(p: &MediaPath) -> String {
    p.as_str()
        .split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn uploads_url(p: &MediaPath) -> String {
    if p.is_root() {
        UPLOADS_URL.to_string()
    } else {
        format!("{UPLOADS_URL}/{}", url_path(p))
    }
}

pub fn file_object(entry: &Entry, base: &str) -> Value {
    let mut obj = mapping_to_json(&entry.meta);
    obj.extend(computed_fields(&entry.path, entry.hash(), base));
    Value::Object(obj)
}

/// The file object as JSON text, from meta JSON text that holds none of the
/// [`COMPUTED_KEYS`](crate::storage::meta::COMPUTED_KEYS)
/// (as the search index stores it): the meta is written through, never parsed.
pub fn file_object_text(
    path: &MediaPath,
    meta_json: &str,
    hash: Option<&str>,
    base: &str,
) -> String {
    let computed = Value::Object(computed_fields(path, hash, base)).to_string();
    match meta_json.trim().strip_suffix('}') {
        Some(open) if open.trim_end() != "{" => format!("{open},{}", &computed[1..]),
        _ => computed,
    }
}

fn computed_fields(path: &MediaPath, hash: Option<&str>, base: &str) -> Map<String, Value> {
    let mut obj = Map::new();
    let name = path.name();
    let (stem, ext) = split_name(name);
    let url = uploads_url(path);
    obj.insert("path".into(), path.as_str().into());
    obj.insert("filename".into(), name.into());
    obj.insert("basename".into(), stem.into());
    obj.insert("extension".into(), ext.into());
    obj.insert(
        "dirname".into(),
        path.parent()
            .map(|p| p.to_string())
            .unwrap_or_default()
            .into(),
    );
    obj.insert("full_url".into(), format!("{base}/{url}").into());
    obj.insert("url".into(), url.into());
    if let Some(hash) = hash {
        obj.insert("hash_url".into(), hash_url(base, hash, name).into());
    }
    obj
}

/// The public URL of a file by path.
pub fn full_url(base: &str, p: &MediaPath) -> String {
    format!("{base}/{}", uploads_url(p))
}

/// The immutable URL of some content: its hash, with the extension of `name` (lowercased)
/// so the URL tells its type.
pub fn hash_url(base: &str, hash: &str, name: &str) -> String {
    match split_name(name).1 {
        "" => format!("{base}/media/{hash}"),
        ext => format!("{base}/media/{hash}.{}", ext.to_ascii_lowercase()),
    }
}

pub fn folder_object(info: &FolderInfo, base: &str) -> Value {
    let url = uploads_url(&info.path);
    json!({
        "path": info.path.as_str(),
        "name": info.path.name(),
        "url": url,
        "full_url": format!("{base}/{url}"),
        "files": info.files,
        "folders": info.folders,
    })
}

/// `{"data": …}`.
pub fn data(v: Value) -> Value {
    json!({ "data": v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_object_text_writes_the_meta_through_and_adds_the_computed_fields() {
        let p = MediaPath::parse("a/b.png").unwrap();
        for meta in [r#"{"title":"B","n":[1,{"x":"}"}]}"#, "{}", " { } "] {
            let text = file_object_text(&p, meta, Some("ab"), "http://h");
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(v["path"], "a/b.png");
            assert_eq!(v["hash_url"], "http://h/media/ab.png");
            if meta.contains("title") {
                assert_eq!(v["title"], "B");
                assert_eq!(v["n"][1]["x"], "}");
            }
        }
    }
}
