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
    file_object_from(&entry.path, mapping_to_json(&entry.meta), base)
}

/// The file object of `path` whose meta, as JSON, is `obj`.
pub fn file_object_from(path: &MediaPath, mut obj: Map<String, Value>, base: &str) -> Value {
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
    if let Some(hash) = obj.get("hash").and_then(Value::as_str).map(str::to_string) {
        let suffix = if ext.is_empty() {
            String::new()
        } else {
            format!(".{}", ext.to_ascii_lowercase())
        };
        obj.insert(
            "hash_url".into(),
            format!("{base}/media/{hash}{suffix}").into(),
        );
    }
    Value::Object(obj)
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
