//! Persistence and indexing: atomic versioned JSON records ([`record`]), ids ([`id`]), the name
//! registrar shared by sandboxes and containers ([`registrar`]), and the in-memory index with
//! exact-then-prefix lookup ([`index`]); protobuf messages inside records ([`proto_b64`]).

pub mod id;
pub mod index;
pub mod proto_b64;
pub mod record;
pub mod registrar;

pub use index::{Index, LookupError};
pub use record::{
    is_removing, load_record, remove_record_dir, remove_unborn, sweep_removing, sweep_temp,
    write_atomic, write_record, write_record_unsynced, RecordError, Unsynced,
};
pub use registrar::{NameTaken, Registrar};
