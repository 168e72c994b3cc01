// Command wid-go-clients runs the Go Azure clients, unmodified, against whatever the environment
// names: a pod's environment on AKS (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE,
// AZURE_AUTHORITY_HOST from the webhook; KEYVAULT_URL and SECRET_NAME from the pod spec), and the
// platform's CA bundle (SSL_CERT_FILE). No client option is set that such a pod would not set.
//
//	wid-go-clients walkthrough            the AKS walkthrough's verification program: an msal-go
//	                                      confidential client whose assertion is the token file, then
//	                                      azsecrets GetSecret; logs "successfully got secret"
//	wid-go-clients secrets workload|default
//	                                      azidentity's WorkloadIdentityCredential or
//	                                      DefaultAzureCredential, then an azsecrets round trip: set
//	                                      (twice), get, versions, list with paging, delete, get the
//	                                      deleted secret, recover, get; one JSON line per step
//	wid-go-clients token workload|default a token for Key Vault only; the error as the SDK reports it
//
// Exit status: 0 on success, 1 with the SDK's error on stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	switch arg(1) {
	case "walkthrough":
		err = walkthrough(ctx)
	case "secrets":
		err = secrets(ctx, arg(2))
	case "token":
		err = token(ctx, arg(2))
	default:
		err = errors.New("usage: wid-go-clients walkthrough | secrets workload|default | token workload|default")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func arg(i int) string {
	if len(os.Args) > i {
		return os.Args[i]
	}
	return ""
}

// --- the walkthrough's verification program ---------------------------------------------------------

// assertionCredential is an azcore.TokenCredential over an msal-go confidential client, as in the
// walkthrough's sample.
type assertionCredential struct {
	app confidential.Client
}

func (c assertionCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	result, err := c.app.AcquireTokenByCredential(ctx, opts.Scopes)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: result.AccessToken, ExpiresOn: result.ExpiresOn}, nil
}

func walkthrough(ctx context.Context) error {
	keyVaultURL := os.Getenv("KEYVAULT_URL")
	secretName := os.Getenv("SECRET_NAME")
	tokenFile := os.Getenv("AZURE_FEDERATED_TOKEN_FILE")
	cred := confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
		b, err := os.ReadFile(tokenFile)
		return string(b), err
	})
	authority := strings.TrimSuffix(os.Getenv("AZURE_AUTHORITY_HOST"), "/") + "/" + os.Getenv("AZURE_TENANT_ID")
	app, err := confidential.New(authority, os.Getenv("AZURE_CLIENT_ID"), cred)
	if err != nil {
		return fmt.Errorf("failed to create confidential client app: %w", err)
	}
	client, err := azsecrets.NewClient(keyVaultURL, assertionCredential{app}, nil)
	if err != nil {
		return fmt.Errorf("failed to create secret client: %w", err)
	}
	secret, err := client.GetSecret(ctx, secretName, "", nil)
	if err != nil {
		return fmt.Errorf("failed to get secret: %w", err)
	}
	fmt.Printf("successfully got secret, secret=%q\n", *secret.Value)
	return nil
}

// --- azidentity and azsecrets -----------------------------------------------------------------------

func credential(kind string) (azcore.TokenCredential, error) {
	switch kind {
	case "workload":
		return azidentity.NewWorkloadIdentityCredential(nil)
	case "default":
		return azidentity.NewDefaultAzureCredential(nil)
	}
	return nil, fmt.Errorf("unknown credential %q (workload or default)", kind)
}

func token(ctx context.Context, kind string) error {
	cred, err := credential(kind)
	if err != nil {
		return err
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{keyVaultScope()}})
	if err != nil {
		return err
	}
	fmt.Printf("token expires %s\n", tok.ExpiresOn.UTC().Format(time.RFC3339))
	return nil
}

// keyVaultScope is the scope azsecrets would ask for: the challenge's resource is the vault host's
// parent domain.
func keyVaultScope() string {
	u := strings.TrimSuffix(os.Getenv("KEYVAULT_URL"), "/")
	scheme, host, _ := strings.Cut(u, "://")
	_, parent, _ := strings.Cut(host, ".")
	return scheme + "://" + parent + "/.default"
}

func step(name string, v any) {
	line, _ := json.Marshal(map[string]any{"step": name, "result": v})
	fmt.Println(string(line))
}

func secrets(ctx context.Context, kind string) error {
	cred, err := credential(kind)
	if err != nil {
		return err
	}
	client, err := azsecrets.NewClient(os.Getenv("KEYVAULT_URL"), cred, nil)
	if err != nil {
		return err
	}
	name := os.Getenv("SECRET_NAME")
	var versions []string
	for _, value := range []string{"first", "second"} {
		set, err := client.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: &value}, nil)
		if err != nil {
			return fmt.Errorf("set: %w", err)
		}
		versions = append(versions, set.ID.Version())
	}
	step("set", versions)

	got, err := client.GetSecret(ctx, name, "", nil)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	first, err := client.GetSecret(ctx, name, versions[0], nil)
	if err != nil {
		return fmt.Errorf("get version: %w", err)
	}
	step("get", []string{*got.Value, *first.Value})

	var listed []string
	for pager := client.NewListSecretPropertiesVersionsPager(name, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("versions: %w", err)
		}
		for _, p := range page.Value {
			listed = append(listed, p.ID.Version())
		}
	}
	step("versions", listed)

	names, pages := []string{}, 0
	for pager := client.NewListSecretPropertiesPager(nil); pager.More(); pages++ {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		for _, p := range page.Value {
			names = append(names, p.ID.Name())
		}
	}
	step("list", map[string]any{"names": names, "pages": pages})

	deleted, err := client.DeleteSecret(ctx, name, nil)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	step("delete", *deleted.RecoveryID)
	if _, err := client.GetSecret(ctx, name, "", nil); err == nil {
		return errors.New("get after delete: the secret is still there")
	} else {
		step("get-after-delete", responseCode(err))
	}
	// Deletion and recovery are long-running on Azure; poll as the SDK's samples do.
	if err := poll(ctx, func() error { _, err := client.GetDeletedSecret(ctx, name, nil); return err }); err != nil {
		return fmt.Errorf("get deleted: %w", err)
	}
	if _, err := client.RecoverDeletedSecret(ctx, name, nil); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := poll(ctx, func() error { _, err := client.GetSecret(ctx, name, "", nil); return err }); err != nil {
		return fmt.Errorf("get after recover: %w", err)
	}
	again, err := client.GetSecret(ctx, name, "", nil)
	if err != nil {
		return fmt.Errorf("get after recover: %w", err)
	}
	step("recovered", *again.Value)
	return nil
}

func responseCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return err.Error()
}

func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
