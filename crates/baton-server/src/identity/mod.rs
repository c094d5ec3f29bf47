//! Device identity: verifying `Mdm-Signature` CMS signatures and TLS client certificates.
