//! Persistence and indexing: atomic versioned JSON records ([`record`]), ids ([`id`]), the name
//! registrar shared by sandboxes and containers ([`registrar`]), and the in-memory index with
//! exact-then-prefix lookup ([`index`]).

pub mod id;
pub mod index;
pub mod record;
pub mod registrar;

pub use index::{Index, LookupError};
pub use record::{load_record, write_atomic, write_record, RecordError};
pub use registrar::{NameTaken, Registrar};
