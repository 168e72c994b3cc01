-- wid schema version 1 (PostgreSQL): the logical schema of SQLite's migrations 0001-0003 in one step.
--
-- Conventions as in the SQLite schema (keys computed in Rust, Unix seconds, JSON tags as text), plus:
--   * every text column is COLLATE "C", so comparisons and ORDER BY are bytewise like SQLite's
--     BINARY collation whatever the database's default collation is;
--   * ids are lower-case hyphenated GUID text (as in SQLite), times BIGINT, blobs BYTEA, flags BOOLEAN;
--   * `secrets.seq` and `changes.seq` are identity columns: never reused, so the highest is the latest.
-- Children of a resource group do not cascade from it: the store deletes them explicitly (and
-- reports what it removed), so a group row can only go once it is empty. Credentials cascade from
-- their identity, secret versions and deleted-secret rows from their vault.

-- The schema version: one row per migration applied (the version is the highest).
CREATE TABLE wid_schema (
    version BIGINT NOT NULL PRIMARY KEY,
    applied BIGINT NOT NULL
);

CREATE TABLE meta (
    key   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE signing_keys (
    kid          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    purpose      TEXT COLLATE "C" NOT NULL,
    sealed_pkcs8 BYTEA  NOT NULL,
    created      BIGINT NOT NULL,
    retired      BIGINT,
    expires      BIGINT
);

CREATE TABLE resource_groups (
    subscription TEXT COLLATE "C" NOT NULL,
    name_key     TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    location     TEXT COLLATE "C" NOT NULL,
    tags         TEXT COLLATE "C" NOT NULL,
    created      BIGINT NOT NULL,
    PRIMARY KEY (subscription, name_key)
);

CREATE TABLE identities (
    subscription   TEXT COLLATE "C" NOT NULL,
    rg_key         TEXT COLLATE "C" NOT NULL,
    name_key       TEXT COLLATE "C" NOT NULL,
    resource_group TEXT COLLATE "C" NOT NULL,
    name           TEXT COLLATE "C" NOT NULL,
    location       TEXT COLLATE "C" NOT NULL,
    tags           TEXT COLLATE "C" NOT NULL,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    -- A client id or principal id names exactly one identity: tokens and RBAC resolve through them.
    client_id      TEXT COLLATE "C" NOT NULL CONSTRAINT identities_client_id UNIQUE,
    principal_id   TEXT COLLATE "C" NOT NULL CONSTRAINT identities_principal_id UNIQUE,
    created        BIGINT NOT NULL,
    updated        BIGINT NOT NULL,
    PRIMARY KEY (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key)
);

CREATE TABLE credentials (
    subscription       TEXT COLLATE "C" NOT NULL,
    rg_key             TEXT COLLATE "C" NOT NULL,
    identity_key       TEXT COLLATE "C" NOT NULL,
    name_key           TEXT COLLATE "C" NOT NULL,
    name               TEXT COLLATE "C" NOT NULL,
    issuer             TEXT COLLATE "C" NOT NULL,
    subject            TEXT COLLATE "C",
    expression         TEXT COLLATE "C",
    expression_version BIGINT,
    audiences          TEXT COLLATE "C" NOT NULL,
    description        TEXT COLLATE "C",
    created            BIGINT NOT NULL,
    updated            BIGINT NOT NULL,
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
    subscription      TEXT COLLATE "C" NOT NULL,
    rg_key            TEXT COLLATE "C" NOT NULL,
    name_key          TEXT COLLATE "C" NOT NULL,
    resource_group    TEXT COLLATE "C" NOT NULL,
    name              TEXT COLLATE "C" NOT NULL,
    location          TEXT COLLATE "C" NOT NULL,
    tags              TEXT COLLATE "C" NOT NULL,
    -- The cluster id is part of a hosted issuer's URL, so it names exactly one cluster.
    cluster_id        TEXT COLLATE "C" NOT NULL CONSTRAINT clusters_cluster_id UNIQUE,
    issuer_kind       TEXT COLLATE "C" NOT NULL CHECK (issuer_kind IN ('hosted', 'external')),
    issuer_url        TEXT COLLATE "C" NOT NULL,
    issuer_kid        TEXT COLLATE "C",
    issuer_jwks       TEXT COLLATE "C",
    workload_identity BOOLEAN NOT NULL,
    created           BIGINT  NOT NULL,
    updated           BIGINT  NOT NULL,
    PRIMARY KEY (subscription, rg_key, name_key),
    FOREIGN KEY (subscription, rg_key) REFERENCES resource_groups (subscription, name_key),
    CHECK ((issuer_kind = 'hosted') = (issuer_kid IS NOT NULL)),
    CHECK (issuer_kind = 'external' OR issuer_jwks IS NULL)
);

CREATE TABLE apps (
    client_id    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    principal_id TEXT COLLATE "C" NOT NULL CONSTRAINT apps_principal_id UNIQUE,
    display_name TEXT COLLATE "C" NOT NULL,
    secret_hash  BYTEA  NOT NULL,
    created      BIGINT NOT NULL
);

CREATE TABLE role_assignments (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    scope              TEXT COLLATE "C" NOT NULL,
    -- wid_core::Scope::parse(scope).key(): lower-case, no trailing '/'.
    scope_key          TEXT COLLATE "C" NOT NULL,
    role_definition_id TEXT COLLATE "C" NOT NULL,
    principal_id       TEXT COLLATE "C" NOT NULL,
    principal_type     TEXT COLLATE "C" NOT NULL,
    description        TEXT COLLATE "C",
    created            BIGINT NOT NULL,
    updated            BIGINT NOT NULL,
    created_by         TEXT COLLATE "C",
    CONSTRAINT role_assignments_principal_role_scope UNIQUE (principal_id, role_definition_id, scope_key)
);

CREATE INDEX role_assignments_scope ON role_assignments (scope_key);

-- Key Vault. A vault name is unique in the whole store (it is a DNS label), so `vaults` is keyed by
-- the name key alone. A vault cannot reference its group with a foreign key: deleting a group
-- soft-deletes its vaults, which outlive the group row until they are purged (or recovered into a
-- re-created group). The triggers below keep the part of the rule that still holds: an active
-- vault's group exists. (The store also locks the group row, so the rule holds under concurrency.)
CREATE TABLE vaults (
    name_key                   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    subscription               TEXT COLLATE "C" NOT NULL,
    rg_key                     TEXT COLLATE "C" NOT NULL,
    resource_group             TEXT COLLATE "C" NOT NULL,
    name                       TEXT COLLATE "C" NOT NULL,
    location                   TEXT COLLATE "C" NOT NULL,
    tags                       TEXT COLLATE "C" NOT NULL,
    -- Binds sealed blobs (data key, secret values) to this vault, so it names exactly one vault.
    vault_id                   TEXT COLLATE "C" NOT NULL CONSTRAINT vaults_vault_id UNIQUE,
    tenant_id                  TEXT COLLATE "C" NOT NULL,
    sku                        TEXT COLLATE "C" NOT NULL,
    enable_rbac_authorization  BOOLEAN NOT NULL,
    enable_purge_protection    BOOLEAN NOT NULL,
    soft_delete_retention_days BIGINT  NOT NULL,
    public_network_access      TEXT COLLATE "C" NOT NULL,
    sealed_data_key            BYTEA   NOT NULL,
    created                    BIGINT  NOT NULL,
    updated                    BIGINT  NOT NULL,
    -- Set when soft-deleted; purged automatically at deleted + soft_delete_retention_days * 86400.
    deleted                    BIGINT
);

CREATE INDEX vaults_by_group ON vaults (subscription, rg_key, name_key);
CREATE INDEX vaults_by_subscription ON vaults (subscription, name_key);

CREATE FUNCTION wid_vault_needs_group() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted IS NULL AND NOT EXISTS (
        SELECT 1 FROM resource_groups WHERE subscription = NEW.subscription AND name_key = NEW.rg_key
    ) THEN
        RAISE EXCEPTION 'an active vault needs its resource group' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER vaults_need_group BEFORE INSERT OR UPDATE ON vaults
    FOR EACH ROW EXECUTE FUNCTION wid_vault_needs_group();

CREATE FUNCTION wid_group_without_active_vaults() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM vaults WHERE subscription = OLD.subscription AND rg_key = OLD.name_key AND deleted IS NULL
    ) THEN
        RAISE EXCEPTION 'a resource group with active vaults cannot be removed' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER resource_groups_no_active_vaults BEFORE DELETE ON resource_groups
    FOR EACH ROW EXECUTE FUNCTION wid_group_without_active_vaults();

-- One row per secret version. A secret exists while it has versions; it is soft-deleted while it
-- also has a row in `deleted_secrets`. The highest `seq` of a name is its latest version.
CREATE TABLE secrets (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vault        TEXT COLLATE "C" NOT NULL REFERENCES vaults (name_key) ON DELETE CASCADE,
    name_key     TEXT COLLATE "C" NOT NULL,
    -- The casing of the secret's first version; every version of the secret carries the same.
    name         TEXT COLLATE "C" NOT NULL,
    -- 32 lower-case hex digits.
    version      TEXT COLLATE "C" NOT NULL,
    sealed_value BYTEA   NOT NULL,
    content_type TEXT COLLATE "C",
    tags         TEXT COLLATE "C" NOT NULL,
    enabled      BOOLEAN NOT NULL,
    nbf          BIGINT,
    exp          BIGINT,
    created      BIGINT  NOT NULL,
    updated      BIGINT  NOT NULL,
    CONSTRAINT secrets_vault_version UNIQUE (vault, version)
);

-- Latest version of a name (max seq), a secret's versions in order, a vault's names in order.
CREATE INDEX secrets_by_name ON secrets (vault, name_key, seq);

CREATE TABLE deleted_secrets (
    vault           TEXT COLLATE "C" NOT NULL REFERENCES vaults (name_key) ON DELETE CASCADE,
    name_key        TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    deleted         BIGINT NOT NULL,
    scheduled_purge BIGINT NOT NULL,
    PRIMARY KEY (vault, name_key)
);

CREATE INDEX deleted_secrets_by_purge ON deleted_secrets (scheduled_purge);

-- The change log: every write to a record the in-memory indexes hold (identities and their
-- credentials, clusters, applications, role assignments, signing keys) appends rows here in the
-- same transaction, under a transaction-level advisory lock taken just before, so rows commit in
-- `seq` order and a replica reading `seq > last` never skips one; `NOTIFY wid_changes` wakes the
-- replicas at commit.
CREATE TABLE changes (
    seq  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Unix seconds; pruning drops old rows.
    at   BIGINT NOT NULL,
    -- `wid_store::Changed::encode`.
    kind TEXT COLLATE "C" NOT NULL,
    key  TEXT COLLATE "C" NOT NULL
);

-- The highest seq pruning removed: a follower behind it must resync from a snapshot.
CREATE TABLE changes_pruned (
    through BIGINT NOT NULL
);
INSERT INTO changes_pruned (through) VALUES (0);
