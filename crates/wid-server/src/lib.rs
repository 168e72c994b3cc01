//! wid HTTP server: router, extractors, protocol error mapping, TLS, data-dir bootstrap.
