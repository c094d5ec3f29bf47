//! The TLS listener (rustls) that exposes the peer certificate to request handlers.
