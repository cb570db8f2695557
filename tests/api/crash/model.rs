//! What the crash rounds know the tree must hold: every file the server acknowledged (with
//! its content, uuid and editors' fields), and, for each operation the kill cut off, the two
//! states it may have left (not done, or wholly done).
//!
//! Operations in flight never share a path (a path is busy until its operation is answered
//! or, when cut off, settled after the restart), so each acknowledged answer can be applied
//! on its own, in any order.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::{Content, MIN_SIZE};

/// The editors' view of a file: every meta key but the system fields.
pub type Fields = BTreeMap<String, Value>;

/// A file as the model knows it, or as it was found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct FileState {
    pub content: Content,
    /// `None` when the operation was acknowledged but its answer could not be read; it is
    /// learnt from the disk at the next check.
    pub uuid: Option<String>,
    pub fields: Fields,
}

/// A meta edit, as sent to `/api/files/meta`.
#[derive(Debug, Clone)]
pub enum Edit {
    Add(String, Value),
    Update(String, Value),
    Remove(String),
}

impl Edit {
    /// The method of the call, the field and the value sent.
    pub fn request(&self) -> (reqwest::Method, &str, Option<&Value>) {
        match self {
            Edit::Add(f, v) => (reqwest::Method::POST, f, Some(v)),
            Edit::Update(f, v) => (reqwest::Method::PATCH, f, Some(v)),
            Edit::Remove(f) => (reqwest::Method::DELETE, f, None),
        }
    }

    fn apply(&self, fields: &mut Fields) {
        match self {
            Edit::Add(f, v) | Edit::Update(f, v) => match f.split_once('.') {
                Some((top, sub)) => {
                    fields
                        .get_mut(top)
                        .expect("nested edits only of present maps")[sub] = v.clone();
                }
                None => {
                    fields.insert(f.clone(), v.clone());
                }
            },
            Edit::Remove(f) => {
                fields.remove(f);
            }
        }
    }
}

/// One operation a client sends; `before` is the state of its source when it was chosen.
#[derive(Debug, Clone)]
pub enum Op {
    Upload {
        path: String,
        content: Content,
        slow: bool,
    },
    Overwrite {
        path: String,
        content: Content,
        slow: bool,
        before: FileState,
    },
    Move {
        from: String,
        to: String,
        before: FileState,
    },
    Copy {
        from: String,
        to: String,
        before: FileState,
    },
    Meta {
        path: String,
        edit: Edit,
        before: FileState,
    },
    Delete {
        path: String,
        before: FileState,
    },
    /// Folder operations: `before` holds every file below the folder.
    MoveFolder {
        from: String,
        to: String,
        before: BTreeMap<String, FileState>,
    },
    CopyFolder {
        from: String,
        to: String,
        before: BTreeMap<String, FileState>,
    },
    DeleteFolder {
        path: String,
        before: BTreeMap<String, FileState>,
    },
}

/// Whether `path` is `folder` or below it.
fn within(path: &str, folder: &str) -> bool {
    path.strip_prefix(folder)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `path` below `from`, moved below `to`.
fn rebase(path: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &path[from.len()..])
}

/// What a path may hold after an operation: nothing, or a file like this.
#[derive(Debug, Clone)]
pub struct Expect {
    content: Content,
    /// The uuid it must have, when known.
    uuid: Option<String>,
    /// A uuid it must not have (a copy's source's).
    not_uuid: Option<String>,
    /// Any of these editors' views.
    fields: Vec<Fields>,
}

impl Expect {
    fn exact(s: &FileState) -> Expect {
        Expect {
            content: s.content,
            uuid: s.uuid.clone(),
            not_uuid: None,
            fields: vec![s.fields.clone()],
        }
    }

    fn matches(&self, f: &FileState) -> bool {
        f.content == self.content
            && self
                .uuid
                .as_ref()
                .is_none_or(|u| f.uuid.as_ref() == Some(u))
            && self
                .not_uuid
                .as_ref()
                .is_none_or(|u| f.uuid.as_ref() != Some(u))
            && self.fields.contains(&f.fields)
    }
}

/// The state of some paths after an operation.
type Outcome = Vec<(String, Option<Expect>)>;

/// The fields a new file gets: its title from its name, an empty description.
pub fn default_fields(path: &str) -> Fields {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    Fields::from([
        (
            "title".to_string(),
            json!(flextype::storage::meta::default_title(stem)),
        ),
        ("description".to_string(), json!("")),
    ])
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Upload { .. } => "upload",
            Op::Overwrite { .. } => "overwrite",
            Op::Move { .. } => "move",
            Op::Copy { .. } => "copy",
            Op::Meta { .. } => "meta",
            Op::Delete { .. } => "delete",
            Op::MoveFolder { .. } => "folder move",
            Op::CopyFolder { .. } => "folder copy",
            Op::DeleteFolder { .. } => "folder delete",
        }
    }

    /// Every file path the operation may change.
    pub fn paths(&self) -> Vec<String> {
        match self {
            Op::Upload { path, .. }
            | Op::Overwrite { path, .. }
            | Op::Meta { path, .. }
            | Op::Delete { path, .. } => vec![path.clone()],
            Op::Move { from, to, .. } | Op::Copy { from, to, .. } => {
                vec![from.clone(), to.clone()]
            }
            Op::MoveFolder { from, to, before } | Op::CopyFolder { from, to, before } => before
                .keys()
                .flat_map(|p| [p.clone(), rebase(p, from, to)])
                .collect(),
            Op::DeleteFolder { before, .. } => before.keys().cloned().collect(),
        }
    }

    /// The folders the operation works on as a whole.
    fn folders(&self) -> Vec<&str> {
        match self {
            Op::MoveFolder { from, to, .. } | Op::CopyFolder { from, to, .. } => vec![from, to],
            Op::DeleteFolder { path, .. } => vec![path],
            _ => Vec::new(),
        }
    }

    /// The state the operation leaves when it was not done, and when it was.
    fn outcomes(&self, answer: Option<&Value>) -> [Outcome; 2] {
        let uuid = answer
            .and_then(|b| b["data"]["uuid"].as_str())
            .map(str::to_string);
        let exact = |s: &FileState| Some(Expect::exact(s));
        match self {
            Op::Upload {
                path,
                content,
                slow: _,
            } => [
                vec![(path.clone(), None)],
                vec![(
                    path.clone(),
                    Some(Expect {
                        content: *content,
                        uuid,
                        not_uuid: None,
                        fields: vec![default_fields(path)],
                    }),
                )],
            ],
            Op::Overwrite {
                path,
                content,
                before,
                ..
            } => [
                vec![(path.clone(), exact(before))],
                vec![(
                    path.clone(),
                    exact(&FileState {
                        content: *content,
                        ..before.clone()
                    }),
                )],
            ],
            Op::Move { from, to, before } => [
                vec![(from.clone(), exact(before)), (to.clone(), None)],
                vec![(from.clone(), None), (to.clone(), exact(before))],
            ],
            Op::Copy { from, to, before } => {
                // A copy cut off between placing the file and writing its meta gets default
                // meta at the restart; a new uuid either way.
                let mut fields = vec![before.fields.clone()];
                if answer.is_none() {
                    fields.push(default_fields(to));
                }
                let copy = Expect {
                    content: before.content,
                    uuid,
                    not_uuid: before.uuid.clone(),
                    fields,
                };
                [
                    vec![(from.clone(), exact(before)), (to.clone(), None)],
                    vec![(from.clone(), exact(before)), (to.clone(), Some(copy))],
                ]
            }
            Op::Meta { path, edit, before } => {
                let mut after = before.clone();
                edit.apply(&mut after.fields);
                [
                    vec![(path.clone(), exact(before))],
                    vec![(path.clone(), exact(&after))],
                ]
            }
            Op::Delete { path, before } => [
                vec![(path.clone(), exact(before))],
                vec![(path.clone(), None)],
            ],
            Op::MoveFolder { from, to, before } => {
                let (mut old, mut new) = (Vec::new(), Vec::new());
                for (p, s) in before {
                    let q = rebase(p, from, to);
                    old.extend([(p.clone(), exact(s)), (q.clone(), None)]);
                    new.extend([(p.clone(), None), (q, exact(s))]);
                }
                [old, new]
            }
            Op::CopyFolder { from, to, before } => {
                let (mut old, mut new) = (Vec::new(), Vec::new());
                for (p, s) in before {
                    let q = rebase(p, from, to);
                    let copy = Expect {
                        content: s.content,
                        uuid: None,
                        not_uuid: s.uuid.clone(),
                        fields: vec![s.fields.clone()],
                    };
                    old.extend([(p.clone(), exact(s)), (q.clone(), None)]);
                    new.extend([(p.clone(), exact(s)), (q, Some(copy))]);
                }
                [old, new]
            }
            Op::DeleteFolder { before, .. } => [
                before.iter().map(|(p, s)| (p.clone(), exact(s))).collect(),
                before.keys().map(|p| (p.clone(), None)).collect(),
            ],
        }
    }
}

/// How the operations cut off by a kill turned out: by kind, how many were not done and how
/// many were done.
#[derive(Debug, Default, Clone)]
pub struct Settled(pub BTreeMap<&'static str, [usize; 2]>);

impl Settled {
    pub fn not_done(&self) -> usize {
        self.0.values().map(|[n, _]| n).sum()
    }

    pub fn done(&self) -> usize {
        self.0.values().map(|[_, d]| d).sum()
    }

    pub fn add(&mut self, other: &Settled) {
        for (kind, [n, d]) in &other.0 {
            let mine = self.0.entry(kind).or_default();
            mine[0] += n;
            mine[1] += d;
        }
    }
}

impl std::fmt::Display for Settled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(kind, [n, d])| format!("{kind} {d}/{}", n + d))
            .collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// The model of the tree, shared by the clients of a round.
pub struct Model {
    pub files: BTreeMap<String, FileState>,
    busy: BTreeSet<String>,
    /// Folders a folder operation in flight works on: nothing below them may be used.
    busy_folders: BTreeSet<String>,
    /// Operations cut off by the kill, settled at the next check.
    cut_off: Vec<Op>,
    next_id: u64,
    rng: StdRng,
}

/// Folders uploads go to; moves and copies may also make new ones below `m/`.
const FOLDERS: [&str; 6] = ["", "a", "a/b", "c", "ünï", "m/x/y"];
/// Editors' fields the meta edits add, change and remove.
const FIELDS: [&str; 5] = ["alt", "tags", "rating", "credit", "draft"];
/// Around this many files, uploads and deletes balance.
const TARGET_FILES: usize = 150;
/// Folders copied or deleted as a whole hold at most this many files.
const MAX_FOLDER_FILES: usize = 12;

impl Model {
    pub fn new(rng: StdRng) -> Model {
        Model {
            files: BTreeMap::new(),
            busy: BTreeSet::new(),
            busy_folders: BTreeSet::new(),
            cut_off: Vec::new(),
            next_id: 1,
            rng,
        }
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// A path no file ever had, in a folder no folder operation is using.
    fn fresh_path(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{}.txt", self.fresh_id());
        for _ in 0..5 {
            let folder = if self.rng.random_bool(0.2) {
                format!("m/{}", self.rng.random_range(0..4))
            } else {
                FOLDERS.choose(&mut self.rng).unwrap().to_string()
            };
            if folder.is_empty() {
                return name;
            }
            let path = format!("{folder}/{name}");
            if !self.is_busy(&path) {
                return path;
            }
        }
        name
    }

    fn is_busy(&self, path: &str) -> bool {
        self.busy.contains(path) || self.busy_folders.iter().any(|f| within(path, f))
    }

    /// Every folder holding files, with the files below it, when none of them is in use.
    fn idle_folders(&self) -> Vec<(String, BTreeMap<String, FileState>)> {
        let mut folders: BTreeMap<&str, BTreeMap<String, FileState>> = BTreeMap::new();
        for (path, state) in &self.files {
            let mut at = path.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                folders
                    .entry(parent)
                    .or_default()
                    .insert(path.clone(), state.clone());
                at = parent;
            }
        }
        folders
            .into_iter()
            .filter(|(f, _)| {
                !self.busy.iter().any(|p| within(p, f))
                    && !self
                        .busy_folders
                        .iter()
                        .any(|b| within(b, f) || within(f, b))
            })
            .map(|(f, files)| (f.to_string(), files))
            .collect()
    }

    /// Most files are small; some are large enough to take a while to arrive.
    fn fresh_content(&mut self) -> (Content, bool) {
        let id = self.fresh_id();
        let size = match self.rng.random_range(0..100) {
            0..50 => self.rng.random_range(MIN_SIZE..8 * 1024),
            50..85 => self.rng.random_range(32 * 1024..512 * 1024),
            _ => self.rng.random_range(1024 * 1024..4 * 1024 * 1024),
        };
        let slow = size > 64 * 1024 && self.rng.random_bool(0.4);
        (Content { id, size }, slow)
    }

    fn random_value(&mut self, field: &str) -> Value {
        let n: u32 = self.rng.random_range(0..1000);
        match field {
            "alt" | "title" | "description" => {
                json!(format!("{field} {n}: “quoted” 'x' — ü # not a comment"))
            }
            "tags" => json!((0..n % 4)
                .map(|i| format!("tag-{}", n + i))
                .collect::<Vec<_>>()),
            "rating" => json!(n % 6),
            "credit" => json!({ "name": format!("Photographer {n}"), "year": 1990 + n % 35 }),
            "credit.name" => json!(format!("Renamed {n}")),
            _ => json!(n.is_multiple_of(2)),
        }
    }

    fn pick_edit(&mut self, fields: &Fields) -> Edit {
        let present: Vec<&str> = FIELDS
            .iter()
            .copied()
            .filter(|f| fields.contains_key(*f))
            .collect();
        let absent: Vec<&str> = FIELDS
            .iter()
            .copied()
            .filter(|f| !fields.contains_key(*f))
            .collect();
        let roll = self.rng.random_range(0..10);
        if roll < 4 && !absent.is_empty() {
            let f = *absent.choose(&mut self.rng).unwrap();
            return Edit::Add(f.into(), self.random_value(f));
        }
        if roll < 6 && !present.is_empty() {
            let f = *present.choose(&mut self.rng).unwrap();
            return Edit::Remove(f.into());
        }
        let mut updatable: Vec<&str> = vec!["title", "description"];
        updatable.extend(&present);
        if fields.get("credit").is_some_and(Value::is_object) {
            updatable.push("credit.name");
        }
        let f = *updatable.choose(&mut self.rng).unwrap();
        Edit::Update(f.into(), self.random_value(f))
    }

    /// Chooses the next operation on paths no other one is using, and marks them busy.
    pub fn pick(&mut self) -> Op {
        let idle: Vec<String> = self
            .files
            .keys()
            .filter(|p| !self.is_busy(p))
            .cloned()
            .collect();
        let many = self.files.len() > TARGET_FILES;
        let few = self.files.len() < TARGET_FILES / 3;
        // Weights: upload, overwrite, move, copy, meta edit, delete; folder move, copy, delete.
        let weights: [u32; 9] = match (few, many) {
            (true, _) => [40, 3, 10, 10, 20, 2, 2, 2, 0],
            (_, true) => [8, 4, 12, 4, 25, 20, 2, 0, 2],
            _ => [22, 4, 12, 10, 25, 7, 2, 1, 1],
        };
        let mut roll = self.rng.random_range(0..weights.iter().sum::<u32>());
        let mut kind = 0;
        while roll >= weights[kind] {
            roll -= weights[kind];
            kind += 1;
        }
        let source = idle.choose(&mut self.rng).cloned();
        let op = match (kind, source) {
            (1, Some(path)) => {
                let (content, slow) = self.fresh_content();
                let before = self.files[&path].clone();
                Op::Overwrite {
                    path,
                    content,
                    slow,
                    before,
                }
            }
            (2, Some(from)) => Op::Move {
                to: self.fresh_path("mv"),
                before: self.files[&from].clone(),
                from,
            },
            (3, Some(from)) => Op::Copy {
                to: self.fresh_path("cp"),
                before: self.files[&from].clone(),
                from,
            },
            (4, Some(path)) => {
                let before = self.files[&path].clone();
                let edit = self.pick_edit(&before.fields);
                Op::Meta { path, edit, before }
            }
            (5, Some(path)) => Op::Delete {
                before: self.files[&path].clone(),
                path,
            },
            (6..=8, Some(_)) => {
                let limit = if kind == 6 {
                    usize::MAX
                } else {
                    MAX_FOLDER_FILES
                };
                let folders: Vec<_> = self
                    .idle_folders()
                    .into_iter()
                    .filter(|(_, files)| files.len() <= limit)
                    .collect();
                let Some((folder, before)) = folders.choose(&mut self.rng).cloned() else {
                    return self.pick_upload();
                };
                let to = format!("d{}", self.fresh_id());
                match kind {
                    6 => Op::MoveFolder {
                        from: folder,
                        to,
                        before,
                    },
                    7 => Op::CopyFolder {
                        from: folder,
                        to,
                        before,
                    },
                    _ => Op::DeleteFolder {
                        path: folder,
                        before,
                    },
                }
            }
            _ => return self.pick_upload(),
        };
        self.take(op)
    }

    /// A new upload, its path marked busy.
    fn pick_upload(&mut self) -> Op {
        let (content, slow) = self.fresh_content();
        let op = Op::Upload {
            path: self.fresh_path("up"),
            content,
            slow,
        };
        self.take(op)
    }

    /// Marks the paths and folders of an operation busy.
    fn take(&mut self, op: Op) -> Op {
        self.busy.extend(op.paths());
        self.busy_folders
            .extend(op.folders().into_iter().map(str::to_string));
        op
    }

    /// Frees the paths and folders of an operation that was answered.
    fn release(&mut self, op: &Op) {
        for p in op.paths() {
            self.busy.remove(&p);
        }
        for f in op.folders() {
            self.busy_folders.remove(f);
        }
    }

    /// Applies an operation the server acknowledged; `answer` is its body, if it was read.
    pub fn acknowledged(&mut self, op: &Op, answer: Option<&Value>) {
        self.release(op);
        let [_, done] = op.outcomes(answer);
        for (path, expect) in done {
            match expect {
                None => {
                    self.files.remove(&path);
                }
                Some(e) => {
                    let state = FileState {
                        content: e.content,
                        uuid: e.uuid,
                        fields: e.fields.into_iter().next().unwrap(),
                    };
                    self.files.insert(path, state);
                }
            }
        }
    }

    /// Frees the paths of an operation the server refused (the round fails anyway).
    pub fn refused(&mut self, op: &Op) {
        self.release(op);
    }

    /// Keeps an operation whose answer never came, to be settled after the restart.
    pub fn cut(&mut self, op: Op) {
        self.cut_off.push(op);
    }

    /// Compares the model with the files found on disk after a restart: each operation cut
    /// off must have left one of its two outcomes (which then becomes the model), every other
    /// file must be exactly as acknowledged, nothing else may be there, and no two files may
    /// share a uuid. Returns every discrepancy found.
    pub fn settle(&mut self, disk: &BTreeMap<String, FileState>) -> Result<Settled, Vec<String>> {
        let mut errors = Vec::new();
        let mut settled = Settled::default();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for op in std::mem::take(&mut self.cut_off) {
            seen.extend(op.paths());
            let outcomes = op.outcomes(None);
            let fits = |o: &Outcome| {
                o.iter().all(|(p, e)| match (e, disk.get(p)) {
                    (None, None) => true,
                    (Some(e), Some(f)) => e.matches(f),
                    _ => false,
                })
            };
            let Some(i) = outcomes.iter().position(fits) else {
                let found: Vec<_> = op
                    .paths()
                    .into_iter()
                    .map(|p| {
                        let f = disk.get(&p);
                        (p, f)
                    })
                    .collect();
                errors.push(format!(
                    "a {} cut off by the kill left neither its old nor its new state: {op:?}; \
                     found {found:?}",
                    op.kind()
                ));
                continue;
            };
            settled.0.entry(op.kind()).or_default()[i] += 1;
            for (p, _) in &outcomes[i] {
                match disk.get(p) {
                    Some(f) => self.files.insert(p.clone(), f.clone()),
                    None => self.files.remove(p),
                };
            }
        }
        for (path, want) in &mut self.files {
            if seen.contains(path) {
                continue;
            }
            match disk.get(path) {
                None => errors.push(format!(
                    "{path} was acknowledged but is gone (expected {want:?})"
                )),
                Some(f) if !Expect::exact(want).matches(f) => errors.push(format!(
                    "{path} is not as acknowledged: expected {want:?}, found {f:?}"
                )),
                Some(f) => want.uuid = f.uuid.clone(),
            }
        }
        for path in disk.keys().filter(|p| !self.files.contains_key(*p)) {
            if !seen.contains(path) {
                errors.push(format!("{path} is on disk but was never acknowledged"));
            }
        }
        let mut uuids: BTreeMap<&str, &str> = BTreeMap::new();
        for (path, f) in disk {
            if let Some(u) = &f.uuid {
                if let Some(other) = uuids.insert(u, path) {
                    errors.push(format!("{path} and {other} share the uuid {u}"));
                }
            }
        }
        self.busy.clear();
        self.busy_folders.clear();
        if errors.is_empty() {
            Ok(settled)
        } else {
            Err(errors)
        }
    }
}
