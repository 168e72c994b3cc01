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
