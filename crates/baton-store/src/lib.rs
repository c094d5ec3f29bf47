//! Baton storage (being built: see issue 3).
