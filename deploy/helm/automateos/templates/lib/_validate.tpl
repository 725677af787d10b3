{{/* Value combinations the schema cannot express; called once from the Secret template. */}}
{{- define "automateos.validate" -}}
{{- $db := .Values.database -}}
{{- if and (not $db.inCluster.enabled) (not $db.url) (not $db.existingSecret) -}}
{{- fail "PostgreSQL: set database.url, database.existingSecret, or database.inCluster.enabled=true (dev only)" -}}
{{- end -}}
{{- if and $db.inCluster.enabled (or $db.url $db.existingSecret) -}}
{{- fail "PostgreSQL: database.inCluster.enabled cannot be combined with database.url or database.existingSecret" -}}
{{- end -}}
{{- $redis := .Values.redis -}}
{{- if and (not $redis.inCluster.enabled) (not $redis.url) (not $redis.existingSecret) -}}
{{- fail "Redis: set redis.url, redis.existingSecret, or redis.inCluster.enabled=true (dev only)" -}}
{{- end -}}
{{- if and $redis.inCluster.enabled (or $redis.url $redis.existingSecret) -}}
{{- fail "Redis: redis.inCluster.enabled cannot be combined with redis.url or redis.existingSecret" -}}
{{- end -}}
{{- $keda := .Values.worker.autoscaling.keda -}}
{{- if and $keda.enabled $redis.existingSecret (not $keda.redis.address) -}}
{{- fail "worker.autoscaling.keda.redis.address (host:port) is required with redis.existingSecret: KEDA cannot read the URL from a Secret" -}}
{{- end -}}
{{- if and $keda.enabled $keda.prometheus.enabled (not $keda.prometheus.serverAddress) -}}
{{- fail "worker.autoscaling.keda.prometheus.serverAddress is required when the Prometheus trigger is on" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
{{- fail "ingress.hosts needs at least one host when ingress.enabled=true" -}}
{{- end -}}
{{- $_ := include "automateos.worker.gracePeriod" . -}}
{{- end -}}
