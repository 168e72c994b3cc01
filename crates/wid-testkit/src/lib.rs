//! wid test kit: in-process server on port 0, temp data dir, fixtures.
