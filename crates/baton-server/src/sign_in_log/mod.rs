//! The sign-in log: every sign-in attempt and automatic sign-out, with time, username (as
//! typed, for failures), device, source address, result, a stable reason code, risk, and
//! whether the "Stay signed in?" prompt was shown and its answer.
//!
//! - [`entry`]: [`SignInEntry`] and its codes ([`SignInResult`], [`ReasonCode`],
//!   [`SignInHow`]).
//! - [`journal`]: durable storage ([`append`], [`append_to_batch`] + [`publish`]), queries
//!   newest first ([`list`] with a [`Filter`]) and retention ([`prune`]).
//! - [`csv`]: the CSV export ([`to_csv`]).
//!
//! Every appended entry is also sent through the webhook outbox as a `sign_in.logged` event.
//! Served by `GET /api/v1/sign-in-log` ([`crate::admin::sign_in_log`]). Not here: deciding
//! the outcome (the portal, [`crate::lockout`], [`crate::sign_in_risk`]).

pub mod counters;
pub mod csv;
pub mod entry;
pub mod journal;

pub use counters::SignInCounters;
pub use csv::{CSV_COLUMNS, to_csv};
pub use entry::{
    MAX_USERNAME_CHARS, ReasonCode, SignInEntry, SignInHow, SignInResult, UnknownCode,
};
pub use journal::{
    DAYS_COLLECTION, DEFAULT_LIST_LIMIT, ENTRIES_COLLECTION, Filter, MAX_LIST_LIMIT, append,
    append_to_batch, list, prune, publish,
};
