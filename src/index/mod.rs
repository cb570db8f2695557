//! The search index under `project/cache/index` (tantivy): every file's meta as one document.
//!
//! Derived data: it is rebuilt whenever it is missing, unreadable or of another schema
//! version, and it knows nothing of the filesystem tree, meta files or HTTP — paths are plain
//! relative strings. Writes are buffered in one writer and become visible at `commit`. One
//! process at a time owns an index: a lock file beside it says which, so an index in use is
//! never mistaken for a corrupt one and wiped.

mod query;
mod schema;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tantivy::collector::Count;
use tantivy::query::AllQuery;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use query::{Hit, SearchQuery, SearchResult, Sort, SortField};
use schema::Fields;

/// Searches remembered per index version: a site asks for the same listing again and again.
const CACHED_SEARCHES: usize = 256;
/// Memory the writer may buffer before it flushes a segment.
const WRITER_MEMORY: usize = 32 << 20;
const VERSION_FILE: &str = "flextype-schema-version";

/// What the index remembers of the file and meta versions it indexed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamp {
    pub filesize: u64,
    /// The file's mtime in Unix seconds with fraction.
    pub modified_on: f64,
    /// The meta file's mtime in Unix seconds with fraction.
    pub meta_modified: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Indexed {
    pub stamp: Stamp,
    pub hash: Option<String>,
}

pub struct DocInput<'a> {
    /// Relative media path, '/'-separated plain components; never empty.
    pub path: &'a str,
    pub meta: &'a serde_yaml::Mapping,
    pub stamp: Stamp,
    /// Whether only callers who may read protected files may find it.
    pub protected: bool,
}

#[derive(Debug)]
pub enum Opened {
    Existing,
    Created,
    Rebuilt { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{0}")]
    BadQuery(String),
    #[error("{0}")]
    BadSort(String),
    #[error("the search index is in use by another process (a running server?)")]
    Busy,
    #[error(transparent)]
    Tantivy(#[from] tantivy::TantivyError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A cheap handle: every clone shares one writer and one reader.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    fields: Fields,
    writer: Mutex<Writer>,
    reader: IndexReader,
    /// Results of recent searches against the current commit; emptied by every commit.
    cache: Mutex<Cache>,
    /// Whole orders of every file, per sort, for listings; emptied by every commit.
    listings: query::Listings,
    _lock: File,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    results: HashMap<String, Arc<SearchResult>>,
}

struct Writer {
    writer: IndexWriter<TantivyDocument>,
    dirty: bool,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it when missing and rebuilding it (empty) when it
    /// cannot be read or is of another schema version. `protection` identifies the
    /// protection globs the documents' `protected` flags were computed with: an index made
    /// under other globs is rebuilt too.
    pub fn open(dir: &Path, protection: &str) -> Result<(SearchIndex, Opened), IndexError> {
        std::fs::create_dir_all(dir)?;
        let lock = lock(dir)?;
        let (schema, fields) = schema::build();
        let version = version_text(protection);
        let (index, mut opened) = match open_existing(dir, &schema, &version) {
            Ok(Some(index)) => (index, Opened::Existing),
            Ok(None) => (create(dir, &schema, &version)?, Opened::Created),
            Err(reason) => {
                wipe(dir)?;
                (create(dir, &schema, &version)?, Opened::Rebuilt { reason })
            }
        };
        let (index, parts) = match Self::parts(&index) {
            Ok(parts) => (index, parts),
            // Meta that opens but segments that do not: start over.
            Err(e) if matches!(opened, Opened::Existing) => {
                drop(index);
                wipe(dir)?;
                opened = Opened::Rebuilt {
                    reason: format!("segments unreadable: {e}"),
                };
                let index = create(dir, &schema, &version)?;
                let parts = Self::parts(&index)?;
                (index, parts)
            }
            Err(e) => return Err(e),
        };
        Ok((Self::assemble(index, fields, parts, lock), opened))
    }

    fn parts(index: &Index) -> Result<(IndexWriter<TantivyDocument>, IndexReader), IndexError> {
        index
            .tokenizers()
            .register(schema::ANALYZER, schema::analyzer());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok((writer, reader))
    }

    fn assemble(
        index: Index,
        fields: Fields,
        (writer, reader): (IndexWriter<TantivyDocument>, IndexReader),
        lock: File,
    ) -> SearchIndex {
        SearchIndex {
            inner: Arc::new(Inner {
                index,
                fields,
                writer: Mutex::new(Writer {
                    writer,
                    dirty: false,
                }),
                reader,
                cache: Mutex::default(),
                listings: query::Listings::default(),
                _lock: lock,
            }),
        }
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.inner.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path_term(&self, path: &str) -> Term {
        Term::from_field_text(self.inner.fields.path, path)
    }

    /// Buffers an add-or-replace of the document for `doc.path`.
    pub fn upsert(&self, doc: &DocInput) -> Result<(), IndexError> {
        let document = schema::to_document(&self.inner.fields, doc);
        let mut w = self.writer();
        w.writer.delete_term(self.path_term(doc.path));
        w.writer.add_document(document)?;
        w.dirty = true;
        Ok(())
    }

    pub fn delete(&self, path: &str) -> Result<(), IndexError> {
        let term = self.path_term(path);
        let mut w = self.writer();
        w.writer.delete_term(term);
        w.dirty = true;
        Ok(())
    }

    /// Deletes every document at or below a folder ("" = everything).
    pub fn delete_tree(&self, folder: &str) -> Result<(), IndexError> {
        if folder.is_empty() {
            return self.clear();
        }
        let facet = schema::folder_facet(folder);
        let term = Term::from_facet(self.inner.fields.folder, &facet);
        let mut w = self.writer();
        // The folder's own files and everything below it (facets index their ancestors)...
        w.writer.delete_term(term);
        // ...and a file named like the folder, in case the path was a file.
        w.writer.delete_term(self.path_term(folder));
        w.dirty = true;
        Ok(())
    }

    pub fn clear(&self) -> Result<(), IndexError> {
        let mut w = self.writer();
        w.writer.delete_all_documents()?;
        w.dirty = true;
        Ok(())
    }

    /// Makes buffered writes searchable; cheap when there are none.
    pub fn commit(&self) -> Result<(), IndexError> {
        let mut w = self.writer();
        if !w.dirty {
            return Ok(());
        }
        w.writer.commit()?;
        w.dirty = false;
        drop(w);
        self.inner.reader.reload()?;
        self.inner.listings.clear();
        let mut cache = self.cache();
        cache.generation += 1;
        cache.results.clear();
        Ok(())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The page of matches; a search repeated before the next commit is answered from memory.
    pub fn search(&self, q: &SearchQuery) -> Result<Arc<SearchResult>, IndexError> {
        let key = format!("{q:?}");
        let generation = {
            let cache = self.cache();
            if let Some(hit) = cache.results.get(&key) {
                return Ok(hit.clone());
            }
            cache.generation
        };
        // The searcher is taken after the generation: a commit in between makes the result
        // newer than its generation, never older.
        let searcher = self.inner.reader.searcher();
        let result = Arc::new(query::run(
            &self.inner.index,
            &self.inner.fields,
            &searcher,
            &self.inner.listings,
            q,
        )?);
        let mut cache = self.cache();
        if cache.generation == generation {
            if cache.results.len() >= CACHED_SEARCHES {
                cache.results.clear();
            }
            cache.results.insert(key, result.clone());
        }
        Ok(result)
    }

    /// Every indexed path with the stamps and hash it was indexed with.
    pub fn snapshot(&self) -> Result<HashMap<String, Indexed>, IndexError> {
        let searcher = self.inner.reader.searcher();
        let mut out = HashMap::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let ff = segment.fast_fields();
            let (Some(paths), hashes) = (ff.str("path")?, ff.str("hash")?) else {
                continue;
            };
            let size = ff.u64("filesize")?;
            let modified = ff.f64("modified_on")?;
            let meta_modified = ff.f64("meta_modified")?;
            let (mut path, mut hash) = (String::new(), String::new());
            for doc in segment.doc_ids_alive() {
                let Some(ord) = paths.term_ords(doc).next() else {
                    continue;
                };
                path.clear();
                if !paths.ord_to_str(ord, &mut path)? {
                    continue;
                }
                let hash = match hashes.as_ref().and_then(|h| h.term_ords(doc).next()) {
                    Some(ord) => {
                        hash.clear();
                        let h = hashes.as_ref().map(|h| h.ord_to_str(ord, &mut hash));
                        matches!(h, Some(Ok(true))).then(|| hash.clone())
                    }
                    None => None,
                };
                let stamp = Stamp {
                    filesize: size.first(doc).unwrap_or(0),
                    modified_on: modified.first(doc).unwrap_or(f64::NAN),
                    meta_modified: meta_modified.first(doc).unwrap_or(f64::NAN),
                };
                out.insert(path.clone(), Indexed { stamp, hash });
            }
        }
        Ok(out)
    }

    /// Committed, searchable documents.
    pub fn count(&self) -> u64 {
        self.inner
            .reader
            .searcher()
            .search(&AllQuery, &Count)
            .map_or(0, |n| n as u64)
    }
}

/// Takes the index's lock file (beside the index, so wiping the index keeps it).
fn lock(dir: &Path) -> Result<File, IndexError> {
    let path = lock_path(dir);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(IndexError::Busy),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

fn lock_path(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "index".into());
    dir.with_file_name(format!(".{name}.lock"))
}

/// The index in `dir` if there is one we can use; `Err` says why an existing one cannot be.
/// What the version file holds: the schema version, and the protection globs' fingerprint
/// when there are globs.
fn version_text(protection: &str) -> String {
    if protection.is_empty() {
        schema::SCHEMA_VERSION.to_string()
    } else {
        format!("{} protected:{protection}", schema::SCHEMA_VERSION)
    }
}

fn open_existing(
    dir: &Path,
    schema: &tantivy::schema::Schema,
    expected: &str,
) -> Result<Option<Index>, String> {
    let has_meta = dir.join("meta.json").exists();
    let version = std::fs::read_to_string(dir.join(VERSION_FILE)).ok();
    if !has_meta {
        return if dir.read_dir().map_or(true, |mut d| d.next().is_none()) {
            Ok(None)
        } else {
            Err("index files without meta.json".into())
        };
    }
    if version.as_deref().map(str::trim) != Some(expected) {
        return Err(format!(
            "version '{}' found, '{expected}' expected",
            version.as_deref().map_or("none", str::trim),
        ));
    }
    let index = Index::open_in_dir(dir).map_err(|e| format!("cannot open: {e}"))?;
    if index.schema() != *schema {
        return Err("schema differs".into());
    }
    Ok(Some(index))
}

fn create(
    dir: &Path,
    schema: &tantivy::schema::Schema,
    version: &str,
) -> Result<Index, IndexError> {
    let index = Index::create_in_dir(dir, schema.clone())?;
    std::fs::write(dir.join(VERSION_FILE), version)?;
    Ok(index)
}

/// Removes everything in the index folder (the lock file lives beside it).
fn wipe(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Mapping;

    fn meta(yaml: &str) -> Mapping {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn stamp(size: u64) -> Stamp {
        Stamp {
            filesize: size,
            modified_on: 1.5,
            meta_modified: 2.25,
        }
    }

    fn put(ix: &SearchIndex, path: &str, yaml: &str, size: u64) {
        ix.upsert(&DocInput {
            path,
            meta: &meta(yaml),
            stamp: stamp(size),
            protected: yaml.contains("protected: true"),
        })
        .unwrap();
    }

    fn find(ix: &SearchIndex, q: SearchQuery) -> Vec<String> {
        let found = ix.search(&SearchQuery { limit: 100, ..q }).unwrap();
        found.hits.iter().map(|h| h.path.clone()).collect()
    }

    fn text(ix: &SearchIndex, q: &str) -> Vec<String> {
        let mut found = find(
            ix,
            SearchQuery {
                q: q.into(),
                ..Default::default()
            },
        );
        found.sort();
        found
    }

    fn sample() -> (tempfile::TempDir, SearchIndex) {
        let dir = tempfile::tempdir().unwrap();
        let (ix, opened) = SearchIndex::open(&dir.path().join("index"), "").unwrap();
        assert!(matches!(opened, Opened::Created));
        put(&ix, "movies/sg-1/cover.png", "title: Cover\ntype: image/png\nuploaded_on: 30\ntags: [Sci-Fi, cover]\nexif: {Width: 40, Height: 30, Model: EOS 5D}\nhash: aaa\n", 300);
        put(&ix, "movies/sg-1/s5/poster.jpg", "title: Poster\ntype: image/jpeg\nuploaded_on: 20\nexif: {Width: 20, Height: 60}\ncredits: {writer: Jane Doe, notes: [Été, x]}\n", 200);
        put(
            &ix,
            "movies2/notes.txt",
            "title: Notes\ntype: text/plain\nuploaded_on: 10\ntags: 'draft, Text'\n",
            100,
        );
        put(
            &ix,
            "readme.md",
            "title: 42\ntype: text/markdown\nuploaded_on: 40\ntags: {weird: map}\n",
            50,
        );
        ix.commit().unwrap();
        (dir, ix)
    }

    #[test]
    fn text_is_found_in_titles_names_nested_fields_and_exif() {
        let (_d, ix) = sample();
        assert_eq!(text(&ix, "cover"), ["movies/sg-1/cover.png"]);
        assert_eq!(text(&ix, "jane"), ["movies/sg-1/s5/poster.jpg"]);
        assert_eq!(
            text(&ix, "ete"),
            ["movies/sg-1/s5/poster.jpg"],
            "accents folded"
        );
        assert_eq!(text(&ix, "eos"), ["movies/sg-1/cover.png"]);
        assert_eq!(text(&ix, "filename:jpg"), ["movies/sg-1/s5/poster.jpg"]);
        assert_eq!(text(&ix, "42"), ["readme.md"]);
        assert_eq!(text(&ix, "cover -notes"), ["movies/sg-1/cover.png"]);
        assert_eq!(
            text(&ix, "cover notes"),
            Vec::<String>::new(),
            "all words must match"
        );
        assert_eq!(text(&ix, "cover OR notes").len(), 2);
        assert_eq!(text(&ix, "*").len(), 4);
        assert_eq!(
            text(&ix, "-cover").len(),
            3,
            "a purely negative query excludes"
        );
        for runs_badly in ["title:*", "nosuchfield:x"] {
            assert!(
                matches!(
                    ix.search(&SearchQuery {
                        q: runs_badly.into(),
                        limit: 5,
                        ..Default::default()
                    }),
                    Err(IndexError::BadQuery(_))
                ),
                "{runs_badly}"
            );
        }
        let far = ix
            .search(&SearchQuery {
                q: "*".into(),
                limit: 1000,
                offset: usize::MAX,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            (far.hits.len(), far.total),
            (0, 4),
            "a huge offset is an empty page"
        );
        assert!(matches!(
            ix.search(&SearchQuery {
                q: "title:(".into(),
                limit: 1,
                ..Default::default()
            }),
            Err(IndexError::BadQuery(_))
        ));
    }

    #[test]
    fn public_only_searches_leave_protected_files_out_of_hits_and_totals() {
        let (_d, ix) = sample();
        put(
            &ix,
            "secret/plan.txt",
            "title: Cover plan\nprotected: true\n",
            10,
        );
        ix.commit().unwrap();
        let public = |q: &str| SearchQuery {
            q: q.into(),
            limit: 100,
            public_only: true,
            ..Default::default()
        };
        assert_eq!(text(&ix, "cover").len(), 2);
        assert_eq!(find(&ix, public("cover")), ["movies/sg-1/cover.png"]);
        let all = ix.search(&public("")).unwrap();
        assert_eq!((all.hits.len(), all.total), (4, 4));
        assert!(all.hits.iter().all(|h| h.path != "secret/plan.txt"));
        assert_eq!(ix.search(&public("-cover")).unwrap().total, 3);
    }

    #[test]
    fn filters_narrow_and_total_counts_every_match() {
        let (_d, ix) = sample();
        let q = |f: fn(&mut SearchQuery)| {
            let mut q = SearchQuery {
                sort: Some("filename".parse().unwrap()),
                ..Default::default()
            };
            f(&mut q);
            find(&ix, q)
        };
        assert_eq!(
            q(|q| q.folder = Some("movies".into())),
            ["movies/sg-1/cover.png", "movies/sg-1/s5/poster.jpg"],
            "sub-folders included, movies2 not"
        );
        assert_eq!(q(|q| q.mime = Some("image/*".into())).len(), 2);
        assert_eq!(
            q(|q| q.mime = Some("Text/Plain".into())),
            ["movies2/notes.txt"]
        );
        assert_eq!(q(|q| q.ext = Some("PNG".into())), ["movies/sg-1/cover.png"]);
        assert_eq!(
            q(|q| q.tag = Some("SCI-FI".into())),
            ["movies/sg-1/cover.png"]
        );
        assert_eq!(q(|q| q.tag = Some("text".into())), ["movies2/notes.txt"]);
        assert_eq!(
            q(|q| (q.min_size, q.max_size) = (Some(100), Some(200))),
            ["movies2/notes.txt", "movies/sg-1/s5/poster.jpg"]
        );
        assert_eq!(q(|q| (q.from, q.to) = (Some(20), Some(30))).len(), 2);
        assert_eq!(q(|q| (q.from, q.to) = (Some(30), Some(20))).len(), 0);
        let page = ix
            .search(&SearchQuery {
                limit: 1,
                offset: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.total, 4);
        assert_eq!(
            page.hits[0].path, "movies/sg-1/cover.png",
            "newest first by default"
        );
        let meta: serde_json::Value = serde_json::from_str(&page.hits[0].meta_json).unwrap();
        assert_eq!(meta["title"], "Cover");
        assert_eq!(meta["exif"]["Width"], 40);
        assert_eq!(page.hits[0].hash.as_deref(), Some("aaa"));
    }

    #[test]
    fn sorts_by_each_field_both_ways() {
        let (_d, ix) = sample();
        let sorted = |s: &str| {
            find(
                &ix,
                SearchQuery {
                    sort: Some(s.parse().unwrap()),
                    ..Default::default()
                },
            )
        };
        assert_eq!(sorted("filesize:desc")[0], "movies/sg-1/cover.png");
        assert_eq!(sorted("filesize:asc")[0], "readme.md");
        assert_eq!(sorted("uploaded_on:asc")[0], "movies2/notes.txt");
        assert_eq!(sorted("height:desc")[0], "movies/sg-1/s5/poster.jpg");
        assert_eq!(sorted("width:desc")[0], "movies/sg-1/cover.png");
        assert_eq!(sorted("filename:desc")[0], "readme.md");
        assert!(matches!(
            "size:up".parse::<Sort>(),
            Err(IndexError::BadSort(_))
        ));
        assert!(matches!(
            "filesize:up".parse::<Sort>(),
            Err(IndexError::BadSort(_))
        ));
    }

    #[test]
    fn upserts_replace_and_deletes_remove_by_path_and_folder() {
        let (_d, ix) = sample();
        assert_eq!(text(&ix, "*").len(), 4, "remembered until the next commit");
        put(&ix, "readme.md", "title: Read me\n", 51);
        ix.delete_tree("movies").unwrap();
        ix.commit().unwrap();
        assert_eq!(text(&ix, "*"), ["movies2/notes.txt", "readme.md"]);
        assert_eq!(text(&ix, "read"), ["readme.md"]);
        ix.delete("readme.md").unwrap();
        ix.commit().unwrap();
        assert_eq!(ix.count(), 1);
    }

    #[test]
    fn snapshot_returns_stamps_and_hashes_and_reopening_keeps_documents() {
        let (dir, ix) = sample();
        let snap = ix.snapshot().unwrap();
        assert_eq!(snap.len(), 4);
        let cover = &snap["movies/sg-1/cover.png"];
        assert_eq!(cover.stamp, stamp(300));
        assert_eq!(cover.hash.as_deref(), Some("aaa"));
        assert_eq!(snap["readme.md"].hash, None);
        assert!(matches!(
            SearchIndex::open(&dir.path().join("index"), ""),
            Err(IndexError::Busy)
        ));
        drop(ix);
        let (ix, opened) = SearchIndex::open(&dir.path().join("index"), "").unwrap();
        assert!(matches!(opened, Opened::Existing));
        assert_eq!(ix.count(), 4);
    }

    #[test]
    fn damaged_or_old_indexes_are_rebuilt_empty() {
        let (dir, ix) = sample();
        drop(ix);
        let index = dir.path().join("index");
        std::fs::write(index.join(VERSION_FILE), "0").unwrap();
        let (ix, opened) = SearchIndex::open(&index, "").unwrap();
        assert!(matches!(opened, Opened::Rebuilt { .. }), "{opened:?}");
        assert_eq!(ix.count(), 0);
        put(&ix, "a.txt", "title: A\n", 1);
        ix.commit().unwrap();
        drop(ix);
        std::fs::write(index.join("meta.json"), b"{ not json").unwrap();
        let (ix, opened) = SearchIndex::open(&index, "").unwrap();
        assert!(matches!(opened, Opened::Rebuilt { .. }), "{opened:?}");
        assert_eq!(ix.count(), 0);
    }
}
