//! Lossless nginx configuration engine: parse, query and edit upstreams byte-exactly.
//!
//! Pure: no Docker, no async. Files are reached through [`Fs`] so that the same
//! engine reads host files, bind-mounted files and files inside a container.
mod crossplane;
mod edit;
mod error;
mod fs;
mod lexer;
mod lua;
mod pin;
mod set;
mod tree;
mod upstream;
mod write;

pub use crossplane::{Options as CrossplaneOptions, Payload as CrossplanePayload, payload};
pub use edit::{Edit, EditOptions};
pub use error::{ConfError, Place};
pub use fs::{Fs, HostFs, MemFs};
pub use pin::{NOWHERE, PinnedLine};
pub use set::{ConfigSet, FileChange};
pub use tree::Doc;
pub use upstream::{
    Address, AddressKind, Balancing, Context, Param, Server, ServerMode, Upstream, Zone,
};
pub use write::{write_changes, write_in_place};
