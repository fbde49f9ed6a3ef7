//! The use cases: one public function per command that changes or reads the
//! live system — deploy, resume, rollback, status, history, and
//! `edit_server` (drain, undrain, weight, add, remove). Each takes a
//! [`Session`] (but `edit_file`, the offline `conf` edits), reports through an [`Observer`](crate::exec::Observer)
//! and returns typed results; none prints. The glue between the nginx and
//! backend wings (the world), `plan` (what to do) and `exec` (doing it).
mod close;
mod deploy;
mod desired;
mod edit;
mod file_edit;
mod leftovers;
mod projects;
mod recover;
mod replicas;
mod run;
mod session;
mod state_location;
mod status;
mod world;

pub use crate::backends::{ComposeFlags, ComposeOptions, ComposeOptionsError, NotOurs};
pub use crate::docker::is_unreachable as daemon_unreachable;
pub use deploy::{DeployRequest, Mode, deploy};
pub use edit::{EditRequest, edit_server};
pub use file_edit::{FileEditRequest, edit_file};
pub use recover::{ResumeRequest, RollbackRequest, resume, rollback};
pub use run::{Ended, Planned};
pub use session::{Session, SessionOptions};
pub use status::{HistoryEntry, StatusReport, history, status};
pub use world::ProbeKind;
