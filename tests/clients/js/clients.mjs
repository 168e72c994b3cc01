// The JavaScript Azure clients, unmodified, with only a pod's environment: the webhook's
// AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST, the pod
// spec's KEYVAULT_URL and SECRET_NAME, and the platform's CA (NODE_EXTRA_CA_CERTS).
//
//   node clients.mjs get default|workload         read SECRET_NAME; prints "successfully got secret"
//   node clients.mjs roundtrip default|workload   set SECRET_NAME twice, then get it
//
// Exit status 0 on success; 1 with the SDK's error on stderr: its code, message, and for service
// errors the response body (Key Vault's inner code, e.g. ForbiddenByRbac, is only there).
import { DefaultAzureCredential, WorkloadIdentityCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";

const [op, kind = "default"] = process.argv.slice(2);
const credential = kind === "workload" ? new WorkloadIdentityCredential() : new DefaultAzureCredential();
const client = new SecretClient(process.env.KEYVAULT_URL, credential);
const name = process.env.SECRET_NAME;

try {
  if (op === "get") {
    const secret = await client.getSecret(name);
    console.log(`successfully got secret, secret="${secret.value}"`);
  } else if (op === "roundtrip") {
    await client.setSecret(name, "first");
    const second = await client.setSecret(name, "second");
    const got = await client.getSecret(name);
    console.log(`set ${second.properties.version} got ${got.value}`);
  } else {
    throw new Error("usage: node clients.mjs get|roundtrip default|workload");
  }
} catch (e) {
  console.error(`${e.code ?? e.name}: ${e.message}`);
  if (e.details) console.error(JSON.stringify(e.details));
  process.exit(1);
}
