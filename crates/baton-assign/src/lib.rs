//! Baton assignment engine (being built: see issue 8).
