//! The meta file format: a YAML mapping per file in the `.meta` mirror tree.
//!
//! Owns reading and writing meta files, the server's own fields and their defaults, and the
//! dot-notation field edits. Editors' fields are kept verbatim (order included); this module
//! never looks at a media file's content.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::path::Path;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_yaml::{Mapping, Value};

use super::atomic;

/// Fields written by the server; clients may not edit them.
pub const SYSTEM_FIELDS: [&str; 7] = [
    "hash",
    "filesize",
    "type",
    "uploaded_on",
    "modified_on",
    "uuid",
    "exif",
];

/// How many levels of maps and lists a meta may nest, the top mapping included: what the
/// YAML reader accepts (its recursion limit), so an edit can never write a meta that cannot
/// be read back.
pub const MAX_DEPTH: usize = 128;

/// Meta files larger than this are refused as invalid instead of being parsed, and no edit
/// may make one larger. A meta file is a title, a description, tags and EXIF: a few KiB.
/// Parsing YAML costs far more than its size: 15 MiB of short keys held 1.9 GB and took
/// seconds per request (debug build), so the limit is kept well below what a request body
/// may carry.
pub const MAX_META_BYTES: u64 = 1024 * 1024;
/// Room an edit leaves below [`MAX_META_BYTES`] for the facts the server writes into the
/// meta later (EXIF strings come from a segment of at most 64 KiB).
pub const FACTS_ROOM: u64 = 128 * 1024;
/// The largest meta an edit may write.
pub const MAX_EDITED_META_BYTES: u64 = MAX_META_BYTES - FACTS_ROOM;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("invalid meta {path}: {message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads a meta file; `Ok(None)` when there is none. What cannot be read as meta (larger
/// than [`MAX_META_BYTES`], not a regular file, not readable by the server) is `Invalid`, like
/// YAML that does not parse, and is never read into memory: a FIFO would block the reader
/// forever, and a huge file would be read whole on every request only to be refused.
pub fn read(path: &Path) -> Result<Option<Mapping>, MetaError> {
    use std::io::Read;
    let invalid = |message: String| MetaError::Invalid {
        path: path.display().to_string(),
        message,
    };
    let io_error = |e: io::Error| -> MetaError {
        io::Error::new(e.kind(), format!("reading {}: {e}", path.display())).into()
    };
    let file = match open_nonblocking(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(invalid(format!("cannot be read: {e}")))
        }
        Err(e) => return Err(io_error(e)),
    };
    let md = file.metadata().map_err(io_error)?;
    if !md.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    if md.len() > MAX_META_BYTES {
        return Err(invalid(format!("larger than {MAX_META_BYTES} bytes")));
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    file.take(MAX_META_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    parse(&bytes).map(Some).map_err(invalid)
}

/// Opens a file for reading without waiting for a writer when it is a FIFO.
fn open_nonblocking(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Parses meta YAML; an empty document is an empty mapping.
pub fn parse(bytes: &[u8]) -> Result<Mapping, String> {
    if bytes.len() as u64 > MAX_META_BYTES {
        return Err(format!("larger than {MAX_META_BYTES} bytes"));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Mapping::new());
    }
    check_nesting(bytes)?;
    check_expansion(bytes)?;
    match serde_yaml::from_slice::<Value>(bytes) {
        Ok(Value::Mapping(m)) if has_unwritable_key(&m) => {
            Err("a mapping key is a tagged value or a map, which cannot be written back".into())
        }
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err("the document is not a mapping".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Refuses flow collections (`[…]`, `{…}`) nested deeper than a meta may be before the
/// YAML reader sees them: the reader takes time quadratic in flow nesting (20 000 `[` take
/// most of a second, 100 KB of them many seconds) and only then reports its recursion limit.
///
/// A linear scan that follows YAML just far enough to tell a bracket that opens a collection
/// from a bracket inside a scalar or a comment: outside collections a bracket opens one only
/// where a value starts (line start, after `- `, `? `, `: `, `---`, a tag or an anchor);
/// inside, every bracket counts except in quoted scalars and comments. Where it cannot tell,
/// it counts, so it can only over-count, and not on anything the server itself writes.
fn check_nesting(bytes: &[u8]) -> Result<(), String> {
    let blank = |i: usize| bytes.get(i).is_none_or(u8::is_ascii_whitespace);
    // What an anchor name and a tag may hold, as the reader scans them.
    let anchor_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let tag_char = |b: u8| b.is_ascii_alphanumeric() || b"-_;/?:@&=+$,.!~*'()[]%#".contains(&b);
    let (mut depth, mut at_value, mut i) = (0usize, true, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            while bytes.get(i + 1).is_some_and(|&c| c != b'\n') {
                i += 1;
            }
        } else if (b == b'&' || b == b'!') && at_value {
            let part_of = if b == b'&' { anchor_char } else { tag_char };
            while bytes.get(i + 1).is_some_and(|&c| part_of(c)) {
                i += 1;
            }
        } else if depth == 0 {
            match b {
                b'\n' | b'\r' => at_value = true,
                b' ' | b'\t' => {}
                b'[' | b'{' if at_value => depth = 1,
                b'-' | b'?' | b':' if blank(i + 1) => at_value = true,
                b'-' if at_value && bytes[i..].starts_with(b"---") && blank(i + 3) => i += 2,
                _ => at_value = false,
            }
        } else {
            match b {
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
                    }
                    at_value = true;
                }
                b']' | b'}' => {
                    depth -= 1;
                    at_value = false;
                }
                b',' | b':' | b'?' => at_value = true,
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'\'' | b'"' if at_value => {
                    i += 1;
                    while let Some(&c) = bytes.get(i) {
                        if c == b'\\' && b == b'"' {
                            i += 1;
                        } else if c == b && (b == b'"' || bytes.get(i + 1) != Some(&b'\'')) {
                            break;
                        } else if c == b {
                            i += 1;
                        }
                        i += 1;
                    }
                    at_value = false;
                }
                _ => at_value = false,
            }
        }
        i += 1;
    }
    Ok(())
}

/// How many values a meta may hold per byte of its file. Without aliases a value takes at
/// least about a byte; aliases let a few bytes stand for a huge tree ("billion laughs", or
/// one large anchored list repeated many times), which the reader's own repetition limit
/// does not bound.
const MAX_VALUES_PER_BYTE: usize = 4;

/// Refuses a document that expands to more values than its size allows, before any of
/// them is built: a counting pass that stops at the budget.
fn check_expansion(bytes: &[u8]) -> Result<(), String> {
    let budget = Budget {
        used: &Cell::new(0),
        limit: bytes.len() * MAX_VALUES_PER_BYTE + 64,
    };
    // Any other error is the reader's own, reported by the parse that follows.
    let _ = budget.deserialize(serde_yaml::Deserializer::from_slice(bytes));
    if budget.used.get() > budget.limit {
        return Err(format!(
            "aliases expand it to more than {} values",
            budget.limit
        ));
    }
    Ok(())
}

/// Counts values as the reader produces them (aliases expanded), failing past `limit`.
#[derive(Clone, Copy)]
struct Budget<'a> {
    used: &'a Cell<usize>,
    limit: usize,
}

impl Budget<'_> {
    fn spend<E: de::Error>(self) -> Result<(), E> {
        self.used.set(self.used.get() + 1);
        if self.used.get() > self.limit {
            return Err(E::custom("too many values"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Budget<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budget<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.spend()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.spend()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.spend()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.spend()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.spend()
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.spend()
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.spend()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend()?;
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        self.spend()?;
        let (_tag, contents) = data.variant::<de::IgnoredAny>()?;
        contents.newtype_variant_seed(self)
    }
}

/// Whether `v`, as a mapping key, is beyond what the YAML writer can emit: a key that is
/// or holds a tagged value or a non-empty map.
fn unwritable_key(v: &Value) -> bool {
    match v {
        Value::Tagged(_) => true,
        Value::Mapping(m) => !m.is_empty(),
        Value::Sequence(s) => s.iter().any(unwritable_key),
        _ => false,
    }
}

/// Whether a mapping in `m` (itself included) has a key the YAML writer cannot emit, so
/// such a meta could be read but never written back.
fn has_unwritable_key(m: &Mapping) -> bool {
    fn inside(v: &Value) -> bool {
        match v {
            Value::Mapping(m) => has_unwritable_key(m),
            Value::Sequence(s) => s.iter().any(inside),
            Value::Tagged(t) => inside(&t.value),
            _ => false,
        }
    }
    m.keys().any(unwritable_key) || m.keys().chain(m.values()).any(inside)
}

/// Writes a meta file atomically.
pub fn write(path: &Path, meta: &Mapping) -> io::Result<()> {
    atomic::write(path, to_text(meta)?.as_bytes())
}

/// Writes a meta file an edit made, unless it would be larger than
/// [`MAX_EDITED_META_BYTES`], which keeps it readable once the server adds the file's facts
/// (`io::ErrorKind::FileTooLarge`; nothing is written).
pub fn write_edited(path: &Path, meta: &Mapping) -> io::Result<()> {
    let text = to_text(meta)?;
    if text.len() as u64 > MAX_EDITED_META_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "meta of {} bytes is larger than {MAX_EDITED_META_BYTES}",
                text.len()
            ),
        ));
    }
    atomic::write(path, text.as_bytes())
}

fn to_text(meta: &Mapping) -> io::Result<String> {
    serde_yaml::to_string(meta).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The default title: the stem with `-`/`_` as spaces, words capitalised.
pub fn default_title(stem: &str) -> String {
    stem.split(['-', '_', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The keys a file object adds to its meta (meta keys of the same names are replaced).
pub const COMPUTED_KEYS: [&str; 8] = [
    "path",
    "filename",
    "basename",
    "extension",
    "dirname",
    "full_url",
    "url",
    "hash_url",
];

/// What the server knows about a file's content.
#[derive(Debug, Clone)]
pub struct Facts {
    pub hash: String,
    pub filesize: u64,
    pub mime: String,
    /// The file's mtime in Unix seconds, fractional part included, so a change within the
    /// same second is still seen.
    pub modified_on: f64,
    pub exif: Mapping,
}

/// Adds the fields a meta file must have, leaving every present one as it is.
pub fn fill_defaults(meta: &mut Mapping, stem: &str, uploaded_on: i64) {
    let defaults = [
        ("title", Value::from(default_title(stem))),
        ("description", Value::from("")),
        ("uploaded_on", Value::from(uploaded_on)),
        ("uuid", Value::from(uuid::Uuid::now_v7().to_string())),
    ];
    for (k, v) in defaults {
        if !meta.contains_key(k) {
            meta.insert(k.into(), v);
        }
    }
}

/// Writes the content facts into the meta, keeping editors' fields and field order.
pub fn apply_facts(meta: &mut Mapping, facts: &Facts) {
    let fields = [
        ("type", Value::from(facts.mime.clone())),
        ("filesize", Value::from(facts.filesize)),
        ("exif", Value::Mapping(facts.exif.clone())),
        ("hash", Value::from(facts.hash.clone())),
        ("modified_on", seconds_value(facts.modified_on)),
    ];
    for (k, v) in fields {
        meta.insert(k.into(), v);
    }
}

/// Whole seconds are written as integers, the rest as floats.
pub fn seconds_value(secs: f64) -> Value {
    if secs.fract() == 0.0 && secs.abs() < 1e15 {
        Value::from(secs as i64)
    } else {
        Value::from(secs)
    }
}

/// A fresh meta for a new file, fields in the documented order.
pub fn new_meta(stem: &str, uploaded_on: i64, facts: &Facts) -> Mapping {
    let mut meta = Mapping::new();
    meta.insert("title".into(), default_title(stem).into());
    meta.insert("description".into(), "".into());
    meta.insert("type".into(), Value::Null);
    meta.insert("filesize".into(), Value::Null);
    meta.insert("uploaded_on".into(), uploaded_on.into());
    apply_facts(&mut meta, facts);
    meta.insert("uuid".into(), uuid::Uuid::now_v7().to_string().into());
    meta
}

/// Whether the recorded facts still describe a file of this size and mtime.
pub fn is_current(meta: &Mapping, filesize: u64, modified_on: f64) -> bool {
    let recorded_hash = meta.get("hash").and_then(Value::as_str);
    recorded_hash.is_some_and(|h| h.len() == 64)
        && meta.get("filesize").and_then(Value::as_u64) == Some(filesize)
        && meta.get("modified_on").and_then(Value::as_f64) == Some(modified_on)
        && meta.get("type").and_then(Value::as_str).is_some()
        && meta.get("uuid").and_then(Value::as_str).is_some()
}

pub fn hash_of(meta: &Mapping) -> Option<&str> {
    meta.get("hash").and_then(Value::as_str)
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("Field name is empty or malformed")]
    BadName,
    #[error("Field '{0}' is set by the server")]
    System(String),
    #[error("Field '{0}' does not exist")]
    Missing(String),
    #[error("Field '{0}' already exists")]
    Exists(String),
    #[error("Field '{0}' is inside a value that is not a map or list")]
    NotAContainer(String),
    #[error("Field '{0}' would nest the meta deeper than {MAX_DEPTH} levels")]
    TooDeep(String),
}

/// Levels of maps, lists and tags in `v` (0 for a plain scalar).
fn depth(v: &Value) -> usize {
    match v {
        Value::Mapping(m) => 1 + m.values().chain(m.keys()).map(depth).max().unwrap_or(0),
        Value::Sequence(s) => 1 + s.iter().map(depth).max().unwrap_or(0),
        Value::Tagged(t) => 1 + depth(&t.value),
        _ => 0,
    }
}

/// Refuses a value that, set at `field` (`parts` deep below the top mapping), would nest
/// the meta deeper than it can be read back.
fn check_depth(parts: &[&str], field: &str, value: &Value) -> Result<(), FieldError> {
    if parts.len() + depth(value) > MAX_DEPTH {
        return Err(FieldError::TooDeep(field.to_string()));
    }
    Ok(())
}

fn split_field(field: &str) -> Result<Vec<&str>, FieldError> {
    let parts: Vec<&str> = field.split('.').collect();
    if field.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(FieldError::BadName);
    }
    if SYSTEM_FIELDS.contains(&parts[0]) {
        return Err(FieldError::System(parts[0].to_string()));
    }
    Ok(parts)
}

/// Walks to the container holding the last component, creating maps when `create`.
fn container_mut<'a>(
    meta: &'a mut Mapping,
    parts: &[&str],
    field: &str,
    create: bool,
) -> Result<&'a mut Value, FieldError> {
    let (first, rest) = parts.split_first().ok_or(FieldError::BadName)?;
    let missing = || FieldError::Missing(field.to_string());
    if !meta.contains_key(*first) {
        if !create {
            return Err(missing());
        }
        meta.insert((*first).into(), Value::Mapping(Mapping::new()));
    }
    let mut node = meta.get_mut(*first).ok_or_else(missing)?;
    for part in rest {
        node = match node {
            Value::Mapping(m) => {
                if !m.contains_key(*part) {
                    if !create {
                        return Err(missing());
                    }
                    m.insert((*part).into(), Value::Mapping(Mapping::new()));
                }
                m.get_mut(*part).ok_or_else(missing)?
            }
            Value::Sequence(s) => {
                let i: usize = part.parse().map_err(|_| missing())?;
                s.get_mut(i).ok_or_else(missing)?
            }
            _ => return Err(FieldError::NotAContainer(field.to_string())),
        };
    }
    Ok(node)
}

fn last_slot<'a>(
    parent: &'a mut Value,
    key: &str,
    field: &str,
) -> Result<Option<&'a mut Value>, FieldError> {
    match parent {
        Value::Mapping(m) => Ok(m.get_mut(key)),
        Value::Sequence(s) => Ok(key.parse::<usize>().ok().and_then(|i| s.get_mut(i))),
        _ => Err(FieldError::NotAContainer(field.to_string())),
    }
}

/// Replaces the value of an existing field.
pub fn update_field(meta: &mut Mapping, field: &str, value: Value) -> Result<(), FieldError> {
    let parts = split_field(field)?;
    check_depth(&parts, field, &value)?;
    let (last, head) = parts.split_last().ok_or(FieldError::BadName)?;
    let slot = if head.is_empty() {
        meta.get_mut(*last)
    } else {
        last_slot(container_mut(meta, head, field, false)?, last, field)?
    };
    match slot {
        Some(v) => {
            *v = value;
            Ok(())
        }
        None => Err(FieldError::Missing(field.to_string())),
    }
}

/// Adds a field that does not exist yet, creating intermediate maps.
pub fn add_field(meta: &mut Mapping, field: &str, value: Value) -> Result<(), FieldError> {
    let parts = split_field(field)?;
    check_depth(&parts, field, &value)?;
    let (last, head) = parts.split_last().ok_or(FieldError::BadName)?;
    if head.is_empty() {
        if meta.contains_key(*last) {
            return Err(FieldError::Exists(field.to_string()));
        }
        meta.insert((*last).into(), value);
        return Ok(());
    }
    match container_mut(meta, head, field, true)? {
        Value::Mapping(m) if m.contains_key(*last) => Err(FieldError::Exists(field.to_string())),
        Value::Mapping(m) => {
            m.insert((*last).into(), value);
            Ok(())
        }
        _ => Err(FieldError::NotAContainer(field.to_string())),
    }
}

/// Removes an existing field.
pub fn delete_field(meta: &mut Mapping, field: &str) -> Result<(), FieldError> {
    let parts = split_field(field)?;
    let (last, head) = parts.split_last().ok_or(FieldError::BadName)?;
    let missing = || FieldError::Missing(field.to_string());
    if head.is_empty() {
        return meta.remove(*last).map(|_| ()).ok_or_else(missing);
    }
    match container_mut(meta, head, field, false)? {
        Value::Mapping(m) => m.remove(*last).map(|_| ()).ok_or_else(missing),
        Value::Sequence(s) => match last.parse::<usize>() {
            Ok(i) if i < s.len() => {
                s.remove(i);
                Ok(())
            }
            _ => Err(missing()),
        },
        _ => Err(FieldError::NotAContainer(field.to_string())),
    }
}

/// Converts YAML to JSON; non-string keys become their YAML text, non-finite floats null.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                J::from(i)
            } else if let Some(u) = n.as_u64() {
                J::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(J::Null, J::Number)
            }
        }
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(s) => J::Array(s.iter().map(to_json).collect()),
        Value::Mapping(m) => J::Object(mapping_to_json(m)),
        Value::Tagged(t) => to_json(&t.value),
    }
}

pub fn mapping_to_json(m: &Mapping) -> serde_json::Map<String, serde_json::Value> {
    m.iter().map(|(k, v)| (key_text(k), to_json(v))).collect()
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default(),
    }
}

/// Converts a JSON value sent by a client to YAML.
pub fn from_json(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                n.as_f64().unwrap_or(0.0).into()
            }
        }
        J::String(s) => Value::String(s.clone()),
        J::Array(a) => Value::Sequence(a.iter().map(from_json).collect()),
        J::Object(o) => Value::Mapping(
            o.iter()
                .map(|(k, v)| (Value::String(k.clone()), from_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(yaml: &str) -> Mapping {
        parse(yaml.as_bytes()).unwrap()
    }

    #[test]
    fn titles() {
        assert_eq!(default_title("new-cover"), "New Cover");
        assert_eq!(default_title("my_summer__photo"), "My Summer Photo");
        assert_eq!(default_title("élan"), "Élan");
    }

    #[test]
    fn dot_notation_edits() {
        let mut meta = m("title: A\ncredit:\n  name: X\ntags: [a, b]\n");
        update_field(&mut meta, "credit.name", "Y".into()).unwrap();
        add_field(&mut meta, "credit.url", "u".into()).unwrap();
        add_field(&mut meta, "deep.er.field", 3.into()).unwrap();
        update_field(&mut meta, "tags.1", "c".into()).unwrap();
        assert_eq!(
            add_field(&mut meta, "credit.url", "v".into()),
            Err(FieldError::Exists("credit.url".into()))
        );
        assert_eq!(
            update_field(&mut meta, "nope.x", 1.into()),
            Err(FieldError::Missing("nope.x".into()))
        );
        assert_eq!(
            update_field(&mut meta, "hash", 1.into()),
            Err(FieldError::System("hash".into()))
        );
        assert_eq!(
            update_field(&mut meta, "a..b", 1.into()),
            Err(FieldError::BadName)
        );
        delete_field(&mut meta, "tags.0").unwrap();
        delete_field(&mut meta, "credit.name").unwrap();
        let out = serde_yaml::to_string(&meta).unwrap();
        assert_eq!(
            out,
            "title: A\ncredit:\n  url: u\ntags:\n- c\ndeep:\n  er:\n    field: 3\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn what_cannot_be_meta_is_invalid_without_being_read() {
        let dir = tempfile::tempdir().unwrap();
        let is_invalid = |p: &Path, why: &str| match read(p) {
            Err(MetaError::Invalid { message, .. }) => assert!(message.contains(why), "{message}"),
            other => panic!("{}: {other:?}", p.display()),
        };
        let fifo = dir.path().join("fifo.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        is_invalid(&fifo, "not a regular file");
        is_invalid(dir.path(), "not a regular file");
        let huge = dir.path().join("huge.yaml");
        let f = std::fs::File::create(&huge).unwrap();
        f.set_len(MAX_META_BYTES + 1).unwrap();
        is_invalid(&huge, "larger than");
        assert!(read(&dir.path().join("none.yaml")).unwrap().is_none());
    }

    #[test]
    fn invalid_yaml_and_non_mapping_are_errors() {
        assert!(parse(b"a: [1, 2").is_err());
        assert!(parse(b"- 1\n- 2\n").is_err());
        assert!(parse(b"").unwrap().is_empty());
    }

    #[test]
    fn meta_with_a_tagged_key_or_a_map_key_is_invalid_instead_of_unwritable() {
        for yaml in [
            "? !k k\n: v\n",
            "a:\n  ? !k k\n  : v\n",
            "a: [{? !k k\n : v}]\n",
            "? [!k k]\n: v\n",
            "? {a: 1}\n: v\n",
            "x: {? {a: b}}\n",
            "? [{a: b}]\n: v\n",
        ] {
            assert!(parse(yaml.as_bytes()).is_err(), "{yaml:?}");
        }
        let writable = m("a: !t [1]\nb: !c {x: 1}\n? [a]\n: v\n? {}\n: e\n");
        assert_eq!(
            parse(serde_yaml::to_string(&writable).unwrap().as_bytes()),
            Ok(writable)
        );
    }

    #[test]
    fn edit_that_would_nest_the_meta_too_deep_to_read_back_is_refused() {
        let nested = |levels: usize| {
            let mut v = Value::from(1);
            for _ in 0..levels {
                v = Value::Sequence(vec![v]);
            }
            v
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.yaml");
        let mut meta = m("title: A\n");
        add_field(&mut meta, "a.b", nested(MAX_DEPTH - 2)).unwrap();
        write(&file, &meta).unwrap();
        assert_eq!(read(&file).unwrap(), Some(meta.clone()));
        assert_eq!(
            add_field(&mut meta, "x.y", nested(MAX_DEPTH - 1)),
            Err(FieldError::TooDeep("x.y".into()))
        );
        assert_eq!(
            update_field(&mut meta, "title", nested(MAX_DEPTH)),
            Err(FieldError::TooDeep("title".into()))
        );
        let long_field = vec!["f"; MAX_DEPTH + 1].join(".");
        assert!(matches!(
            add_field(&mut meta, &long_field, 1.into()),
            Err(FieldError::TooDeep(_))
        ));
        add_field(&mut meta, &vec!["g"; MAX_DEPTH].join("."), 1.into()).unwrap();
        write(&file, &meta).unwrap();
        assert_eq!(read(&file).unwrap(), Some(meta));
    }

    #[test]
    fn alias_bomb_of_one_large_anchor_repeated_is_refused_before_it_is_built() {
        let n = 3000;
        let wide = format!(
            "a: &a [{}]\nb: [{}]\n",
            vec!["x"; n].join(","),
            vec!["*a"; n].join(",")
        );
        let err = parse(wide.as_bytes()).unwrap_err();
        assert!(err.contains("aliases expand"), "{err}");
        let mut laughs = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n".to_string();
        for (c, prev) in "bcdefghi".chars().zip("abcdefgh".chars()) {
            laughs += &format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(","));
        }
        assert!(parse(laughs.as_bytes()).is_err());
        let reused = m("base: &b {x: 1, y: [1, 2]}\nitem:\n  <<: *b\nother: *b\n");
        assert_eq!(reused.get("other"), reused.get("base"));
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_the_quadratic_reader_sees_it() {
        for open in ["[", "{", "{a: "] {
            let deep = format!("a: {}", open.repeat(100_000));
            // The reader's own answer would be "recursion limit exceeded", many seconds later.
            let err = parse(deep.as_bytes()).unwrap_err();
            assert!(err.contains("nested deeper"), "{err}");
        }
        for hidden in [
            format!("a: &x{}", "[".repeat(100_000)),
            format!("a: !t {}", "{".repeat(100_000)),
            format!("--- {}", "[".repeat(100_000)),
            format!("a: [b, # ]\n c, {}", "[".repeat(100_000)),
            format!("a: [\"]\", {}", "[".repeat(100_000)),
            format!("a: ['it''s]', {}", "[".repeat(100_000)),
        ] {
            let err = parse(hidden.as_bytes()).unwrap_err();
            assert!(err.contains("nested deeper"), "{}: {err}", &hidden[..12]);
        }
        let closed = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(parse(closed.as_bytes()).is_ok());
        // Brackets in scalars and comments are text, however many.
        let text = "{".repeat(200);
        let meta = m(&format!(
            "a{text}: x\nb: '{text}'\nc: \"{text}\"\nd: x{text}\n# {text}\ne: [\"{text}\", '{text}']\n"
        ));
        assert_eq!(meta.len(), 5);
        let written = serde_yaml::to_string(&meta).unwrap();
        assert_eq!(parse(written.as_bytes()).unwrap(), meta);
    }

    #[test]
    fn json_round_trip_keeps_numbers_and_non_string_keys() {
        let meta = m("1: one\nf: 1.5\nn: -3\nlist: [true, null]\n");
        let j = serde_json::Value::Object(mapping_to_json(&meta));
        assert_eq!(
            j,
            serde_json::json!({"1": "one", "f": 1.5, "n": -3, "list": [true, null]})
        );
    }
}
