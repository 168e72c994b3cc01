-- wid schema version 2 (SQLite): Key Vault — vaults, secret versions, soft-deleted secrets.
--
-- Conventions as in 0001 (keys computed in Rust, bytewise order, Unix seconds, JSON tags), plus:
--   * a vault name is unique in the whole store (it is a DNS label), so `vaults` is keyed by the
--     name key alone; subscription and group are attributes of the vault;
--   * a vault is soft-deleted when `deleted` is set; it keeps its name and secrets until purged;
--   * secret values are sealed by the caller with the vault's data key; the store sees only the
--     sealed bytes (and `secure_delete`, set per connection, zeroes them when they go).

-- A vault cannot reference its group with a foreign key: deleting a group soft-deletes its vaults,
-- which outlive the group row until they are purged (or recovered into a re-created group). The
-- triggers below keep the part of the rule that still holds: an active vault's group exists.
CREATE TABLE vaults (
    name_key                   TEXT    NOT NULL PRIMARY KEY,
    subscription               TEXT    NOT NULL,
    rg_key                     TEXT    NOT NULL,
    resource_group             TEXT    NOT NULL,
    name                       TEXT    NOT NULL,
    location                   TEXT    NOT NULL,
    tags                       TEXT    NOT NULL,
    -- Binds sealed blobs (data key, secret values) to this vault, so it names exactly one vault.
    vault_id                   TEXT    NOT NULL UNIQUE,
    tenant_id                  TEXT    NOT NULL,
    sku                        TEXT    NOT NULL,
    enable_rbac_authorization  INTEGER NOT NULL CHECK (enable_rbac_authorization IN (0, 1)),
    enable_purge_protection    INTEGER NOT NULL CHECK (enable_purge_protection IN (0, 1)),
    soft_delete_retention_days INTEGER NOT NULL,
    public_network_access      TEXT    NOT NULL,
    sealed_data_key            BLOB    NOT NULL,
    created                    INTEGER NOT NULL,
    updated                    INTEGER NOT NULL,
    -- Set when soft-deleted; purged automatically at deleted + soft_delete_retention_days * 86400.
    deleted                    INTEGER
);

-- Listing a group's or a subscription's vaults in name order; finding a group's vaults on delete.
CREATE INDEX vaults_by_group ON vaults (subscription, rg_key, name_key);
CREATE INDEX vaults_by_subscription ON vaults (subscription, name_key);

CREATE TRIGGER vaults_insert_need_group BEFORE INSERT ON vaults
WHEN NEW.deleted IS NULL AND NOT EXISTS (
    SELECT 1 FROM resource_groups WHERE subscription = NEW.subscription AND name_key = NEW.rg_key
)
BEGIN
    SELECT RAISE(ABORT, 'an active vault needs its resource group');
END;

CREATE TRIGGER vaults_update_need_group BEFORE UPDATE ON vaults
WHEN NEW.deleted IS NULL AND NOT EXISTS (
    SELECT 1 FROM resource_groups WHERE subscription = NEW.subscription AND name_key = NEW.rg_key
)
BEGIN
    SELECT RAISE(ABORT, 'an active vault needs its resource group');
END;

CREATE TRIGGER resource_groups_delete_no_active_vaults BEFORE DELETE ON resource_groups
WHEN EXISTS (
    SELECT 1 FROM vaults WHERE subscription = OLD.subscription AND rg_key = OLD.name_key AND deleted IS NULL
)
BEGIN
    SELECT RAISE(ABORT, 'a resource group with active vaults cannot be removed');
END;

-- One row per secret version. A secret exists while it has versions; it is soft-deleted while it
-- also has a row in `deleted_secrets`. `seq` orders versions (AUTOINCREMENT: never reused, so a
-- later insert always sorts after every earlier one, purged or not): the highest is the latest.
CREATE TABLE secrets (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    vault        TEXT    NOT NULL REFERENCES vaults (name_key) ON DELETE CASCADE,
    name_key     TEXT    NOT NULL,
    -- The casing of the secret's first version; every version of the secret carries the same.
    name         TEXT    NOT NULL,
    -- 32 lower-case hex digits.
    version      TEXT    NOT NULL,
    sealed_value BLOB    NOT NULL,
    content_type TEXT,
    tags         TEXT    NOT NULL,
    enabled      INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    nbf          INTEGER,
    exp          INTEGER,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL,
    UNIQUE (vault, version)
);

-- Latest version of a name (max seq), a secret's versions in order, a vault's names in order.
CREATE INDEX secrets_by_name ON secrets (vault, name_key, seq);

CREATE TABLE deleted_secrets (
    vault           TEXT    NOT NULL REFERENCES vaults (name_key) ON DELETE CASCADE,
    name_key        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    deleted         INTEGER NOT NULL,
    scheduled_purge INTEGER NOT NULL,
    PRIMARY KEY (vault, name_key)
);

-- purge_expired.
CREATE INDEX deleted_secrets_by_purge ON deleted_secrets (scheduled_purge);
