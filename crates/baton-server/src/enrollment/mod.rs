//! Enrollment: the built-in certificate authority and the SCEP server.
