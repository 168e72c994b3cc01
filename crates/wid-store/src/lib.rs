//! wid storage: repository traits and the embedded SQLite backend.
