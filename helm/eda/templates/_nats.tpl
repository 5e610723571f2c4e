{{/* nats-server configuration of the bundled cluster. */}}
{{- define "eda.natsConfig" -}}
{{- $fullname := include "eda.fullname" . }}
{{- $n := .Values.nats }}
server_name: $POD_NAME
pid_file: /tmp/nats.pid
listen: 0.0.0.0:4222
http: 0.0.0.0:8222
lame_duck_duration: 30s
lame_duck_grace_period: 10s
jetstream {
  store_dir: /data/jetstream
  # Jepsen 2025: the default 2-minute fsync interval loses acknowledged writes.
  sync_interval: always
  max_memory_store: {{ $n.jetstream.maxMemoryStore }}
  max_file_store: {{ $n.jetstream.maxFileStore }}
}
{{- if gt (int $n.replicas) 1 }}
cluster {
  name: {{ $n.clusterName }}
  listen: 0.0.0.0:6222
  routes: [
    {{- range $i := until (int $n.replicas) }}
    nats://{{ $fullname }}-nats-{{ $i }}.{{ $fullname }}-nats-headless.{{ $.Release.Namespace }}.svc:6222
{{- end }}
  ]
  connect_retries: 120
}
{{- end }}
{{- if $n.tls.enabled }}
# Clients only (routes stay plain inside the cluster network; NetworkPolicies restrict them).
tls {
  cert_file: "/etc/nats-tls/tls.crt"
  key_file: "/etc/nats-tls/tls.key"
  ca_file: "/etc/nats-tls/ca.crt"
  timeout: 5
}
{{- end }}
{{- if $n.auth.enabled }}
{{ include "eda.natsAuthorization" . }}
{{- end }}
{{- end }}

{{/* Per-role NATS users of the bundled server, from files/nats-permissions.json (= app/deploy/natsauth.py);
passwords are environment references resolved by nats-server (EDA_NATS_PASSWORD_<ROLE>). */}}
{{- define "eda.natsAuthorization" -}}
{{- $perms := .Files.Get "files/nats-permissions.json" | fromJson }}
authorization {
  users: [
{{- range $role := keys $perms | sortAlpha }}
{{- $p := index $perms $role }}
    {user: {{ $role | quote }}, password: ${{ include "eda.natsPasswordVariable" $role }}, permissions: {{ $p | toJson | replace "\\u003e" ">" | replace "\\u003c" "<" | replace "\\u0026" "&" }}}
{{- end }}
  ]
}
{{- end }}

{{- define "eda.natsPasswordVariable" -}}
EDA_NATS_PASSWORD_{{ . | upper }}
{{- end }}

{{/* The NATS roles (users) in files/nats-permissions.json, sorted. */}}
{{- define "eda.natsRoles" -}}
{{- .Files.Get "files/nats-permissions.json" | fromJson | keys | sortAlpha | toJson }}
{{- end }}

{{/* The NATS user of an eda role: worker-inventory → inventory, api → api; "" for none (migrate). */}}
{{- define "eda.natsUser" -}}
{{- $user := trimPrefix "worker-" .role }}
{{- if hasKey (.ctx.Files.Get "files/nats-permissions.json" | fromJson) $user }}{{ $user }}{{ end }}
{{- end }}

{{- define "eda.natsAuthSecretName" -}}
{{- default (printf "%s-nats-auth" (include "eda.fullname" .)) .Values.nats.auth.existingSecret }}
{{- end }}

{{- define "eda.natsTlsSecretName" -}}
{{- required "nats.tls.secretName is required when nats.tls.enabled=true" .Values.nats.tls.secretName }}
{{- end }}
