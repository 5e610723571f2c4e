{{/*
Rollouts and load limits (issue 17; docs/kubernetes.md § Rollouts and load limits). Kept apart from
_helpers.tpl: eda.deployment and nats.yaml only call these.
*/}}

{{/* The API's shutdown and load-limit settings (EDA_*), from api.shutdown and api.limits. */}}
{{- define "eda.apiLimitsEnv" -}}
{{- $s := .Values.api.shutdown }}
{{- $l := .Values.api.limits }}
- name: EDA_SHUTDOWN_DRAIN_S
  value: {{ $s.drainSeconds | quote }}
- name: EDA_SHUTDOWN_GRACE_S
  value: {{ $s.graceSeconds | quote }}
- name: EDA_HTTP_MAX_CONCURRENCY
  value: {{ $l.maxConcurrency | quote }}
- name: EDA_HTTP_KEEPALIVE_S
  value: {{ $l.keepAliveSeconds | quote }}
- name: EDA_RATE_LIMIT
  value: {{ $l.rateLimit | quote }}
- name: EDA_RATE_LIMIT_TRUSTED
  value: {{ $l.rateLimitTrusted | quote }}
- name: EDA_TRUSTED_PROXIES
  value: {{ join "," $l.trustedProxies | quote }}
- name: EDA_DB_COMMAND_TIMEOUT_S
  value: {{ $l.dbCommandTimeoutSeconds | quote }}
- name: EDA_DB_ACQUIRE_TIMEOUT_S
  value: {{ $l.dbAcquireTimeoutSeconds | quote }}
- name: EDA_UI_MAX_STREAMS
  value: {{ $l.consoleMaxStreams | quote }}
- name: EDA_ADMISSION_SAGA_BACKLOG
  value: {{ $l.sagaBacklog | quote }}
- name: EDA_PROJECTION_LAG_DEGRADED
  value: {{ .Values.api.projectionLagDegraded | quote }}
{{- end }}

{{/*
terminationGracePeriodSeconds of a role's pods; call with (dict "ctx" $ "role" "api"). The API's covers
the preStop sleep, the drain, the in-flight requests (EDA_SHUTDOWN_GRACE_S) and closing its clients, so
the kubelet never SIGKILLs a request the API is still finishing; the pull roles finish their in-flight
messages within 10 s and drain.
*/}}
{{- define "eda.terminationGrace" -}}
{{- if eq .role "api" -}}
{{- $s := .ctx.Values.api.shutdown -}}
{{ add (int $s.preStopSleepSeconds) (int (ceil $s.drainSeconds)) (int $s.graceSeconds) 10 }}
{{- else -}}
30
{{- end -}}
{{- end }}

{{/*
The API container's lifecycle: a preStop sleep while the pod leaves the Service's endpoints (kube-proxy,
ingress controllers and other balancers learn it asynchronously), so no new request is routed to a pod
that has stopped listening. A native sleep action (Kubernetes >= 1.30): no shell in the image needed.
*/}}
{{- define "eda.lifecycle" -}}
{{- if and (eq .role "api") (gt (int .ctx.Values.api.shutdown.preStopSleepSeconds) 0) -}}
lifecycle:
  preStop:
    sleep:
      seconds: {{ int .ctx.Values.api.shutdown.preStopSleepSeconds }}
{{- end -}}
{{- end }}

{{/*
A role's default spread (when it sets no topologySpreadConstraints of its own): replicas on different
nodes and zones where possible, never a reason to stay Pending (ScheduleAnyway). matchLabelKeys: during
a rolling update only the new ReplicaSet's pods count. Call with (dict "ctx" $ "component" "api").
*/}}
{{- define "eda.defaultSpread" -}}
{{- range $key := list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
- maxSkew: 1
  topologyKey: {{ $key }}
  whenUnsatisfiable: ScheduleAnyway
  matchLabelKeys: [pod-template-hash]
  labelSelector:
    matchLabels:
      {{- include "eda.selectorLabels" (dict "ctx" $.ctx "component" $.component) | nindent 6 }}
{{- end }}
{{- end }}

{{/*
The NATS servers' placement: a JetStream R3 stream survives one lost server only if no node holds two.
Spread over nodes with DoNotSchedule (maxSkew 1: on >= 3 schedulable nodes one server each, on fewer
nodes as even as they allow, a one-node kind cluster included) and over zones where possible;
nats.antiAffinity=required (values-production.yaml) forbids a second server on a node outright (a server
stays Pending rather than share a node: the cluster then needs as many nodes as servers).
*/}}
{{- define "eda.natsPlacement" -}}
{{- $n := .Values.nats }}
{{- $selector := include "eda.selectorLabels" (dict "ctx" . "component" "nats") }}
{{- if $n.affinity }}
affinity:
  {{- toYaml $n.affinity | nindent 2 }}
{{- else }}
affinity:
  podAntiAffinity:
    {{- if eq $n.antiAffinity "required" }}
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- $selector | nindent 12 }}
    {{- else }}
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- $selector | nindent 14 }}
    {{- end }}
{{- end }}
topologySpreadConstraints:
{{- if $n.topologySpreadConstraints }}
  {{- toYaml $n.topologySpreadConstraints | nindent 2 }}
{{- else }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: DoNotSchedule
    nodeTaintsPolicy: Honor
    labelSelector:
      matchLabels:
        {{- $selector | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- $selector | nindent 8 }}
{{- end }}
{{- end }}
