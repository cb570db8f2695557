//! The shape of the search index and how one file's meta becomes one document.
//!
//! Knows the meta format only as a YAML mapping; never reads files. Any value of any type in
//! any field is accepted: what does not fit a field is stringified or skipped, never an error.

use serde_yaml::Value;
use tantivy::schema::{
    Facet, FacetOptions, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::TantivyDocument;

use super::DocInput;

/// Bumped whenever the schema or what goes into it changes: an index of another version is
/// rebuilt at start.
pub const SCHEMA_VERSION: u32 = 2;
/// The analyzer of every text field: words, lowercased, accents folded (`ete` finds `Été`).
pub const ANALYZER: &str = "flextype";

/// Meta keys that are not text for people: kept out of the catch-all `body` field.
const SYSTEM_KEYS: [&str; 9] = [
    "hash",
    "uuid",
    "type",
    "filesize",
    "uploaded_on",
    "modified_on",
    "exif",
    "title",
    "description",
];
/// EXIF keys that are searchable text.
const EXIF_TEXT: [&str; 4] = ["Make", "Model", "LensMake", "LensModel"];

/// Every field, resolved once.
#[derive(Clone, Copy)]
pub struct Fields {
    pub path: Field,
    pub hash: Field,
    pub title: Field,
    pub description: Field,
    pub tags: Field,
    pub filename: Field,
    pub body: Field,
    pub filename_sort: Field,
    pub folder: Field,
    pub mime: Field,
    pub mime_major: Field,
    pub ext: Field,
    pub tag: Field,
    pub filesize: Field,
    pub uploaded_on: Field,
    pub width: Field,
    pub height: Field,
    pub modified_on: Field,
    pub meta_modified: Field,
    /// "1" when the file is protected (by `media.protected` or its meta).
    pub protected: Field,
    /// The whole meta as JSON, so a hit is answered without reading the meta file.
    pub meta: Field,
}

pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let number = || INDEXED | FAST;
    let fields = Fields {
        path: b.add_text_field("path", STRING | FAST),
        hash: b.add_text_field("hash", STRING | FAST | STORED),
        title: b.add_text_field("title", text.clone()),
        description: b.add_text_field("description", text.clone()),
        tags: b.add_text_field("tags", text.clone()),
        filename: b.add_text_field("filename", text.clone()),
        body: b.add_text_field("body", text),
        filename_sort: b.add_text_field("filename_sort", STRING | FAST),
        folder: b.add_facet_field("folder", FacetOptions::default()),
        mime: b.add_text_field("type", STRING),
        mime_major: b.add_text_field("type_major", STRING),
        ext: b.add_text_field("ext", STRING),
        tag: b.add_text_field("tag", STRING),
        filesize: b.add_u64_field("filesize", number()),
        uploaded_on: b.add_i64_field("uploaded_on", number()),
        width: b.add_u64_field("width", number()),
        height: b.add_u64_field("height", number()),
        modified_on: b.add_f64_field("modified_on", FAST),
        meta_modified: b.add_f64_field("meta_modified", FAST),
        protected: b.add_text_field("protected", STRING),
        meta: b.add_text_field("meta", STORED),
    };
    (b.build(), fields)
}

pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The facet of the folder holding `path` ("a/b/c.jpg" → "/a/b"; a root file → "/").
pub fn folder_facet(folder: &str) -> Facet {
    let parts: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
    Facet::from_path(parts)
}

pub fn to_document(f: &Fields, doc: &DocInput) -> TantivyDocument {
    let m = doc.meta;
    let mut d = TantivyDocument::default();
    d.add_text(f.path, doc.path);
    let (folder, name) = doc.path.rsplit_once('/').unwrap_or(("", doc.path));
    d.add_facet(f.folder, folder_facet(folder));
    d.add_text(f.filename, name);
    d.add_text(f.filename_sort, name.to_lowercase());
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default();
    d.add_text(f.ext, ext);
    if let Some(h) = m.get("hash").and_then(Value::as_str) {
        d.add_text(f.hash, h);
    }
    for (field, key) in [(f.title, "title"), (f.description, "description")] {
        let mut text = String::new();
        if let Some(v) = m.get(key) {
            collect_text(v, &mut text);
        }
        d.add_text(field, text);
    }
    if let Some(mime) = m.get("type").and_then(Value::as_str) {
        let mime = mime.trim().to_lowercase();
        let major = mime.split('/').next().unwrap_or("").to_string();
        d.add_text(f.mime, mime);
        d.add_text(f.mime_major, major);
    }
    for tag in tags(m.get("tags")) {
        d.add_text(f.tags, &tag);
        d.add_text(f.tag, tag.to_lowercase());
    }
    let mut body = String::new();
    for (k, v) in m {
        let key = k.as_str().unwrap_or("");
        if !SYSTEM_KEYS.contains(&key) && key != "tags" {
            collect_text(v, &mut body);
        }
    }
    let exif = m.get("exif").and_then(Value::as_mapping);
    for key in EXIF_TEXT {
        if let Some(v) = exif.and_then(|e| e.get(key)) {
            collect_text(v, &mut body);
        }
    }
    d.add_text(f.body, body);
    d.add_u64(f.filesize, doc.stamp.filesize);
    if let Some(t) = m.get("uploaded_on").and_then(as_i64) {
        d.add_i64(f.uploaded_on, t);
    }
    for (field, key) in [(f.width, "Width"), (f.height, "Height")] {
        if let Some(v) = exif.and_then(|e| e.get(key)).and_then(Value::as_u64) {
            d.add_u64(field, v);
        }
    }
    d.add_f64(f.modified_on, doc.stamp.modified_on);
    d.add_f64(f.meta_modified, doc.stamp.meta_modified);
    if doc.protected {
        d.add_text(f.protected, "1");
    }
    // Stored without the keys a file object computes, so a hit's JSON can be written through.
    let mut json = crate::storage::meta::mapping_to_json(m);
    for key in crate::storage::meta::COMPUTED_KEYS {
        json.remove(key);
    }
    d.add_text(f.meta, serde_json::Value::Object(json).to_string());
    d
}

/// A number stored as an integer, a float or a numeric string.
fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Tags as a list of strings, or one string of comma-separated tags.
fn tags(v: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Some(Value::String(s)) => out.extend(s.split(',').map(|t| t.trim().to_string())),
        Some(Value::Sequence(items)) => {
            for item in items {
                let mut t = String::new();
                collect_text(item, &mut t);
                out.push(t.trim().to_string());
            }
        }
        Some(other) => {
            let mut t = String::new();
            collect_text(other, &mut t);
            out.extend(t.split_whitespace().map(str::to_string));
        }
        None => {}
    }
    out.retain(|t| !t.is_empty());
    out
}

/// Every string (and number) in a value, nested maps and lists included, space-separated.
fn collect_text(v: &Value, out: &mut String) {
    let mut push = |s: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(s);
    };
    match v {
        Value::String(s) => push(s),
        Value::Number(n) => push(&n.to_string()),
        Value::Bool(_) | Value::Null => {}
        Value::Sequence(items) => items.iter().for_each(|i| collect_text(i, out)),
        Value::Mapping(map) => map.values().for_each(|i| collect_text(i, out)),
        Value::Tagged(t) => collect_text(&t.value, out),
    }
}
