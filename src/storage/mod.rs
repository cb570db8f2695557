//! Leaves that own the on-disk formats: paths and containment, atomic writes, meta YAML and
//! upload staging. They know nothing of HTTP, tokens or the index.

pub mod atomic;
pub mod meta;
pub mod paths;
pub mod staging;
