//! Lossless nginx configuration engine: parse, query and edit upstreams byte-exactly.
//!
//! Pure: no Docker, no async. Files are reached through [`Fs`] so that the same
//! engine reads host files, bind-mounted files and files inside a container.
pub mod error;
pub mod fs;
pub mod lexer;
pub mod lua;
pub mod tree;
pub mod write;

pub use error::{ConfError, Place};
pub use fs::{Fs, HostFs};
pub use tree::Doc;
