{{/* Labels on every object of the release. */}}
{{- define "wid.labels" -}}
app.kubernetes.io/name: wid
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector of the wid serve pods. */}}
{{- define "wid.server.selectorLabels" -}}
app.kubernetes.io/name: wid
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* Selector of the webhook pods (upstream's system label included). */}}
{{- define "wid.webhook.selectorLabels" -}}
app.kubernetes.io/name: wid
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
azure-workload-identity.io/system: "true"
{{- end -}}

{{- define "wid.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The public host name of wid serve. */}}
{{- define "wid.server.host" -}}
{{ .Values.server.host | default (printf "%s-server.%s.svc" .Release.Name .Release.Namespace) }}
{{- end -}}

{{/* What pods get as AZURE_AUTHORITY_HOST. */}}
{{- define "wid.webhook.authorityHost" -}}
{{ .Values.webhook.authorityHost | default (printf "https://%s:%v/" (include "wid.server.host" .) .Values.server.port) }}
{{- end -}}

{{/* Restricted pod security (as upstream's webhook: non-root 65532, no privilege escalation). */}}
{{- define "wid.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "wid.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
runAsNonRoot: true
capabilities:
  drop:
  - ALL
{{- end -}}

{{/* Azure host names mode: pods get upstream's authority for the cloud and wid's CA, so the
  values that would give them anything else are refused with the reason. */}}
{{- define "wid.azureHostnames.checks" -}}
{{- if .Values.azureHostnames.enabled -}}
{{- if .Values.webhook.authorityHost -}}
{{- fail (printf "azureHostnames.enabled gives pods upstream's AZURE_AUTHORITY_HOST for webhook.azureEnvironment (https://login.microsoftonline.com/), the name wid then answers as: unset webhook.authorityHost (now %s; see deploy/README.md, \"Azure host names in the cluster\")" .Values.webhook.authorityHost) -}}
{{- end -}}
{{- if not (has (lower (.Values.webhook.azureEnvironment | default "")) (list "" "azurepubliccloud" "azurecloud")) -}}
{{- fail (printf "azureHostnames.enabled needs webhook.azureEnvironment=AzurePublicCloud: wid answers as the public cloud's login.microsoftonline.com only, and %s would send pods to another cloud's sign-in host (see deploy/README.md, \"Azure host names in the cluster\")" .Values.webhook.azureEnvironment) -}}
{{- end -}}
{{- if not .Values.webhook.caBundleConfigMap -}}
{{- fail "azureHostnames.enabled needs webhook.caBundleConfigMap: pods must trust wid's CA for Azure's names, and only the pods the webhook admits should (a ConfigMap with wid's CA in every workload namespace; see deploy/README.md, \"Azure host names in the cluster\")" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The CoreDNS rewrite rules of the Azure host names mode: each of Azure's names is answered with
  the address of this release's wid Service. `answer auto` (CoreDNS 1.8.4+) writes the asked name
  back into the answer; an older CoreDNS refuses the option rather than answer with a name the
  resolver would reject. */}}
{{- define "wid.azureHostnames.coreDNS" -}}
{{- $svc := printf "%s-server.%s.svc.%s" .Release.Name .Release.Namespace (trimSuffix "." .Values.azureHostnames.clusterDomain) -}}
rewrite stop name exact login.microsoftonline.com {{ $svc }} answer auto
rewrite stop name exact management.azure.com {{ $svc }} answer auto
rewrite stop name exact graph.microsoft.com {{ $svc }} answer auto
rewrite stop name regex ^[a-z0-9-]+\.vault\.azure\.net\.?$ {{ $svc }} answer auto
{{- end -}}
