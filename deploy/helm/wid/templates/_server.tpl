{{/* wid serve runs in one of two modes:
  - SQLite (default): a StatefulSet of one pod, state in the data dir on its volume;
  - PostgreSQL (server.database.existingSecret set): a Deployment of stateless replicas sharing one
    database, one master key (server.masterKey) and one serving certificate (server.tlsSecretName). */}}

{{/* Refuses values that cannot work (rendering fails with the reason). */}}
{{- define "wid.server.checks" -}}
{{- $replicas := printf "%v" .Values.server.replicas -}}
{{- if .Values.server.database.existingSecret -}}
{{- if not .Values.server.masterKey.existingSecret -}}
{{- fail "server.database.existingSecret needs server.masterKey.existingSecret: every replica must seal and open keys and secrets with the same master key, and a pod's own data dir is an emptyDir (create the Secret: kubectl create secret generic wid-master-key --from-file=master.key=<(head -c 32 /dev/urandom); see deploy/README.md, \"Several replicas on PostgreSQL\")" -}}
{{- end -}}
{{- if not .Values.server.tlsSecretName -}}
{{- fail "server.database.existingSecret needs server.tlsSecretName: all replicas behind the Service must present one certificate clients trust, and each replica's local CA would differ (a kubernetes.io/tls Secret whose names cover HOST and *.vault.HOST, e.g. from cert-manager; see deploy/README.md, \"Several replicas on PostgreSQL\")" -}}
{{- end -}}
{{- else if not (eq $replicas "<nil>" "" "0" "1") -}}
{{- fail (printf "server.replicas=%s needs server.database.existingSecret (PostgreSQL): with SQLite the state is one pod's volume, so wid serve runs as one replica (see deploy/README.md, \"Several replicas on PostgreSQL\")" $replicas) -}}
{{- end -}}
{{- end -}}

{{/* server.replicas, else 1 with SQLite and 2 with PostgreSQL (0 is kept: a stopped server). */}}
{{- define "wid.server.replicas" -}}
{{- $replicas := printf "%v" .Values.server.replicas -}}
{{- if not (eq $replicas "<nil>" "") -}}
{{ $replicas }}
{{- else if .Values.server.database.existingSecret -}}
2
{{- else -}}
1
{{- end -}}
{{- end -}}

{{/* WID_DATABASE_URL from its Secret: the URL holds a password, so it is never a plain value. */}}
{{- define "wid.server.databaseEnv" -}}
- name: WID_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.server.database.existingSecret }}
      key: {{ .Values.server.database.urlKey }}
{{- end -}}

{{/* The pod template of wid serve, for the StatefulSet (SQLite on the volume `data`) and the
  Deployment (PostgreSQL; `data` is an emptyDir holding the local CA and the CLI profile). */}}
{{- define "wid.server.pod" -}}
{{- $db := .Values.server.database.existingSecret -}}
metadata:
  labels:
    {{- include "wid.labels" . | nindent 4 }}
    app.kubernetes.io/component: server
spec:
  serviceAccountName: {{ .Release.Name }}-server
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "wid.podSecurityContext" . | nindent 4 }}
  {{- if and $db .Values.server.database.migrate }}
  initContainers:
  # Applies pending schema migrations before wid serve starts (with --no-migrate). Each new pod runs
  # it: the first of a rollout migrates under PostgreSQL's advisory lock, the others find nothing.
  - name: migrate
    image: {{ include "wid.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
    - migrate
    {{- if .Values.server.database.caConfigMap }}
    - --database-ca-file=/etc/wid/database-ca/ca.crt
    {{- end }}
    env:
    - name: WID_LOG
      value: {{ .Values.server.logLevel | quote }}
    - name: WID_LOG_FORMAT
      value: json
    {{- include "wid.server.databaseEnv" . | nindent 4 }}
    resources:
      {{- toYaml .Values.server.resources | nindent 6 }}
    securityContext:
      {{- include "wid.containerSecurityContext" . | nindent 6 }}
    {{- if .Values.server.database.caConfigMap }}
    volumeMounts:
    - name: database-ca
      mountPath: /etc/wid/database-ca
      readOnly: true
    {{- end }}
  {{- end }}
  containers:
  - name: wid
    image: {{ include "wid.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
    - serve
    - --data-dir=/var/lib/wid
    - --listen=0.0.0.0:{{ .Values.server.port }}
    - --host={{ include "wid.server.host" . }}
    {{- if .Values.azureHostnames.enabled }}
    - --azure-hostnames
    {{- end }}
    {{- if $db }}
    - --no-migrate
    - --database-pool-size={{ .Values.server.database.poolSize }}
    {{- if .Values.server.database.caConfigMap }}
    - --database-ca-file=/etc/wid/database-ca/ca.crt
    {{- end }}
    {{- end }}
    {{- if .Values.server.masterKey.existingSecret }}
    - --master-key-file=/etc/wid/master-key/master.key
    {{- end }}
    {{- if .Values.server.issuerCAConfigMap }}
    - --issuer-ca-file=/etc/wid/issuer-ca/ca.crt
    {{- end }}
    {{- if .Values.server.tlsSecretName }}
    - --tls-cert=/etc/wid/tls/tls.crt
    - --tls-key=/etc/wid/tls/tls.key
    {{- end }}
    {{- range .Values.server.extraArgs }}
    - {{ . }}
    {{- end }}
    env:
    - name: HOME
      value: /var/lib/wid
    - name: WID_CONFIG
      value: /var/lib/wid/profile.json
    - name: WID_LOG
      value: {{ .Values.server.logLevel | quote }}
    - name: WID_LOG_FORMAT
      value: json
    {{- if $db }}
    {{- include "wid.server.databaseEnv" . | nindent 4 }}
    {{- end }}
    ports:
    - name: https
      containerPort: {{ .Values.server.port }}
      protocol: TCP
    livenessProbe:
      httpGet:
        path: /healthz
        port: https
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 20
      failureThreshold: 6
    readinessProbe:
      httpGet:
        path: /readyz
        port: https
        scheme: HTTPS
      initialDelaySeconds: 2
      periodSeconds: 5
    resources:
      {{- toYaml .Values.server.resources | nindent 6 }}
    securityContext:
      {{- include "wid.containerSecurityContext" . | nindent 6 }}
    volumeMounts:
    - name: data
      mountPath: /var/lib/wid
    - name: tmp
      mountPath: /tmp
    {{- if .Values.server.issuerCAConfigMap }}
    - name: issuer-ca
      mountPath: /etc/wid/issuer-ca
      readOnly: true
    {{- end }}
    {{- if .Values.server.tlsSecretName }}
    - name: tls
      mountPath: /etc/wid/tls
      readOnly: true
    {{- end }}
    {{- if .Values.server.masterKey.existingSecret }}
    - name: master-key
      mountPath: /etc/wid/master-key
      readOnly: true
    {{- end }}
    {{- if and $db .Values.server.database.caConfigMap }}
    - name: database-ca
      mountPath: /etc/wid/database-ca
      readOnly: true
    {{- end }}
  volumes:
  {{- if $db }}
  - name: data
    emptyDir: {}
  {{- end }}
  - name: tmp
    emptyDir: {}
  {{- if .Values.server.issuerCAConfigMap }}
  - name: issuer-ca
    configMap:
      name: {{ .Values.server.issuerCAConfigMap }}
      items:
      - key: ca.crt
        path: ca.crt
  {{- end }}
  {{- if .Values.server.tlsSecretName }}
  - name: tls
    secret:
      secretName: {{ .Values.server.tlsSecretName }}
  {{- end }}
  {{- if .Values.server.masterKey.existingSecret }}
  - name: master-key
    secret:
      secretName: {{ .Values.server.masterKey.existingSecret }}
      # Owner-readable; with the pod's fsGroup the kubelet makes it 0440, group 65532.
      defaultMode: 256
      items:
      - key: {{ .Values.server.masterKey.key }}
        path: master.key
  {{- end }}
  {{- if and $db .Values.server.database.caConfigMap }}
  - name: database-ca
    configMap:
      name: {{ .Values.server.database.caConfigMap }}
      items:
      - key: {{ .Values.server.database.caKey }}
        path: ca.crt
  {{- end }}
  {{- with .Values.server.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.server.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.server.affinity }}
  affinity:
    {{- toYaml .Values.server.affinity | nindent 4 }}
  {{- else if $db }}
  # Replicas prefer different nodes (soft: a small cluster still schedules them all).
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "wid.server.selectorLabels" . | nindent 14 }}
  {{- end }}
{{- end -}}
