{{/* Chart name. */}}
{{- define "eda.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, the prefix of every object name. */}}
{{- define "eda.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eda.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; call with (dict "ctx" $ "component" "api"). */}}
{{- define "eda.labels" -}}
helm.sh/chart: {{ include "eda.chart" .ctx }}
{{ include "eda.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: eda
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels; call with (dict "ctx" $ "component" "api"). */}}
{{- define "eda.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eda.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* The eda image (every role, the Jobs). */}}
{{- define "eda.image" -}}
{{- $image := merge (dict "tag" (default .Chart.AppVersion .Values.image.tag)) .Values.image -}}
{{- include "eda.imageRef" (dict "ctx" . "image" $image "what" "image") -}}
{{- end }}

{{/* An image reference: repository:tag@digest (the digest is what the kubelet pulls; the tag stays for
readability), or repository:tag without a digest — refused when images.requireDigest is true.
Call with (dict "ctx" $ "image" .Values.nats.image "what" "nats.image"). */}}
{{- define "eda.imageRef" -}}
{{- $digest := .image.digest | default "" -}}
{{- if $digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $digest) -}}
{{- fail (printf "%s.digest must be sha256:<64 hex digits>, got %q" .what $digest) -}}
{{- end -}}
{{ .image.repository }}:{{ .image.tag }}@{{ $digest }}
{{- else if .ctx.Values.images.requireDigest -}}
{{- fail (printf "%s (%s:%s) has no digest and images.requireDigest is true: pin it (`make pin-images`, docs/kubernetes.md)" .what .image.repository .image.tag) -}}
{{- else -}}
{{ .image.repository }}:{{ .image.tag }}
{{- end -}}
{{- end }}

{{- define "eda.serviceAccountName" -}}
{{ include "eda.fullname" . }}
{{- end }}

{{- define "eda.operatorServiceAccountName" -}}
{{ include "eda.fullname" . }}-operator
{{- end }}

{{/* The one namespace the operator watches unless operator.clusterWide: watchNamespace or the release's. */}}
{{- define "eda.operatorNamespace" -}}
{{- default .Release.Namespace .Values.operator.watchNamespace -}}
{{- end }}

{{/* NATS client URLs: every bundled pod through the headless Service, or the external URL. */}}
{{- define "eda.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- $fullname := include "eda.fullname" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.nats.replicas) -}}
{{- $urls = append $urls (printf "nats://%s-nats-%d.%s-nats-headless.%s.svc:4222" $fullname $i $fullname $.Release.Namespace) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- required "nats.externalUrl is required when nats.enabled=false" .Values.nats.externalUrl -}}
{{- end -}}
{{- end }}

{{- define "eda.streamReplicas" -}}
{{- if gt (int .Values.config.streamReplicas) 0 -}}
{{ int .Values.config.streamReplicas }}
{{- else if .Values.nats.enabled -}}
{{ min 3 (int .Values.nats.replicas) }}
{{- else -}}
1
{{- end -}}
{{- end }}

{{/* The owner's DSN (migrations, the operator's rebuilds): the bundled Secret or externalDatabase's. */}}
{{- define "eda.databaseSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{ include "eda.fullname" . }}-postgresql
{{- else -}}
{{ required "externalDatabase.existingSecret is required when postgresql.enabled=false" .Values.externalDatabase.existingSecret }}
{{- end -}}
{{- end }}

{{- define "eda.databaseSecretKey" -}}
{{- if .Values.postgresql.enabled -}}
database-url
{{- else -}}
{{ .Values.externalDatabase.existingSecretKey }}
{{- end -}}
{{- end }}

{{/* The bundled PostgreSQL's login user of a role ("api", "projector"): a member of group eda_<role>. */}}
{{- define "eda.databaseLogin" -}}
eda_{{ . }}_login
{{- end }}

{{/* "true" when the bundled PostgreSQL gives the role (call with (dict "ctx" $ "role" "api")) a login of
its own (created by the migrate Job's db-setup step). */}}
{{- define "eda.roleUser" -}}
{{- $pg := .ctx.Values.postgresql }}
{{- if and $pg.enabled $pg.roleUsers.enabled (has .role (list "api" "projector")) -}}
true
{{- end -}}
{{- end }}

{{/* Which database credentials a role gets: "owner" (DDL: migrate, the operator's rebuilds), "role"
(api, projector: their own login), "" (saga, workers, provision: no database at all). */}}
{{- define "eda.databaseAccess" -}}
{{- if has .role (list "migrate" "operator") -}}
owner
{{- else if has .role (list "api" "projector") -}}
role
{{- end -}}
{{- end }}

{{/* The EDA_DATABASE_URL secretKeyRef of a role; call with (dict "ctx" $ "role" "api"). */}}
{{- define "eda.databaseSecretRef" -}}
{{- $v := .ctx.Values }}
{{- $access := include "eda.databaseAccess" . }}
{{- if and (eq $access "role") (include "eda.roleUser" .) }}
name: {{ include "eda.fullname" .ctx }}-postgresql-roles
key: {{ .role }}-database-url
{{- else if and (eq $access "role") (not $v.postgresql.enabled) (not $v.externalDatabase.shareOwnerLogin) }}
{{- $ref := index $v.externalDatabase .role }}
name: {{ required (printf "externalDatabase.%s.existingSecret is required (the %s's own login; or set externalDatabase.shareOwnerLogin=true, not recommended)" .role .role) $ref.existingSecret }}
key: {{ $ref.existingSecretKey }}
{{- else }}
name: {{ include "eda.databaseSecretName" .ctx }}
key: {{ include "eda.databaseSecretKey" .ctx }}
{{- end }}
{{- end }}

{{- define "eda.otlpEndpoint" -}}
{{- if .Values.jaeger.enabled -}}
http://{{ include "eda.fullname" . }}-jaeger:{{ ternary 4317 4318 (eq .Values.otel.protocol "grpc") }}
{{- else -}}
{{ .Values.otel.endpoint }}
{{- end -}}
{{- end }}

{{/* The EDA_* and OTEL_* environment of an eda container; call with (dict "ctx" $ "role" "api"). */}}
{{- define "eda.env" -}}
{{- $v := .ctx.Values }}
- name: EDA_NATS_URL
  value: {{ include "eda.natsUrl" .ctx | quote }}
{{- $natsUser := include "eda.natsUser" . }}
{{- if and $v.nats.auth.enabled $natsUser }}
- name: EDA_NATS_USER
  value: {{ $natsUser | quote }}
- name: EDA_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "eda.natsAuthSecretName" .ctx }}
      key: {{ $natsUser }}
{{- end }}
{{- if $v.nats.tls.enabled }}
- name: EDA_NATS_TLS_CA
  value: /etc/eda/nats-tls/ca.crt
{{- end }}
{{- if include "eda.databaseAccess" . }}
- name: EDA_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- include "eda.databaseSecretRef" . | nindent 6 }}
{{- end }}
{{- if eq .role "provision" }}
- name: EDA_STREAM_REPLICAS
  value: {{ include "eda.streamReplicas" .ctx | quote }}
{{- end }}
- name: EDA_SNAPSHOT_EVERY
  value: {{ $v.config.snapshotEvery | quote }}
- name: EDA_PAYMENT_DECLINE_ABOVE
  value: {{ $v.config.paymentDeclineAbove | quote }}
- name: EDA_SAGA_STEP_TIMEOUT_S
  value: {{ $v.config.sagaStepTimeoutS | quote }}
- name: EDA_LOG_LEVEL
  value: {{ $v.config.logLevel | quote }}
- name: EDA_UI_ENABLED
  value: {{ $v.config.uiEnabled | quote }}
- name: EDA_HEALTH_PORT
  value: {{ $v.healthPort | quote }}
{{- if eq .role "api" }}
{{ include "eda.authEnv" .ctx }}
{{ include "eda.apiLimitsEnv" .ctx }}
{{- end }}
{{- with $v.jaeger.uiUrl }}
- name: EDA_JAEGER_UI_URL
  value: {{ . | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "eda-%s" .role | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=%s,service.version=%s,deployment.environment=%s" .ctx.Release.Name .ctx.Chart.AppVersion .ctx.Release.Namespace | quote }}
{{- $endpoint := include "eda.otlpEndpoint" .ctx }}
{{- if and $v.otel.enabled $endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $v.otel.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $v.otel.sampler | quote }}
{{- with $v.otel.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- else }}
{{- /* not OTEL_SDK_DISABLED: that would also remove the OpenTelemetry metrics from /metrics */}}
- name: OTEL_TRACES_EXPORTER
  value: "none"
- name: OTEL_METRICS_EXPORTER
  value: "none"
{{- end }}
{{- with $v.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A Deployment of one eda role. Call with (dict "ctx" $ "component" "projector" "role" "projector"
"args" (list "projector") "spec" .Values.projector "port" 8081 "portName" "health" "hpa" false
"serviceAccount" name "automountToken" false "strategy" "RollingUpdate"); "metricsPort" when /metrics is
served on another port than "port" (the operator's; a second port named "metrics").
*/}}
{{- define "eda.deployment" -}}
{{- $ctx := .ctx }}
{{- $spec := .spec }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "eda.fullname" $ctx }}-{{ .component }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "eda.labels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
spec:
  {{- if not .hpa }}
  replicas: {{ $spec.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    {{- if eq .strategy "Recreate" }}
    type: Recreate
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
    {{- end }}
  selector:
    matchLabels:
      {{- include "eda.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "eda.labels" (dict "ctx" $ctx "component" .component) | nindent 8 }}
        {{- with $ctx.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- /* Over the values behind the database Secrets, not their rendering: a generated password would
        make the hash random on every `helm template` (GitOps diffs, pointless restarts). Quoted: a hash
        prefix of only digits would otherwise be a YAML number. */}}
        checksum/config: {{ toYaml (dict "postgresql" (pick $ctx.Values.postgresql "enabled" "auth" "roleUsers") "externalDatabase" $ctx.Values.externalDatabase "nats" (pick $ctx.Values.nats "auth" "tls")) | sha256sum | trunc 16 | quote }}
        {{- if $ctx.Values.monitoring.scrapeAnnotations }}
        {{- /* for a Prometheus without the Operator (the kubernetes-pods scrape job) */}}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .metricsPort | default .port | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $ctx.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ .serviceAccount }}
      automountServiceAccountToken: {{ .automountToken }}
      enableServiceLinks: false
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $ctx.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ include "eda.terminationGrace" (dict "ctx" $ctx "role" .role) }}
      containers:
        - name: {{ .component }}
          image: {{ include "eda.image" $ctx }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          env:
            {{- include "eda.env" (dict "ctx" $ctx "role" .role) | nindent 12 }}
            {{- with .extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- if and .metricsPort (ne (int .metricsPort) (int .port)) }}
            - name: metrics
              containerPort: {{ .metricsPort }}
              protocol: TCP
            {{- end }}
          startupProbe:
            httpGet:
              path: {{ .livenessPath }}
              port: {{ .portName }}
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: {{ .livenessPath }}
              port: {{ .portName }}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: {{ .readinessPath }}
              port: {{ .portName }}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          {{- with include "eda.lifecycle" (dict "ctx" $ctx "role" .role) }}
          {{- . | nindent 10 }}
          {{- end }}
          resources:
            {{- toYaml $spec.resources | nindent 12 }}
          securityContext:
            {{- toYaml $ctx.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- if $ctx.Values.nats.tls.enabled }}
            - name: nats-tls-ca
              mountPath: /etc/eda/nats-tls
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- if $ctx.Values.nats.tls.enabled }}
        - name: nats-tls-ca
          secret:
            secretName: {{ include "eda.natsTlsSecretName" $ctx }}
            items:
              - key: ca.crt
                path: ca.crt
        {{- end }}
      {{- with (default .nodeSelector $spec.nodeSelector) }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default .tolerations $spec.tolerations) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default .affinity $spec.affinity) }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      topologySpreadConstraints:
        {{- if $spec.topologySpreadConstraints }}
        {{- toYaml $spec.topologySpreadConstraints | nindent 8 }}
        {{- else }}
        {{- include "eda.defaultSpread" (dict "ctx" $ctx "component" .component) | nindent 8 }}
        {{- end }}
{{- end }}

{{/* A PodDisruptionBudget; call with (dict "ctx" $ "component" "api" "pdb" .Values.api.pdb): minAvailable
when set, else maxUnavailable (the default, 1: a drain of a one-replica role proceeds instead of blocking). */}}
{{- define "eda.pdb" -}}
{{- if .pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "eda.fullname" .ctx }}-{{ .component }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "eda.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
spec:
  {{- if .pdb.minAvailable }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable }}
  {{- end }}
  {{- with .pdb.unhealthyPodEvictionPolicy }}
  unhealthyPodEvictionPolicy: {{ . }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "eda.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end }}
{{- end }}

{{/* An HPA; call with (dict "ctx" $ "component" "api" "autoscaling" .Values.api.autoscaling). */}}
{{- define "eda.hpa" -}}
{{- if .autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "eda.fullname" .ctx }}-{{ .component }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "eda.labels" (dict "ctx" .ctx "component" .component) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "eda.fullname" .ctx }}-{{ .component }}
  minReplicas: {{ .autoscaling.minReplicas }}
  maxReplicas: {{ .autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

{{/* The API's authentication (docs/security.md): EDA_AUTH_*; rendering fails without an issuer unless
auth.mode=disabled, so no release serves the API unauthenticated by omission. */}}
{{- define "eda.authEnv" -}}
{{- $a := .Values.auth }}
{{- if and (eq $a.mode "oidc") (not $a.issuer) }}
{{- fail "auth.issuer is required: the API accepts only bearer tokens of an OIDC issuer (set auth.issuer, or auth.mode=disabled to run without authentication)" }}
{{- end -}}
- name: EDA_AUTH_MODE
  value: {{ $a.mode | quote }}
{{- if eq $a.mode "oidc" }}
- name: EDA_AUTH_ISSUER
  value: {{ $a.issuer | quote }}
- name: EDA_AUTH_AUDIENCE
  value: {{ $a.audience | quote }}
{{- with $a.jwksUrl }}
- name: EDA_AUTH_JWKS_URL
  value: {{ . | quote }}
{{- end }}
- name: EDA_AUTH_SUBJECT_CLAIM
  value: {{ $a.claims.subject | quote }}
- name: EDA_AUTH_SCOPE_CLAIM
  value: {{ $a.claims.scope | quote }}
{{- with $a.claims.roles }}
- name: EDA_AUTH_ROLES_CLAIM
  value: {{ . | quote }}
{{- end }}
{{- with $a.roleScopes }}
- name: EDA_AUTH_ROLE_SCOPES
  value: {{ toJson . | quote }}
{{- end }}
{{- with $a.consoleClientId }}
- name: EDA_UI_OIDC_CLIENT_ID
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: EDA_AUTH_OPEN_ENDPOINTS
  value: {{ join "," $a.openEndpoints | quote }}
{{- end }}

{{/* "true" when the provision and migrate Jobs are Helm hooks (jobs.helmHooks: true, or "auto" with
external NATS and PostgreSQL); else they are plain Jobs named per revision. */}}
{{- define "eda.jobsAsHooks" -}}
{{- $mode := toString .Values.jobs.helmHooks -}}
{{- if eq $mode "true" -}}
true
{{- else if and (eq $mode "auto") (not .Values.nats.enabled) (not .Values.postgresql.enabled) -}}
true
{{- end -}}
{{- end }}

{{/* A Job's name; call with (dict "ctx" $ "job" "migrate"). Plain Jobs carry the revision: a Job's pod
template cannot change, and each release runs its own. */}}
{{- define "eda.jobName" -}}
{{- if include "eda.jobsAsHooks" .ctx -}}
{{ include "eda.fullname" .ctx }}-{{ .job }}
{{- else -}}
{{ include "eda.fullname" .ctx }}-{{ .job }}-{{ .ctx.Release.Revision }}
{{- end -}}
{{- end }}
