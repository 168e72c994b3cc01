-- wid schema version 3 (SQLite): the change log.
--
-- Every write to a record the in-memory indexes hold (identities and their credentials, clusters,
-- applications, role assignments, signing keys) appends a row here in the same transaction, so
-- replicas sharing a database can follow them. SQLite is opened by one process only; the log keeps
-- the backends alike (one conformance suite) and costs one row per management write.
CREATE TABLE changes (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Unix seconds; pruning drops old rows.
    at   INTEGER NOT NULL,
    -- `wid_store::Changed::encode`.
    kind TEXT    NOT NULL,
    key  TEXT    NOT NULL
);

-- The highest seq pruning removed: a follower behind it must resync from a snapshot.
CREATE TABLE changes_pruned (
    through INTEGER NOT NULL
);
INSERT INTO changes_pruned (through) VALUES (0);
