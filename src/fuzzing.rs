//! Fuzz target bodies: one `pub fn <target>(data: &[u8])` per input parser of the server.
//!
//! Each function feeds arbitrary bytes to a parser and asserts what the rest of the server
//! relies on; a panic is a finding. The cargo-fuzz crate under `fuzz/` only calls these, and
//! `tests/fuzz_corpus.rs` replays the committed corpora through them on stable, so a
//! regression fails `cargo test` without a fuzzer. Inputs are text where the parser takes
//! text, so corpus files can be read and written by hand. See `docs/FUZZING.md`.
//!
//! Nothing here is used by the server itself.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use serde_yaml::{Mapping, Value};

use crate::api::ranges::{self, ByteRange, RangeAnswer, Segment};
use crate::api::serve::upload_path;
use crate::library::names::{
    client_basename, numbered, slugify, split_name, upload_name as name_of,
};
use crate::storage::meta::{self, Facts, FieldError};
use crate::storage::paths::{check_name, Layout, MediaPath, PathError, MAX_NAME_BYTES};
use crate::thumbs::spec::{Mode, MAX_SIDE};
use crate::thumbs::ThumbSpec;

/// The longest file name the filesystems the server runs on accept (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// A scratch folder for the life of the process (the fuzzer runs one target per process).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("flextype-fuzz-")
            .tempdir()
            .expect("a scratch folder")
            .keep()
    })
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

// ---------------------------------------------------------------------------------------------
// media_path

/// `media_path` on a project made by [`media_path_fixture`] in the process's scratch folder.
pub fn media_path(data: &[u8]) {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    let layout = LAYOUT.get_or_init(|| media_path_fixture(&scratch().join("paths")));
    media_path_in(layout, data);
}

/// A project whose uploads hold the symlinks a containment check must see through: `alias`
/// (to `in/`, allowed), `out` (outside the project), `up` (`..`), `meta` (`.meta`), `stage`
/// (`.staging`), `in/back` (`../.meta`), `loop` (itself) and `dangling`; plus the plain folder
/// `in/deeper` and the file `in/file.txt`.
pub fn media_path_fixture(dir: &Path) -> Layout {
    let layout = Layout::open(&dir.join("project")).expect("a project layout");
    let up = &layout.uploads;
    std::fs::create_dir_all(up.join("in/deeper")).expect("in/deeper");
    std::fs::write(up.join("in/file.txt"), b"x").expect("in/file.txt");
    std::fs::create_dir_all(layout.meta.join("in")).expect(".meta/in");
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        for (link, target) in [
            ("alias", up.join("in")),
            ("out", dir.to_path_buf()),
            ("up", PathBuf::from("..")),
            ("meta", layout.meta.clone()),
            ("stage", layout.staging.clone()),
            ("in/back", PathBuf::from("../.meta")),
            ("loop", PathBuf::from("loop")),
            ("dangling", PathBuf::from("nowhere")),
        ] {
            let at = up.join(link);
            if std::fs::symlink_metadata(&at).is_err() {
                symlink(&target, &at).expect("fixture symlink");
            }
        }
    }
    layout
}

/// Request paths of `GET /project/uploads/<path>`, decoded as the server decodes them.
///
/// Input: up to three lines: a raw (percent-encoded) request path, a second one, and a
/// name to join to the first. For every path that parses it checks that:
/// - it parses back to itself and every component is a valid name (`check_name`): no `..`,
///   no dot-name, no `\`, NUL or control character;
/// - `parent`, `name` and `join` agree (`parent.join(name)` is the path; a joined name
///   parses back);
/// - `relative_to` and `rebase` between the two paths agree with `starts_with` and give
///   paths that parse;
/// - `Layout::file` gives a path inside `uploads/` and never inside `.meta` or `.staging`,
///   made of exactly the path's components, and every existing prefix of it resolves
///   (symlinks followed) inside `uploads/` and outside `.meta` and `.staging`; it refuses a
///   path only when a symlink on the way leads out;
/// - `Layout::meta_file` lies in `.meta` and its file name fits `NAME_MAX`, so every file
///   the server accepts can have its meta file.
pub fn media_path_in(layout: &Layout, data: &[u8]) {
    let Some(input) = text(data) else { return };
    let mut lines = input.splitn(3, '\n');
    let first = lines.next().unwrap_or("");
    let second = lines.next();
    let name = lines.next();
    let parse = |raw: &str| upload_path(&format!("/project/uploads/{raw}")).ok();
    let Some(p) = parse(first) else { return };
    check_media_path(layout, &p);
    if let Some(q) = second.and_then(parse) {
        check_media_path(layout, &q);
        check_relation(&p, &q);
        check_relation(&q, &p);
        if let Some(parent) = p.parent() {
            check_relation(&q, &parent);
        }
    }
    if let Some(name) = name {
        match p.join(name) {
            Ok(j) => {
                assert!(check_name(name).is_ok());
                assert_eq!(j.parent().as_ref(), Some(&p));
                assert_eq!(j.name(), name);
                assert!(j.starts_with(&p));
                check_media_path(layout, &j);
            }
            Err(_) => assert!(check_name(name).is_err()),
        }
    }
}

fn check_media_path(layout: &Layout, p: &MediaPath) {
    assert_eq!(
        MediaPath::parse(p.as_str()).as_ref(),
        Ok(p),
        "reparse {p:?}"
    );
    let parts: Vec<&str> = if p.is_root() {
        Vec::new()
    } else {
        p.as_str().split('/').collect()
    };
    for part in &parts {
        assert!(check_name(part).is_ok(), "component {part:?} of {p:?}");
        assert!(!part.starts_with('.') && !part.contains(['\\', '\0']));
        assert!(!part.chars().any(char::is_control));
        assert!(part.len() <= NAME_MAX);
    }
    match p.parent() {
        None => assert!(p.is_root()),
        Some(parent) => {
            assert!(p.starts_with(&parent) && parent != *p);
            assert_eq!(parent.join(p.name()).as_ref(), Ok(p));
            assert_eq!(p.relative_to(&parent), Some(p.name()));
        }
    }

    let file = match layout.file(p) {
        Ok(file) => file,
        Err(e) => {
            assert_eq!(e, PathError::Escapes, "{p:?}");
            assert!(
                leads_out(layout, p),
                "{p:?} refused but no symlink on the way leads out"
            );
            return;
        }
    };
    assert!(file.starts_with(&layout.uploads), "{file:?}");
    assert!(!file.starts_with(&layout.meta) && !file.starts_with(&layout.staging));
    let rel = file.strip_prefix(&layout.uploads).expect("inside uploads");
    let comps: Vec<_> = rel.components().collect();
    assert_eq!(comps.len(), parts.len(), "{file:?}");
    for (c, part) in comps.iter().zip(&parts) {
        assert_eq!(*c, Component::Normal(part.as_ref()));
    }
    let mut prefix = layout.uploads.clone();
    for part in &parts {
        prefix.push(part);
        if std::fs::symlink_metadata(&prefix).is_err() {
            break;
        }
        let real = prefix.canonicalize().expect("an existing prefix resolves");
        assert!(real.starts_with(&layout.uploads), "{prefix:?} -> {real:?}");
        assert!(!real.starts_with(&layout.meta) && !real.starts_with(&layout.staging));
    }

    if !p.is_root() {
        let meta_file = layout
            .meta_file(p)
            .expect("the meta file of a contained path");
        assert!(meta_file.starts_with(&layout.meta));
        let file_name = meta_file.file_name().expect("a file name");
        assert!(
            file_name.len() <= NAME_MAX,
            "meta file name of {:?} is {} bytes",
            p.name(),
            file_name.len()
        );
    }
    if let Ok(folder) = layout.meta_folder(p) {
        assert!(folder.starts_with(&layout.meta));
    }
}

/// Whether some existing prefix of `p` is a symlink that resolves outside `uploads/`, into
/// `.meta` or `.staging`, or not at all.
fn leads_out(layout: &Layout, p: &MediaPath) -> bool {
    let mut prefix = layout.uploads.clone();
    for part in p.as_str().split('/') {
        prefix.push(part);
        match std::fs::symlink_metadata(&prefix) {
            Ok(m) if m.file_type().is_symlink() => match prefix.canonicalize() {
                Ok(real)
                    if real.starts_with(&layout.uploads)
                        && !real.starts_with(&layout.meta)
                        && !real.starts_with(&layout.staging) => {}
                _ => return true,
            },
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

fn check_relation(p: &MediaPath, base: &MediaPath) {
    let rest = p.relative_to(base);
    assert_eq!(rest.is_some(), p.starts_with(base));
    if let Some(rest) = rest {
        assert!(!rest.starts_with('/') && !rest.ends_with('/'));
        let back = if rest.is_empty() {
            base.clone()
        } else if base.is_root() {
            MediaPath::parse(rest).expect("a relative rest parses")
        } else {
            MediaPath::parse(&format!("{base}/{rest}")).expect("base/rest parses")
        };
        assert_eq!(&back, p);
    }
    let to = MediaPath::parse("in/deeper").expect("a fixed target");
    for target in [MediaPath::root(), to] {
        let moved = p.rebase(base, &target);
        assert_eq!(moved.is_some(), p.starts_with(base));
        if let Some(moved) = moved {
            assert_eq!(MediaPath::parse(moved.as_str()).as_ref(), Ok(&moved));
            assert!(moved.starts_with(&target));
            assert_eq!(moved.relative_to(&target), p.relative_to(base));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// thumb_spec

/// Source sides every spec is tried against: the degenerate, the limits and the extremes.
const EDGE_SIDES: [u32; 13] = [
    0,
    1,
    2,
    3,
    7,
    100,
    MAX_SIDE - 1,
    MAX_SIDE,
    MAX_SIDE + 1,
    65_535,
    1 << 24,
    u32::MAX - 1,
    u32::MAX,
];

/// `?thumb=` values and the geometry of the spec they name.
///
/// Input: the spec text on the first line, then source sides as decimal numbers (tried in
/// every pairing with each other and with [`EDGE_SIDES`]). For a spec that parses it checks
/// that its canonical text parses to the same spec with sides of at most `MAX_SIDE` (not
/// both 0), and for every source size that:
/// - `output_size` is 1..=`MAX_SIDE` on each side, exactly the spec for a crop, within the
///   spec and never larger than the source for a fit, and the given side for keep-aspect;
/// - `scale` is finite and positive;
/// - `region` is finite and lies inside the source (non-empty for a non-empty source); it is
///   the whole source unless the spec crops.
pub fn thumb_spec(data: &[u8]) {
    let Some(input) = text(data) else { return };
    let (spec_text, rest) = input.split_once('\n').unwrap_or((input, ""));
    let Ok(spec) = spec_text.parse::<ThumbSpec>() else {
        return;
    };
    let canonical = spec.to_string();
    assert_eq!(canonical.parse::<ThumbSpec>(), Ok(spec), "{canonical}");
    let (w, h) = sides_of(&canonical);
    assert!(
        w <= MAX_SIDE && h <= MAX_SIDE && (w > 0 || h > 0),
        "{canonical}"
    );

    let mut sides = EDGE_SIDES.to_vec();
    sides.extend(
        rest.split_whitespace()
            .filter_map(|s| s.parse::<u32>().ok())
            .take(8),
    );
    for &sw in &sides {
        for &sh in &sides {
            check_geometry(spec, w, h, sw, sh);
        }
    }
}

fn sides_of(canonical: &str) -> (u32, u32) {
    let (w, h) = canonical.split_once('x').expect("WxH");
    let h = h.trim_end_matches(['t', 'b', 'f']);
    (w.parse().expect("a width"), h.parse().expect("a height"))
}

fn check_geometry(spec: ThumbSpec, w: u32, h: u32, sw: u32, sh: u32) {
    let at = || format!("{spec} of {sw}x{sh}");
    let (ow, oh) = spec.output_size(sw, sh);
    assert!(
        (1..=MAX_SIDE).contains(&ow) && (1..=MAX_SIDE).contains(&oh),
        "{}",
        at()
    );
    match spec.mode() {
        Mode::Crop(_) => assert_eq!((ow, oh), (w, h), "{}", at()),
        Mode::Fit => {
            assert!(ow <= w && oh <= h, "{} gives {ow}x{oh}", at());
            assert!(ow <= sw.max(1) && oh <= sh.max(1), "{} enlarges", at());
        }
        Mode::KeepAspect if h == 0 => assert_eq!(ow, w, "{}", at()),
        Mode::KeepAspect => assert_eq!(oh, h, "{}", at()),
    }
    let scale = spec.scale(sw, sh);
    assert!(scale.is_finite() && scale > 0.0, "{} scale {scale}", at());

    let r = spec.region(sw, sh);
    let (fw, fh) = (f64::from(sw), f64::from(sh));
    for v in [r.left, r.top, r.width, r.height] {
        assert!(v.is_finite() && v >= 0.0, "{} region {r:?}", at());
    }
    // A hair of slack for rounding in the centring arithmetic.
    let slack = |side: f64| side * 1e-12;
    assert!(r.left + r.width <= fw + slack(fw), "{} region {r:?}", at());
    assert!(r.top + r.height <= fh + slack(fh), "{} region {r:?}", at());
    if sw > 0 && sh > 0 {
        assert!(r.width > 0.0 && r.height > 0.0, "{} region {r:?}", at());
    }
    if !matches!(spec.mode(), Mode::Crop(_)) {
        assert_eq!((r.left, r.top, r.width, r.height), (0.0, 0.0, fw, fh));
    }
}

// ---------------------------------------------------------------------------------------------
// meta_yaml

/// `meta_yaml` in the process's scratch folder.
pub fn meta_yaml(data: &[u8]) {
    meta_yaml_in(&scratch().join("meta"), data);
}

/// Fields a meta edit names, in dot notation, found in a parsed mapping (at most this many).
const MAX_FIELDS: usize = 24;

/// Meta files as found on disk, and every edit the server makes to them.
///
/// Input: the bytes of a meta file. A first line `# <field> <field> ...` names extra
/// dot-notation fields to edit (YAML reads it as a comment). For a meta that parses it
/// checks that:
/// - the JSON the API answers with (`to_json`, `mapping_to_json`) converts back with
///   `from_json` to the same JSON;
/// - `write` then `read` gives back the same mapping, before and after every kind of edit;
/// - `fill_defaults` adds `title`, `description`, `uploaded_on` and `uuid` and changes no
///   present field; `apply_facts` sets the content facts and leaves every other field;
/// - for each field named in the input and each field path found in the mapping,
///   `update_field`, `add_field` and `delete_field` refuse system fields and malformed names,
///   and when they succeed, the field reads back as written (or is gone).
///
/// Slow or memory-hungry parsing (alias bombs, deep nesting) is a finding of the fuzzer's
/// own limits (`-timeout`, `-rss_limit_mb`).
pub fn meta_yaml_in(dir: &Path, data: &[u8]) {
    let Ok(original) = meta::parse(data) else {
        return;
    };
    std::fs::create_dir_all(dir).expect("a scratch folder");
    let file = dir.join("meta.yaml");
    check_json(&original);
    check_round_trip(&file, &original);

    let mut filled = original.clone();
    meta::fill_defaults(&mut filled, "fuzz-stem", 1_700_000_000);
    for key in ["title", "description", "uploaded_on", "uuid"] {
        assert!(filled.contains_key(key), "{key} filled in");
    }
    for (k, v) in &original {
        assert_eq!(filled.get(k), Some(v), "fill_defaults changed {k:?}");
    }
    let facts = Facts {
        hash: "0".repeat(64),
        filesize: 42,
        mime: "image/png".into(),
        modified_on: 1_700_000_000.5,
        exif: Mapping::new(),
    };
    meta::apply_facts(&mut filled, &facts);
    assert_eq!(meta::hash_of(&filled), Some(facts.hash.as_str()));
    assert_eq!(filled.get("filesize"), Some(&Value::from(42u64)));
    assert_eq!(filled.get("type"), Some(&Value::from("image/png")));
    for (k, v) in &original {
        let is_fact = k
            .as_str()
            .is_some_and(|k| ["type", "filesize", "exif", "hash", "modified_on"].contains(&k));
        if !is_fact {
            assert_eq!(filled.get(k), Some(v), "apply_facts changed {k:?}");
        }
    }
    check_round_trip(&file, &filled);

    let mut fields: Vec<String> = Vec::new();
    if let Some(line) = text(data)
        .and_then(|t| t.trim_start_matches('\u{feff}').lines().next())
        .and_then(|l| l.strip_prefix("# "))
    {
        fields.extend(line.split_whitespace().map(str::to_string));
    }
    field_paths(&Value::Mapping(original.clone()), "", &mut fields);
    fields.truncate(MAX_FIELDS);

    // As deep as the document (what can push an edit past the depth limit) but small, so
    // the write-and-read after each edit stays cheap.
    let mut edited = original.clone();
    let mut nested = Value::from("deepest");
    let depth = 1 + original
        .keys()
        .chain(original.values())
        .map(levels)
        .max()
        .unwrap_or(0);
    for _ in 0..depth {
        nested = Value::Sequence(vec![nested]);
    }
    for (i, field) in fields.iter().enumerate() {
        let value = if i < 4 {
            nested.clone()
        } else {
            Value::String(format!("v{i}"))
        };
        check_edits(&mut edited, field, value, (i < 4).then_some(file.as_path()));
    }
    check_json(&edited);
    check_round_trip(&file, &edited);
}

fn check_json(m: &Mapping) {
    let object = meta::mapping_to_json(m);
    let json = serde_json::Value::Object(object.clone());
    assert_eq!(meta::to_json(&Value::Mapping(m.clone())), json);
    let back = meta::from_json(&json);
    assert_eq!(meta::to_json(&back), json, "JSON -> YAML -> JSON changed");
    serde_json::to_string(&json).expect("JSON serialises");
}

fn check_round_trip(file: &Path, m: &Mapping) {
    meta::write(file, m).expect("a meta the server holds can be written");
    let back = meta::read(file)
        .expect("a written meta reads back")
        .expect("the written file is there");
    assert_eq!(&back, m, "write then read changed the meta");
}

/// Levels of maps, lists and tags in `v`.
fn levels(v: &Value) -> usize {
    match v {
        Value::Mapping(m) => 1 + m.keys().chain(m.values()).map(levels).max().unwrap_or(0),
        Value::Sequence(s) => 1 + s.iter().map(levels).max().unwrap_or(0),
        Value::Tagged(t) => 1 + levels(&t.value),
        _ => 0,
    }
}

/// Dot-notation paths of the string keys and sequence indices in `v` (a few levels deep).
fn field_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if out.len() >= MAX_FIELDS || prefix.matches('.').count() >= 4 {
        return;
    }
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                let path = join(&key);
                out.push(format!("{path}.new"));
                out.push(path.clone());
                field_paths(child, &path, out);
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate().take(4) {
                let path = join(&i.to_string());
                out.push(path.clone());
                field_paths(child, &path, out);
            }
        }
        _ => {}
    }
}

/// The value a dot-notation field names, walked as the edit functions walk it.
fn get_field<'a>(m: &'a Mapping, field: &str) -> Option<&'a Value> {
    let mut parts = field.split('.');
    let mut node = m.get(parts.next()?)?;
    for part in parts {
        node = match node {
            Value::Mapping(m) => m.get(part)?,
            Value::Sequence(s) => s.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Edits `field` every way; with `file`, the meta after each successful update or add must
/// also survive a write and a read.
fn check_edits(meta: &mut Mapping, field: &str, value: Value, file: Option<&Path>) {
    let round_trip = |meta: &Mapping| {
        if let Some(file) = file {
            check_round_trip(file, meta);
        }
    };
    let malformed = field.is_empty() || field.split('.').any(str::is_empty);
    let system =
        !malformed && meta::SYSTEM_FIELDS.contains(&field.split('.').next().unwrap_or_default());
    let expect_refusal = |r: &Result<(), FieldError>, what: &str| {
        if malformed {
            assert_eq!(r, &Err(FieldError::BadName), "{what} {field:?}");
        } else if system {
            assert!(
                matches!(r, Err(FieldError::System(_))),
                "{what} {field:?}: {r:?}"
            );
        }
    };

    let before = meta.clone();
    let r = meta::update_field(meta, field, value.clone());
    expect_refusal(&r, "update");
    match r {
        Ok(()) => {
            assert_eq!(get_field(meta, field), Some(&value), "update {field:?}");
            round_trip(meta);
        }
        Err(_) => assert_eq!(*meta, before, "a refused update changed the meta"),
    }

    let r = meta::add_field(meta, &format!("{field}.added"), value.clone());
    expect_refusal(&r, "add");
    if r.is_ok() {
        let added = format!("{field}.added");
        assert_eq!(get_field(meta, &added), Some(&value), "add {added:?}");
        round_trip(meta);
        assert!(matches!(
            meta::add_field(meta, &added, Value::Null),
            Err(FieldError::Exists(_))
        ));
    }

    let r = meta::add_field(meta, field, value.clone());
    expect_refusal(&r, "add");
    if r.is_ok() {
        assert_eq!(get_field(meta, field), Some(&value), "add {field:?}");
        round_trip(meta);
    }

    let parent_is_map = match field.rsplit_once('.') {
        None => true,
        Some((head, _)) => matches!(get_field(meta, head), Some(Value::Mapping(_))),
    };
    let r = meta::delete_field(meta, field);
    expect_refusal(&r, "delete");
    if r.is_ok() && parent_is_map {
        assert_eq!(get_field(meta, field), None, "delete {field:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// upload_name

/// Counters `numbered` is tried with.
const NUMBERS: [u32; 5] = [1, 2, 10, 9_999, u32::MAX];

/// The file name of a multipart upload, as the server turns it into a stored name.
///
/// Input: the client's file name. It checks that `client_basename` is one piece of the name
/// (no `/` or `\`), that `split_name` splits at the last dot and puts the name back
/// together, that `slugify` gives a non-empty name of one component that does not start with
/// a dot, and that whatever `upload_name` accepts (with and without safe names) is a valid
/// component: it passes `check_name`, holds no `/`, `\`, NUL or control character, does not
/// start with a dot, joins to a `MediaPath` that parses back, and leaves room in `NAME_MAX`
/// for its meta file's `.yaml`. `numbered` must keep an accepted name valid, with the same
/// extension, and give a different name for each counter. With safe names on, only a name
/// too long or a partial-download name may be refused.
pub fn upload_name(data: &[u8]) {
    let Some(raw) = text(data) else { return };
    let base = client_basename(raw);
    assert!(!base.contains(['/', '\\']), "{base:?}");
    assert!(raw.contains(base));

    let (stem, ext) = split_name(base);
    assert!(!ext.contains('.'));
    if stem.len() == base.len() {
        assert!(ext.is_empty());
    } else {
        assert_eq!(format!("{stem}.{ext}"), base);
        assert!(!stem.is_empty());
    }

    let slug = slugify(base);
    assert!(
        !slug.is_empty() && !slug.starts_with(['.', '-']),
        "{slug:?}"
    );
    assert!(!slug.contains(['/', '\\']) && !slug.chars().any(char::is_control));

    for safe in [false, true] {
        match name_of(raw, safe) {
            Ok(name) => check_accepted(&name),
            Err(e) => {
                if safe {
                    assert!(
                        matches!(e, PathError::TooLong | PathError::PartialName(_)),
                        "safe name of {raw:?} refused: {e:?}"
                    );
                }
            }
        }
    }
}

fn check_accepted(name: &str) {
    assert!(check_name(name).is_ok(), "{name:?}");
    assert!(!name.is_empty() && !name.starts_with('.'));
    assert!(!name.contains(['/', '\\', '\0']) && !name.chars().any(char::is_control));
    assert!(
        name.len() + ".yaml".len() <= NAME_MAX,
        "{} bytes leave no room for the meta file's name",
        name.len()
    );
    let joined = MediaPath::root().join(name).expect("joins to the root");
    assert_eq!(MediaPath::parse(name).as_ref(), Ok(&joined));
    let folder = MediaPath::parse("in/deeper").expect("a folder");
    let inside = folder.join(name).expect("joins to a folder");
    assert_eq!(inside.name(), name);
    let ext = split_name(name).1;
    // Each counter gives another name (one of them may be the name itself, when a name at
    // the length limit already ends in that counter: the caller then tries the next).
    let all: std::collections::HashSet<String> =
        NUMBERS.iter().map(|&n| numbered(name, n)).collect();
    assert_eq!(all.len(), NUMBERS.len(), "numbered({name:?}, _) repeats");
    for n in NUMBERS {
        let other = numbered(name, n);
        assert!(
            check_name(&other).is_ok(),
            "numbered({name:?}, {n}) = {other:?}"
        );
        assert!(
            other.len() + ".yaml".len() <= NAME_MAX,
            "numbered({name:?}, {n})"
        );
        if format!("-{n}.{ext}").len() < MAX_NAME_BYTES {
            assert_eq!(split_name(&other).1, ext, "numbered({name:?}) = {other:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// range

/// A byte-range-spec as RFC 9110 §14.1.1 writes it.
#[derive(Debug, Clone, Copy)]
enum Spec {
    /// `first-` or `first-last`.
    Int(u64, Option<u64>),
    /// `-length`.
    Suffix(u64),
}

/// The specs of a `bytes=` header; `None` when the unit is not bytes or the syntax is bad.
/// Lenient as the server is: spaces and tabs around specs and numbers, empty list elements,
/// and a spec whose first position is past the end is unsatisfiable whatever follows its `-`.
fn reference_specs(header: &str, size: u64) -> Option<Vec<Spec>> {
    let ws: &[char] = &[' ', '\t'];
    let (unit, set) = header.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let number = |s: &str| {
        let s = s.trim_matches(ws);
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok()
    };
    let mut specs = Vec::new();
    for spec in set.split(',') {
        let spec = spec.trim_matches(ws);
        if spec.is_empty() {
            continue;
        }
        let (first, last) = spec.split_once('-')?;
        if first.trim_matches(ws).is_empty() {
            specs.push(Spec::Suffix(number(last)?));
        } else {
            let first = number(first)?;
            if first >= size {
                specs.push(Spec::Int(first, None));
                continue;
            }
            let last = if last.trim_matches(ws).is_empty() {
                None
            } else {
                Some(number(last)?)
            };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            specs.push(Spec::Int(first, last));
        }
    }
    Some(specs)
}

/// What RFC 9110 §14 and the server's limits say a `Range` header gets: malformed headers
/// and other units are ignored; 416 exactly when no spec is satisfiable; a suffix of an empty
/// file, too many ranges, or ranges adding up to more than the file get the whole file.
fn reference_answer(header: &str, size: u64) -> RangeAnswer {
    let Some(specs) = reference_specs(header, size) else {
        return RangeAnswer::Whole;
    };
    if specs.is_empty() {
        return RangeAnswer::Whole;
    }
    let satisfiable: Vec<Spec> = specs
        .into_iter()
        .filter(|s| match *s {
            Spec::Int(first, _) => first < size,
            Spec::Suffix(len) => len > 0,
        })
        .collect();
    if satisfiable.is_empty() {
        return RangeAnswer::Unsatisfiable;
    }
    if size == 0 || satisfiable.len() > ranges::MAX_RANGES {
        return RangeAnswer::Whole;
    }
    let ranges: Vec<ByteRange> = satisfiable
        .into_iter()
        .map(|s| match s {
            Spec::Int(first, last) => {
                let last = last.map_or(size - 1, |l| l.min(size - 1));
                ByteRange {
                    start: first,
                    length: last - first + 1,
                }
            }
            Spec::Suffix(len) => {
                let len = len.min(size);
                ByteRange {
                    start: size - len,
                    length: len,
                }
            }
        })
        .collect();
    let total = ranges
        .iter()
        .try_fold(0u64, |sum, r| sum.checked_add(r.length));
    if total.is_none_or(|t| t > size) {
        return RangeAnswer::Whole;
    }
    RangeAnswer::Partial(ranges)
}

/// The `Range` header of a GET, as the server answers it.
///
/// Input: the file size in decimal on the first line (the first line's length when it is
/// not a number), the header value after it. It checks that the answer is the one RFC 9110
/// §14 gives (see `reference_answer`: 416 exactly when nothing is satisfiable, malformed
/// headers ignored), that every range sent is non-empty and inside the file, that the ranges
/// add up to at most the file, and that the `multipart/byteranges` layout announces each
/// range's `Content-Range`, ends with the closing delimiter and has exactly the length
/// `body_len` gives, with no arithmetic overflow on the way.
pub fn range(data: &[u8]) {
    let Some(input) = text(data) else { return };
    let (size_line, header) = input.split_once('\n').unwrap_or(("", input));
    // A file's size comes from its metadata, which never exceeds i64::MAX.
    let size = size_line
        .trim()
        .parse::<u64>()
        .unwrap_or(size_line.len() as u64)
        .min(i64::MAX as u64);
    let answer = ranges::answer(header, size);
    assert_eq!(
        answer,
        reference_answer(header, size),
        "Range {header:?} of {size} bytes"
    );
    let RangeAnswer::Partial(ranges) = answer else {
        return;
    };
    assert!(!ranges.is_empty() && ranges.len() <= ranges::MAX_RANGES);
    let mut total = 0u64;
    for r in &ranges {
        assert!(r.length > 0, "{r:?}");
        let end = r.start.checked_add(r.length).expect("range end overflows");
        assert!(end <= size, "{r:?} past {size}");
        assert_eq!(
            r.content_range(size),
            format!("bytes {}-{}/{size}", r.start, end - 1)
        );
        total = total.checked_add(r.length).expect("total overflows");
    }
    assert!(total <= size, "ranges add up to {total} of {size}");

    let boundary = "0123456789abcdef0123456789abcdef";
    let segments = ranges::multipart(&ranges, boundary, "application/octet-stream", size);
    assert_eq!(segments.len(), ranges.len() * 2 + 1);
    let mut text_len = 0u64;
    for (i, s) in segments.iter().enumerate() {
        match (s, i % 2, ranges.get(i / 2)) {
            (Segment::Text(t), 0, Some(r)) => {
                let head = std::str::from_utf8(t).expect("part headers are text");
                assert!(head.starts_with(&format!("\r\n--{boundary}\r\n")));
                assert!(head.contains(&format!("Content-Range: {}\r\n", r.content_range(size))));
                assert!(head.ends_with("\r\n\r\n"));
                text_len += t.len() as u64;
            }
            (Segment::Range(start, len), 1, Some(r)) => {
                assert_eq!((*start, *len), (r.start, r.length));
            }
            (Segment::Text(t), 0, None) => {
                assert_eq!(&t[..], format!("\r\n--{boundary}--\r\n").as_bytes());
                text_len += t.len() as u64;
            }
            _ => panic!("segment {i} out of place: {s:?}"),
        }
    }
    assert_eq!(ranges::body_len(&segments), text_len + total);
}
