package wid;

import com.azure.core.exception.HttpResponseException;
import com.azure.identity.DefaultAzureCredentialBuilder;
import com.azure.identity.WorkloadIdentityCredentialBuilder;
import com.azure.core.credential.TokenCredential;
import com.azure.security.keyvault.secrets.SecretClient;
import com.azure.security.keyvault.secrets.SecretClientBuilder;
import com.azure.security.keyvault.secrets.models.KeyVaultSecret;

/**
 * The Java Azure clients, unmodified, with only a pod's environment: the webhook's AZURE_CLIENT_ID,
 * AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST, the pod spec's KEYVAULT_URL
 * and SECRET_NAME, and the platform's trust store (JAVA_TOOL_OPTIONS).
 *
 * <pre>
 *   Clients get default|workload       read SECRET_NAME; prints "successfully got secret"
 *   Clients roundtrip default|workload set SECRET_NAME twice, then get it; prints the value
 * </pre>
 *
 * Exit status 0 on success; 1 with the SDK's error on stderr (for Key Vault errors, the service's
 * code first, e.g. "Forbidden: ForbiddenByRbac ...").
 */
public final class Clients {
    public static void main(String[] args) {
        try {
            String op = args.length > 0 ? args[0] : "";
            TokenCredential credential = credential(args.length > 1 ? args[1] : "default");
            SecretClient client = new SecretClientBuilder()
                .vaultUrl(System.getenv("KEYVAULT_URL"))
                .credential(credential)
                .buildClient();
            String name = System.getenv("SECRET_NAME");
            switch (op) {
                case "get" -> {
                    KeyVaultSecret secret = client.getSecret(name);
                    System.out.println("successfully got secret, secret=\"" + secret.getValue() + "\"");
                }
                case "roundtrip" -> {
                    client.setSecret(name, "first");
                    KeyVaultSecret second = client.setSecret(name, "second");
                    KeyVaultSecret got = client.getSecret(name);
                    KeyVaultSecret first = client.getSecret(name, null);
                    System.out.println("set " + second.getProperties().getVersion() + " got " + got.getValue()
                        + " latest " + first.getValue());
                }
                default -> throw new IllegalArgumentException("usage: Clients get|roundtrip default|workload");
            }
        } catch (HttpResponseException e) {
            System.err.println(e.getResponse().getStatusCode() + " " + e.getMessage());
            System.exit(1);
        } catch (RuntimeException e) {
            System.err.println(e);
            System.exit(1);
        }
    }

    private static TokenCredential credential(String kind) {
        return switch (kind) {
            case "default" -> new DefaultAzureCredentialBuilder().build();
            case "workload" -> new WorkloadIdentityCredentialBuilder().build();
            default -> throw new IllegalArgumentException("unknown credential " + kind);
        };
    }
}
