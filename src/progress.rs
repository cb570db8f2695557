//! How long-running work (verify, index rebuild) tells the command line how far it got.

/// Counts in whatever unit the work reports (files or bytes), announced by `begin`.
pub trait Progress: Send + Sync {
    fn begin(&self, total: u64);
    fn advance(&self, done: u64);
    fn finish(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
