{{/* Egress to cluster DNS. */}}
{{- define "eda.networkPolicy.dnsEgress" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end }}

{{/* Egress of an eda pod to NATS, PostgreSQL (roles with a database URL only) and the OTLP collector
(bundled or external); call with (dict "ctx" $ "component" "api"). */}}
{{- define "eda.networkPolicy.backendEgress" -}}
{{- $component := .component -}}
{{- with .ctx -}}
{{- $np := .Values.networkPolicy -}}
{{- if ne $component "migrate" }}
{{- if .Values.nats.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "eda.selectorLabels" (dict "ctx" . "component" "nats") | nindent 10 }}
  ports:
    - port: 4222
      protocol: TCP
{{- else }}
- to:
    {{- range $np.externalEgressCidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: {{ .Values.nats.externalPort }}
      protocol: TCP
{{- end }}
{{- end }}
{{- if include "eda.databaseAccess" (dict "role" (trimPrefix "worker-" $component)) }}
{{- if .Values.postgresql.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "eda.selectorLabels" (dict "ctx" . "component" "postgresql") | nindent 10 }}
  ports:
    - port: 5432
      protocol: TCP
{{- else }}
- to:
    {{- range $np.externalEgressCidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: {{ .Values.externalDatabase.port }}
      protocol: TCP
{{- end }}
{{- end }}
{{- if .Values.jaeger.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "eda.selectorLabels" (dict "ctx" . "component" "jaeger") | nindent 10 }}
  ports:
    - port: 4317
      protocol: TCP
    - port: 4318
      protocol: TCP
{{- else if .Values.otel.endpoint }}
- to:
    {{- range $np.externalEgressCidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - port: 4317
      protocol: TCP
    - port: 4318
      protocol: TCP
    - port: 443
      protocol: TCP
{{- end }}
{{- end }}
{{- end }}
