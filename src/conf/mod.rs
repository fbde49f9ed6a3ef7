//! Lossless nginx configuration engine: parse, query and edit upstreams byte-exactly.
//!
//! Pure: no Docker, no async. Files are reached through [`Fs`] so that the same
//! engine reads host files, bind-mounted files and files inside a container.
pub mod crossplane;
pub mod edit;
pub mod error;
pub mod fs;
pub mod lexer;
pub mod lua;
pub mod set;
pub mod tree;
pub mod upstream;
pub mod write;

pub use edit::{Edit, EditOptions};
pub use error::{ConfError, Place};
pub use fs::{Fs, HostFs};
pub use set::{ConfigSet, FileChange};
pub use tree::Doc;
pub use upstream::{AddressKind, Balancing, Context, Param, Server, Upstream, Zone};
