//! Size and nesting limits applied to every plist this crate reads.
//!
//! The limits are parameters, not constants, so the server can tighten them per endpoint
//! (check-in and command reports use [`Limits::default`]; a profile upload may allow more bytes).

/// Default bound on a request body: 4 MiB. Real check-in messages are under 4 KiB and the largest
/// command reports (InstalledApplicationList, CertificateList) stay well under 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Default bound on `<dict>`/`<array>` nesting. Apple's deepest documented shapes (Settings,
/// SecurityInfo) nest six levels; 32 leaves room without letting a hostile body recurse.
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// Default bound on the number of XML elements (values, keys and collections) in one plist.
pub const DEFAULT_MAX_ELEMENTS: usize = 500_000;

/// Bounds on untrusted plist input. Any violation is a typed [`PlistError`](crate::PlistError),
/// checked before the bytes reach the `plist` parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_body_bytes: usize,
    /// Deepest accepted `<dict>`/`<array>` nesting (the top-level dictionary is depth 1).
    pub max_depth: usize,
    /// Most XML elements accepted in one document.
    pub max_elements: usize,
}

impl Limits {
    /// Limits with the given body size and nesting depth, and the default element count.
    pub const fn new(max_body_bytes: usize, max_depth: usize) -> Self {
        Self {
            max_body_bytes,
            max_depth,
            max_elements: DEFAULT_MAX_ELEMENTS,
        }
    }

    /// The same limits with another body size bound.
    #[must_use]
    pub const fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// The same limits with another nesting bound.
    #[must_use]
    pub const fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// The same limits with another element-count bound.
    #[must_use]
    pub const fn with_max_elements(mut self, max_elements: usize) -> Self {
        self.max_elements = max_elements;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DEPTH)
    }
}
