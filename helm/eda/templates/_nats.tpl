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
{{- end }}
