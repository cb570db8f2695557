//! Thumbnails (`?thumb=`): the grammar (`spec`), making one (`generate`) and the disk cache
//! (`cache`).

pub mod cache;
pub mod generate;
pub mod spec;

pub use spec::ThumbSpec;
