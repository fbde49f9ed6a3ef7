//! Lossless nginx configuration engine: parse, query and edit upstreams byte-exactly.
//!
//! Pure: no Docker, no async. Files are reached through [`Fs`] so that the same
//! engine reads host files, bind-mounted files and files inside a container.
pub mod fs;
pub mod write;

pub use fs::{Fs, HostFs};
