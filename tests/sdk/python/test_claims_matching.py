"""Claims-matching federated credentials (flexible credentials) through azure-identity, unmodified.

One credential admits a family of subjects — a GitHub-shaped issuer's `repo:contoso/app:*` tokens of
one repository owner — and refuses the rest, the refusal naming the clause that failed; another
pins a Kubernetes service account by its uid (`claims['kubernetes.io']['serviceaccount']['uid']`), so
an account deleted and re-created under the same name is refused. Entra allows expressions only for
GitHub, GitLab and Terraform Cloud issuers; wid allows them for any issuer. The issuers here are
private ones whose JWKS is uploaded to wid; the tests hold their keys and sign the tokens.
"""

from __future__ import annotations

import json
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, WorkloadIdentityCredential

from conftest import AUD, PrivateIssuer, Wid, claims_of

GITHUB_ISSUER = "https://token.actions.githubusercontent.example"
K8S_ISSUER = "https://private-cluster.example/oidc/"
CREDENTIALS = {"workload": WorkloadIdentityCredential, "default": DefaultAzureCredential}


@pytest.fixture(scope="module")
def setup(wid: Wid):
    """Two private issuers registered with their JWKS, and an identity trusting each by expression."""
    issuers = {}
    for name, url in [("gh", GITHUB_ISSUER), ("k8s", K8S_ISSUER)]:
        issuer = PrivateIssuer()
        jwks = wid.root / f"{name}-jwks.json"
        jwks.write_text(json.dumps(issuer.jwks()))
        wid.cli("aks", "create", "-n", f"cme-{name}", "-g", "rg1", "--issuer-url", url, "--jwks-file", str(jwks),
                "-o", "none")
        issuers[name] = issuer
    wid.cli("identity", "create", "-n", "cme-id", "-g", "rg1", "-o", "none")
    client_id = wid.cli("identity", "show", "-n", "cme-id", "-g", "rg1", "--query", "clientId", "-o", "tsv").strip()
    for name, issuer, expression in [
        ("github-app", GITHUB_ISSUER,
         "claims['sub'] matches 'repo:contoso/app:*' and claims['repository_owner_id'] eq '4711'"),
        ("pinned-sa", K8S_ISSUER,
         "claims['sub'] eq 'system:serviceaccount:apps:web' and "
         "claims['kubernetes.io']['serviceaccount']['uid'] eq '6f1c2a53-0b6e-4c8e-9d8a-2b1f0c3e4d5a'"),
    ]:
        wid.cli("identity", "federated-credential", "create", "--name", name, "--identity-name", "cme-id",
                "-g", "rg1", "--issuer", issuer, "--claims-matching-expression-value", expression,
                "--claims-matching-expression-version", "1", "--audience", AUD, "-o", "none")
    return wid, client_id, issuers


def github_token(issuer: PrivateIssuer, sub: str, owner: str) -> str:
    return issuer.sign(issuer.claims(iss=GITHUB_ISSUER, sub=sub, repository_owner_id=owner, repository="contoso/app"))


def kubernetes_token(issuer: PrivateIssuer, uid: str) -> str:
    sa = {"name": "web", "uid": uid}
    return issuer.sign(issuer.claims(iss=K8S_ISSUER, sub="system:serviceaccount:apps:web",
                                     **{"kubernetes.io": {"namespace": "apps", "serviceaccount": sa}}))


def get_token(wid: Wid, pod_env, client_id: str, kind: str, assertion: str):
    pod_env(client_id=client_id, token_file=wid.write_token(assertion))
    with CREDENTIALS[kind]() as credential:
        return credential.get_token(wid.kv_scope)


def refusal(wid: Wid, pod_env, client_id: str, kind: str, assertion: str) -> str:
    with pytest.raises(ClientAuthenticationError) as caught:
        get_token(wid, pod_env, client_id, kind, assertion)
    return str(caught.value)


@pytest.mark.parametrize("kind", CREDENTIALS)
@pytest.mark.parametrize("sub", ["repo:contoso/app:ref:refs/heads/main", "repo:contoso/app:pull_request",
                                 "repo:contoso/app:environment:prod"])
def test_a_pattern_admits_a_family_of_subjects(setup, pod_env, kind: str, sub: str) -> None:
    wid, client_id, issuers = setup
    token = get_token(wid, pod_env, client_id, kind, github_token(issuers["gh"], sub, "4711"))
    assert claims_of(token.token)["appid"] == client_id


@pytest.mark.parametrize("kind", CREDENTIALS)
@pytest.mark.parametrize("sub, owner, clause, found", [
    ("repo:contoso/app:ref:refs/heads/main", "4712",
     "clause 2 of 2, claims['repository_owner_id'] eq '4711', does not hold", "the token's value is '4712'"),
    ("repo:contoso/other:ref:refs/heads/main", "4711",
     "clause 1 of 2, claims['sub'] matches 'repo:contoso/app:*', does not hold",
     "the token's value is 'repo:contoso/other:ref:refs/heads/main'"),
    # Values compare case-sensitively, as subjects do.
    ("repo:Contoso/app:ref:refs/heads/main", "4711", "clause 1 of 2", "'repo:Contoso/app:ref:refs/heads/main'"),
], ids=["other-owner", "other-repository", "letter-case"])
def test_the_rest_is_refused_naming_the_failing_clause(setup, pod_env, kind, sub, owner, clause, found) -> None:
    wid, client_id, issuers = setup
    message = refusal(wid, pod_env, client_id, kind, github_token(issuers["gh"], sub, owner))
    assert "AADSTS700213:" in message, message
    assert "The closest federated credential is 'github-app'" in message, message
    assert clause in message and found in message, message


@pytest.mark.parametrize("kind", CREDENTIALS)
def test_a_service_account_pinned_by_its_uid(setup, pod_env, kind: str) -> None:
    wid, client_id, issuers = setup
    token = get_token(wid, pod_env, client_id, kind,
                      kubernetes_token(issuers["k8s"], "6f1c2a53-0b6e-4c8e-9d8a-2b1f0c3e4d5a"))
    assert claims_of(token.token)["appid"] == client_id
    # Deleted and re-created under the same name: a new uid, refused.
    recreated = str(uuid.uuid4())
    message = refusal(wid, pod_env, client_id, kind, kubernetes_token(issuers["k8s"], recreated))
    assert "AADSTS700213:" in message, message
    assert "claims['kubernetes.io']['serviceaccount']['uid']" in message and recreated in message, message
