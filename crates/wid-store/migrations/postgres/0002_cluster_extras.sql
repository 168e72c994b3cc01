-- wid schema version 2 (PostgreSQL): what a cluster registration keeps for clients.
--
-- The API server (URL and PEM CA) for the kubeconfig of listClusterUserCredential, and the ARM
-- fields a create or update sent that wid does not interpret (a JSON object), returned as sent.
ALTER TABLE clusters ADD COLUMN api_server TEXT;
ALTER TABLE clusters ADD COLUMN api_server_ca TEXT;
ALTER TABLE clusters ADD COLUMN arm_extra TEXT;
