-- wid schema version 3 (PostgreSQL): the identity bindings of a cluster registration (AKS's
-- managedClusters/identityBindings), a JSON array kept with the cluster they belong to.
ALTER TABLE clusters ADD COLUMN identity_bindings TEXT;
