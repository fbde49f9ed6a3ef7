//! Lossless nginx configuration engine: parse, query and edit upstreams byte-exactly.
//!
//! Pure: no Docker, no async. Files are reached through [`Fs`] so that the same
//! engine reads host files, bind-mounted files and files inside a container.
mod crossplane;
mod edit;
mod error;
mod fs;
mod host_file;
mod include;
mod lexer;
mod lua;
mod pin;
mod set;
mod tree;
mod upstream;
mod write;

pub use crossplane::{
    BuildOptions as CrossplaneBuildOptions, Directive as CrossplaneDirective,
    LexError as CrossplaneLexError, Options as CrossplaneOptions, Payload as CrossplanePayload,
    Status as CrossplaneStatus, Token as CrossplaneToken, build as crossplane_build,
    lex as crossplane_lex, payload,
};
pub use edit::{Edit, EditOptions};
pub use error::{ConfError, LINE_WINDOW, Place, visible};
#[cfg(test)]
pub(crate) use fs::make_fifo;
pub use fs::{
    Fs, HostFs, MAX_FILE_BYTES, MemFs, open_regular, read_bounded, read_host_file, read_regular,
    read_regular_text,
};
pub use host_file::{HostDir, HostFile, open_held};
pub use include::{
    Located, Lookup, MainChoice, MissingIncludes, PrefixFrom, UnreadInclude, locate,
};
pub use pin::{NOWHERE, PinnedLine};
pub use set::{ConfigSet, FileChange, LoadOptions, may_name_the_same_upstream};
pub use tree::Doc;
pub use tree::MAX_DEPTH;
pub use upstream::{
    Address, AddressKind, Balancing, Context, Param, Server, ServerMode, Upstream, Zone,
};
pub use write::{
    FileChanged, Recovery, WriteError, recover, write_changes, write_if_unchanged, write_in_place,
};
