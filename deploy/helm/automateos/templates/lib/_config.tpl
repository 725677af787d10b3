{{/*
The non-secret environment of one component: (dict "ctx" $ "component" "ingest") -> YAML map.
Each component's ConfigMap holds exactly this, and its pods carry a checksum of exactly this, so a
change to one component's settings restarts only that component.
*/}}
{{- define "automateos.configData" -}}
{{- $ctx := .ctx -}}
{{- $c := $ctx.Values.config -}}
{{- $env := dict
  "AUTOMATEOS_ENV" $c.env
  "AUTOMATEOS_HOST" "0.0.0.0"
  "AUTOMATEOS_DATA_DIR" "/tmp/automateos"
  "AUTOMATEOS_AUTH_URL" (include "automateos.serviceUrl" (dict "ctx" $ctx "component" "auth"))
  "AUTOMATEOS_WORKFLOWS_URL" (include "automateos.serviceUrl" (dict "ctx" $ctx "component" "workflows"))
  "AUTOMATEOS_PUBLIC_URL" (include "automateos.publicUrl" $ctx)
  "AUTOMATEOS_QUEUE_NAME" $c.queueName
  "AUTOMATEOS_JOB_TIMEOUT_SECONDS" ($c.jobTimeoutSeconds | int64)
-}}
{{- if ne .component "worker" -}}
{{- $_ := set $env "AUTOMATEOS_TRUSTED_PROXIES" (join "," $c.trustedProxies) -}}
{{- end -}}
{{- if eq .component "auth" -}}
{{- $_ := set $env "AUTOMATEOS_PORT" ($ctx.Values.auth.port | int64) -}}
{{- $_ := set $env "AUTOMATEOS_PASSWORD_HASH_CONCURRENCY" ($ctx.Values.auth.passwordHashConcurrency | int64) -}}
{{- $_ := set $env "AUTOMATEOS_SIGNING_KEYS_DIR" (include "automateos.signingKeysDir" $ctx) -}}
{{- else if eq .component "workflows" -}}
{{- $_ := set $env "AUTOMATEOS_PORT" ($ctx.Values.workflows.port | int64) -}}
{{- $_ := set $env "AUTOMATEOS_MAX_BODY_BYTES" ($c.maxBodyBytes | int64) -}}
{{- else if eq .component "ingest" -}}
{{- $_ := set $env "AUTOMATEOS_PORT" ($ctx.Values.ingest.port | int64) -}}
{{- $_ := set $env "AUTOMATEOS_MAX_BODY_BYTES" ($c.maxBodyBytes | int64) -}}
{{- $_ := set $env "AUTOMATEOS_DEDUPE_TTL_SECONDS" ($c.dedupeTtlSeconds | int64) -}}
{{- else if eq .component "worker" -}}
{{- $_ := set $env "AUTOMATEOS_METRICS_PORT" ($ctx.Values.worker.metricsPort | int64) -}}
{{- $_ := set $env "AUTOMATEOS_EGRESS_ALLOWLIST" $c.egressAllowlist -}}
{{- end -}}
{{- $env = merge (deepCopy ((index $ctx.Values .component).extraEnv | default dict)) (deepCopy $c.extraEnv) $env -}}
{{- range $k := keys $env | sortAlpha }}
{{ $k }}: {{ get $env $k | toString | quote }}
{{- end }}
{{- end -}}

{{- define "automateos.signingKeysDir" -}}/etc/automateos/signing-keys{{- end -}}

{{- define "automateos.publicUrl" -}}
{{- if .Values.config.publicUrl -}}
{{- .Values.config.publicUrl | trimSuffix "/" -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- $host := first .Values.ingress.hosts -}}
{{- $tls := false -}}
{{- range .Values.ingress.tls }}{{ if has $host .hosts }}{{ $tls = true }}{{ end }}{{ end -}}
{{- printf "%s://%s" (ternary "https" "http" $tls) $host -}}
{{- else -}}
{{- include "automateos.serviceUrl" (dict "ctx" . "component" "ingest") -}}
{{- end -}}
{{- end -}}

{{/* The RQ list the worker consumes; the KEDA trigger reads the same key. */}}
{{- define "automateos.queueKey" -}}
{{- printf "rq:queue:%s" .Values.config.queueName -}}
{{- end -}}

{{/* Grace period: long enough for a running job to finish (job timeout + drain margin). */}}
{{- define "automateos.worker.gracePeriod" -}}
{{- $w := .Values.worker -}}
{{- if not (kindIs "invalid" $w.terminationGracePeriodSeconds) -}}
{{- if lt (int $w.terminationGracePeriodSeconds) (int .Values.config.jobTimeoutSeconds) -}}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must be >= config.jobTimeoutSeconds (%v): a scale-in would kill running jobs" $w.terminationGracePeriodSeconds .Values.config.jobTimeoutSeconds) -}}
{{- end -}}
{{- $w.terminationGracePeriodSeconds | int64 -}}
{{- else -}}
{{- add (int64 .Values.config.jobTimeoutSeconds) (int64 $w.drainSeconds) -}}
{{- end -}}
{{- end -}}
