//! Search requests against the index: the text query, the filters, the order and the page.

use std::fmt::Debug;
use std::ops::Bound;

use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue, SortByString};
use tantivy::collector::{Count, SortKeyComputer, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, EmptyQuery, Occur, Query, QueryParser,
    QueryParserError, RangeQuery, TermQuery,
};
use tantivy::schema::Value as _;
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, Index, Order, Searcher, TantivyDocument, TantivyError, Term};

use super::schema::{folder_facet, Fields};
use super::IndexError;

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// tantivy query syntax; "" or "*" matches every document.
    pub q: String,
    /// "" is the root; matches the folder and all its sub-folders.
    pub folder: Option<String>,
    /// Exact ("image/png") or a whole major type ("image/*").
    pub mime: Option<String>,
    /// Case-insensitive, without the dot.
    pub ext: Option<String>,
    /// Exact tag, case-insensitive.
    pub tag: Option<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// `uploaded_on` bounds, inclusive, Unix seconds.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub sort: Option<Sort>,
    pub limit: usize,
    pub offset: usize,
    /// Leave protected files out (for callers who may not read them).
    pub public_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    UploadedOn,
    ModifiedOn,
    Filesize,
    Width,
    Height,
    Filename,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

const SORT_FIELDS: &str = "uploaded_on, modified_on, filesize, width, height, filename";

impl SearchQuery {
    /// Whether the text part asks for every document ("" or "*").
    fn matches_all_text(&self) -> bool {
        matches!(self.q.trim(), "" | "*")
    }
}

impl SortField {
    /// The fast-field column the index sorts by.
    fn column(self) -> &'static str {
        match self {
            SortField::UploadedOn => "uploaded_on",
            SortField::ModifiedOn => "modified_on",
            SortField::Filesize => "filesize",
            SortField::Width => "width",
            SortField::Height => "height",
            SortField::Filename => "filename_sort",
        }
    }
}

impl std::str::FromStr for Sort {
    type Err = IndexError;

    /// `field`, `field:asc` or `field:desc`.
    fn from_str(s: &str) -> Result<Sort, IndexError> {
        let (name, dir) = s.split_once(':').unwrap_or((s, "asc"));
        let field = match name.trim() {
            "uploaded_on" => SortField::UploadedOn,
            "modified_on" => SortField::ModifiedOn,
            "filesize" => SortField::Filesize,
            "width" => SortField::Width,
            "height" => SortField::Height,
            "filename" => SortField::Filename,
            other => {
                return Err(IndexError::BadSort(format!(
                    "Cannot sort by '{other}'; sort by one of: {SORT_FIELDS}"
                )))
            }
        };
        let descending = match dir.trim() {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(IndexError::BadSort(format!(
                    "Sort direction '{other}' is neither 'asc' nor 'desc'"
                )))
            }
        };
        Ok(Sort { field, descending })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    /// Every match, whatever the page.
    pub total: u64,
}

/// One match: its path, its content hash and the meta it was indexed with, as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub path: String,
    pub hash: Option<String>,
    pub meta_json: String,
}

pub(super) fn run(
    index: &Index,
    f: &Fields,
    searcher: &Searcher,
    listings: &Listings,
    q: &SearchQuery,
) -> Result<SearchResult, IndexError> {
    let query = build(index, f, q)?;
    if q.limit == 0 {
        let total = searcher.search(&query, &Count)? as u64;
        return Ok(SearchResult {
            hits: vec![],
            total,
        });
    }
    // tantivy reserves room for twice the page end in each segment: never ask past the last
    // document, whatever offset a client sends.
    let docs = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
    let end = q.offset.saturating_add(q.limit).min(docs);
    if q.offset >= end {
        let total = searcher.search(&query, &Count)? as u64;
        return Ok(SearchResult {
            hits: vec![],
            total,
        });
    }
    if is_listing(q) {
        // Every file in some order: the whole order is kept until the next commit, so any
        // page of it is a slice.
        let all = listings.order(searcher.generation().generation_id(), q.sort, || {
            ordered(searcher, &query, TopDocs::with_limit(docs.max(1)), q).map(|(_, h)| h)
        })?;
        let range = q.offset.min(all.len())..end.min(all.len());
        return Ok(SearchResult {
            hits: hits_at(f, searcher, &all[range])?,
            total: all.len() as u64,
        });
    }
    let page = TopDocs::with_limit(end - q.offset).and_offset(q.offset);
    let (total, addrs) = ordered(searcher, &query, page, q)?;
    Ok(SearchResult {
        hits: hits_at(f, searcher, &addrs)?,
        total: total as u64,
    })
}

/// The matches in the order asked for (ties keep the index's own order, which is stable while
/// the index does not change), with the number of all matches.
fn ordered(
    searcher: &Searcher,
    query: &dyn Query,
    page: TopDocs,
    q: &SearchQuery,
) -> Result<(usize, Vec<DocAddress>), IndexError> {
    let order = |desc: bool| if desc { Order::Desc } else { Order::Asc };
    // Ties keep the index's own order, which is stable while the index does not change.
    Ok(match q.sort {
        // Without text every score is equal: straight to newest first.
        None if q.matches_all_text() => top(
            searcher,
            query,
            page,
            (
                SortByStaticFastValue::<i64>::for_field("uploaded_on"),
                Order::Desc,
            ),
        )?,
        // Relevance, then newest first.
        None => top(
            searcher,
            query,
            page,
            (
                (SortBySimilarityScore, Order::Desc),
                (
                    SortByStaticFastValue::<i64>::for_field("uploaded_on"),
                    Order::Desc,
                ),
            ),
        )?,
        Some(Sort { field, descending }) => {
            let (o, column) = (order(descending), field.column());
            match field {
                SortField::UploadedOn => top(
                    searcher,
                    query,
                    page,
                    (SortByStaticFastValue::<i64>::for_field(column), o),
                )?,
                SortField::ModifiedOn => top(
                    searcher,
                    query,
                    page,
                    (SortByStaticFastValue::<f64>::for_field(column), o),
                )?,
                SortField::Filesize | SortField::Width | SortField::Height => top(
                    searcher,
                    query,
                    page,
                    (SortByStaticFastValue::<u64>::for_field(column), o),
                )?,
                SortField::Filename => {
                    top(searcher, query, page, (SortByString::for_field(column), o))?
                }
            }
        }
    })
}

/// The path and stored meta of each hit.
fn hits_at(f: &Fields, searcher: &Searcher, addrs: &[DocAddress]) -> Result<Vec<Hit>, IndexError> {
    let mut found = Vec::with_capacity(addrs.len());
    let mut path = String::new();
    for &addr in addrs {
        let segment = searcher.segment_reader(addr.segment_ord);
        let Some(column) = segment.fast_fields().str("path")? else {
            continue;
        };
        let Some(ord) = column.term_ords(addr.doc_id).next() else {
            continue;
        };
        path.clear();
        if !column.ord_to_str(ord, &mut path)? {
            continue;
        }
        let doc: TantivyDocument = searcher.doc(addr)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        found.push(Hit {
            path: path.clone(),
            hash: text(f.hash),
            meta_json: text(f.meta).unwrap_or_else(|| "{}".into()),
        });
    }
    Ok(found)
}

/// A match-all query without filters: a listing of every file.
fn is_listing(q: &SearchQuery) -> bool {
    !q.public_only
        && q.matches_all_text()
        && q.folder.as_deref().is_none_or(str::is_empty)
        && q.mime.is_none()
        && q.ext.is_none()
        && q.tag.is_none()
        && q.min_size.is_none()
        && q.max_size.is_none()
        && q.from.is_none()
        && q.to.is_none()
}

type ListingOrder = std::sync::Arc<Vec<DocAddress>>;

/// Whole listing orders by sort, each tied to the searcher generation it was computed with:
/// document addresses mean nothing in another generation. One request computes an order;
/// the others asking for it at the same time wait for that one instead of repeating it.
#[derive(Default)]
pub(super) struct Listings {
    orders: std::sync::Mutex<Vec<(u64, Option<Sort>, Slot)>>,
}

type Slot = std::sync::Arc<std::sync::OnceLock<Option<ListingOrder>>>;

impl Listings {
    fn order(
        &self,
        generation: u64,
        sort: Option<Sort>,
        compute: impl Fn() -> Result<Vec<DocAddress>, IndexError>,
    ) -> Result<ListingOrder, IndexError> {
        let slot: Slot = {
            let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
            match orders
                .iter()
                .find(|(g, s, _)| *g == generation && *s == sort)
            {
                Some((_, _, slot)) => slot.clone(),
                None => {
                    orders.retain(|(g, _, _)| *g >= generation);
                    let slot = Slot::default();
                    orders.push((generation, sort, slot.clone()));
                    slot
                }
            }
        };
        match slot.get_or_init(|| compute().ok().map(std::sync::Arc::new)) {
            Some(order) => Ok(order.clone()),
            // It failed for whoever computed it: try once more to report the error.
            None => compute().map(std::sync::Arc::new),
        }
    }

    /// Forgets every order: called when the reader moves to a new commit.
    pub(super) fn clear(&self) {
        self.orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The number of matches and the page of hits in the order `key` gives, in one pass.
fn top<K>(
    searcher: &Searcher,
    query: &dyn Query,
    page: TopDocs,
    key: K,
) -> Result<(usize, Vec<DocAddress>), IndexError>
where
    K: SortKeyComputer + Send + Sync + 'static,
    K::SortKey: 'static + Clone + Send + Sync + Debug,
{
    let (total, hits) = searcher
        .search(query, &(Count, page.order_by(key)))
        .map_err(unrunnable)?;
    Ok((total, hits.into_iter().map(|(_, addr)| addr).collect()))
}

/// The text query with every filter as a required clause that does not change the score.
fn build(index: &Index, f: &Fields, q: &SearchQuery) -> Result<Box<dyn Query>, IndexError> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if !q.matches_all_text() {
        let text = q.q.trim();
        let mut parser = QueryParser::for_index(
            index,
            vec![f.title, f.description, f.tags, f.filename, f.body],
        );
        parser.set_conjunction_by_default();
        let parsed = match parser.parse_query(text) {
            // "-draft" means everything but drafts; tantivy wants that spelled out.
            Err(QueryParserError::AllButQueryForbidden) => parser.parse_query(&format!("* {text}")),
            parsed => parsed,
        }
        .map_err(|e| IndexError::BadQuery(format!("Query does not parse: {e}")))?;
        clauses.push((Occur::Must, parsed));
    }
    let filter = |clauses: &mut Vec<(Occur, Box<dyn Query>)>, query: Box<dyn Query>| {
        clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0))));
    };
    if let Some(folder) = q.folder.as_deref().filter(|f| !f.is_empty()) {
        let term = Term::from_facet(f.folder, &folder_facet(folder));
        filter(&mut clauses, term_query(term));
    }
    if let Some(mime) = &q.mime {
        let mime = mime.trim().to_lowercase();
        let query = match mime.strip_suffix("/*") {
            Some(major) => term_query(Term::from_field_text(f.mime_major, major)),
            None => term_query(Term::from_field_text(f.mime, &mime)),
        };
        filter(&mut clauses, query);
    }
    if let Some(ext) = &q.ext {
        let ext = ext.trim().trim_start_matches('.').to_lowercase();
        filter(&mut clauses, term_query(Term::from_field_text(f.ext, &ext)));
    }
    if let Some(tag) = &q.tag {
        let tag = tag.trim().to_lowercase();
        filter(&mut clauses, term_query(Term::from_field_text(f.tag, &tag)));
    }
    if q.min_size.is_some() || q.max_size.is_some() {
        filter(&mut clauses, u64_range(f.filesize, q.min_size, q.max_size));
    }
    if q.from.is_some() || q.to.is_some() {
        filter(&mut clauses, i64_range(f.uploaded_on, q.from, q.to));
    }
    if q.public_only {
        if clauses.is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        clauses.push((
            Occur::MustNot,
            term_query(Term::from_field_text(f.protected, "1")),
        ));
    }
    if matches!((q.min_size, q.max_size), (Some(a), Some(b)) if a > b)
        || matches!((q.from, q.to), (Some(a), Some(b)) if a > b)
    {
        return Ok(Box::new(EmptyQuery));
    }
    Ok(match clauses.len() {
        0 => Box::new(AllQuery),
        _ => Box::new(BooleanQuery::new(clauses)),
    })
}

/// Some queries parse but fail once run (`title:*` asks whether a non-fast field exists);
/// our own filters and sorts are fixed and tested, so such errors are the client's.
fn unrunnable(error: TantivyError) -> IndexError {
    match error {
        TantivyError::SchemaError(msg) | TantivyError::InvalidArgument(msg) => {
            IndexError::BadQuery(format!("Query cannot run: {msg}"))
        }
        other => other.into(),
    }
}

fn term_query(term: Term) -> Box<dyn Query> {
    Box::new(TermQuery::new(term, IndexRecordOption::Basic))
}

fn u64_range(field: Field, min: Option<u64>, max: Option<u64>) -> Box<dyn Query> {
    let bound = |v: Option<u64>| {
        v.map_or(Bound::Unbounded, |v| {
            Bound::Included(Term::from_field_u64(field, v))
        })
    };
    Box::new(RangeQuery::new(bound(min), bound(max)))
}

fn i64_range(field: Field, min: Option<i64>, max: Option<i64>) -> Box<dyn Query> {
    let bound = |v: Option<i64>| {
        v.map_or(Bound::Unbounded, |v| {
            Bound::Included(Term::from_field_i64(field, v))
        })
    };
    Box::new(RangeQuery::new(bound(min), bound(max)))
}
