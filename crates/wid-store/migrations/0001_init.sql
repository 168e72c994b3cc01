-- wid schema version 1 (SQLite).
--
-- The PostgreSQL backend keeps the same logical schema in its own migrations. Conventions:
--   * ids are lower-case hyphenated GUID text;
--   * names keep the casing they were created with; lookups go through `*_key` columns holding
--     `wid_core::model::name_key(name)` (ASCII lower-case), computed in Rust, never with SQL lower();
--   * key columns compare bytewise (SQLite's BINARY collation; PostgreSQL needs COLLATE "C"), which
--     is the order every list is returned in;
--   * times are Unix seconds, booleans 0/1, tags and lists JSON text;
--   * sealed blobs (signing keys, metadata) are opaque bytes; the store never sees plaintext secrets.
-- Children of a resource group do not cascade from it: the store deletes them explicitly (and
-- reports what it removed), so a group row can only go once it is empty. Credentials do cascade from
-- their identity.

CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE signing_keys (
    kid          TEXT    NOT NULL PRIMARY KEY,
    purpose      TEXT    NOT NULL,
    sealed_pkcs8 BLOB    NOT NULL,
    created      INTEGER NOT NULL,
    retired      INTEGER,
    expires      INTEGER
);

CREATE TABLE resource_groups (
    subscription TEXT    NOT NULL,
    name_key     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    location     TEXT    NOT NULL,
    tags         TEXT    NOT NULL,
    created      INTEGER NOT NULL,
    PRIMARY KEY (subscription, name_key)
);

CREATE TABLE identities (
    subscription   TEXT    NOT NULL,
    rg_key         TEXT    NOT NULL,
    name_key       TEXT    NOT NULL,
    resource_group TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    location       TEXT    NOT NULL,
    tags           TEXT    NOT NULL,
    tenant_id      TEXT    NOT NULL,
    -- A client id or principal id names exactly one identity: tokens and RBAC resolve through them.
    client_id      TEXT    NOT NULL UNIQUE,
    principal_id   TEXT    NOT NULL UNIQUE,
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    PRIMARY KEY (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key)
);

CREATE TABLE credentials (
    subscription         TEXT    NOT NULL,
    rg_key               TEXT    NOT NULL,
    identity_key         TEXT    NOT NULL,
    name_key             TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    issuer               TEXT    NOT NULL,
    subject              TEXT,
    expression           TEXT,
    expression_version   INTEGER,
    audiences            TEXT    NOT NULL,
    description          TEXT,
    created              INTEGER NOT NULL,
    updated              INTEGER NOT NULL,
    PRIMARY KEY (subscription, rg_key, identity_key, name_key),
    FOREIGN KEY (subscription, rg_key, identity_key)
        REFERENCES identities (subscription, rg_key, name_key) ON DELETE CASCADE,
    CHECK ((expression IS NULL) = (expression_version IS NULL))
);

-- Entra's rule "issuer and subject combination already exists for this managed identity", enforced
-- here too so two concurrent creates cannot both pass the service's check. NULL subjects (claims
-- matching expressions) are distinct, as the rule wants.
CREATE UNIQUE INDEX credentials_issuer_subject
    ON credentials (subscription, rg_key, identity_key, issuer, subject);

CREATE TABLE clusters (
    subscription      TEXT    NOT NULL,
    rg_key            TEXT    NOT NULL,
    name_key          TEXT    NOT NULL,
    resource_group    TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    location          TEXT    NOT NULL,
    tags              TEXT    NOT NULL,
    -- The cluster id is part of a hosted issuer's URL, so it names exactly one cluster.
    cluster_id        TEXT    NOT NULL UNIQUE,
    issuer_kind       TEXT    NOT NULL CHECK (issuer_kind IN ('hosted', 'external')),
    issuer_url        TEXT    NOT NULL,
    issuer_kid        TEXT,
    issuer_jwks       TEXT,
    workload_identity INTEGER NOT NULL CHECK (workload_identity IN (0, 1)),
    created           INTEGER NOT NULL,
    updated           INTEGER NOT NULL,
    PRIMARY KEY (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key),
    CHECK ((issuer_kind = 'hosted') = (issuer_kid IS NOT NULL)),
    CHECK (issuer_kind = 'external' OR issuer_jwks IS NULL)
);

CREATE TABLE apps (
    client_id    TEXT    NOT NULL PRIMARY KEY,
    principal_id TEXT    NOT NULL UNIQUE,
    display_name TEXT    NOT NULL,
    secret_hash  BLOB    NOT NULL,
    created      INTEGER NOT NULL
);

CREATE TABLE role_assignments (
    id                 TEXT    NOT NULL PRIMARY KEY,
    scope              TEXT    NOT NULL,
    -- wid_core::Scope::parse(scope).key(): lower-case, no trailing '/'.
    scope_key          TEXT    NOT NULL,
    role_definition_id TEXT    NOT NULL,
    principal_id       TEXT    NOT NULL,
    principal_type     TEXT    NOT NULL,
    description        TEXT,
    created            INTEGER NOT NULL,
    updated            INTEGER NOT NULL,
    created_by         TEXT,
    UNIQUE (principal_id, role_definition_id, scope_key)
);

CREATE INDEX role_assignments_scope ON role_assignments (scope_key);
