{{/*
How KEDA reaches Redis -> YAML {address, databaseIndex, enableTLS, auth: [secretTargetRef...]}.
Explicit worker.autoscaling.keda.redis values win; else derived from the in-cluster Redis or from
redis.url (KEDA's redis scaler wants host:port, not a URL).
*/}}
{{- define "automateos.kedaRedis" -}}
{{- $k := .Values.worker.autoscaling.keda.redis -}}
{{- $address := "" -}}{{- $db := 0 -}}{{- $tls := false -}}{{- $auth := list -}}
{{- if .Values.redis.inCluster.enabled -}}
{{- $address = printf "%s-redis:6379" (include "automateos.fullname" .) -}}
{{- else if .Values.redis.url -}}
{{- $u := urlParse .Values.redis.url -}}
{{- $address = $u.host -}}
{{- if not (regexMatch ":[0-9]+$" $address) }}{{ $address = printf "%s:6379" $address }}{{ end -}}
{{- $path := trimPrefix "/" ($u.path | default "") -}}
{{- if regexMatch "^[0-9]+$" $path }}{{ $db = atoi $path }}{{ end -}}
{{- $tls = eq $u.scheme "rediss" -}}
{{- $userinfo := $u.userinfo | default "" -}}
{{- if contains ":" $userinfo -}}
{{- $parts := splitn ":" 2 $userinfo -}}
{{- if $parts._0 -}}
{{- $auth = append $auth (dict "parameter" "username" "name" (include "automateos.fullname" .) "key" "KEDA_REDIS_USERNAME") -}}
{{- end -}}
{{- $auth = append $auth (dict "parameter" "password" "name" (include "automateos.fullname" .) "key" "KEDA_REDIS_PASSWORD") -}}
{{- end -}}
{{- end -}}
{{- if $k.passwordSecret.name -}}
{{- $auth = list (dict "parameter" "password" "name" $k.passwordSecret.name "key" ($k.passwordSecret.key | default "password")) -}}
{{- end -}}
address: {{ $k.address | default $address | quote }}
databaseIndex: {{ ternary $db $k.databaseIndex (kindIs "invalid" $k.databaseIndex) }}
enableTLS: {{ ternary $tls $k.enableTLS (kindIs "invalid" $k.enableTLS) }}
{{- with $auth }}
auth:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Redis credentials parsed out of redis.url for KEDA (added to the chart's Secret). */}}
{{- define "automateos.kedaRedisSecretData" -}}
{{- $keda := .Values.worker.autoscaling.keda -}}
{{- if and $keda.enabled .Values.redis.url (not .Values.redis.existingSecret) (not .Values.redis.inCluster.enabled) (not $keda.redis.passwordSecret.name) -}}
{{- $userinfo := (urlParse .Values.redis.url).userinfo | default "" -}}
{{- if contains ":" $userinfo -}}
{{- $parts := splitn ":" 2 $userinfo -}}
{{- if $parts._0 }}
KEDA_REDIS_USERNAME: {{ $parts._0 | b64enc }}
{{- end }}
KEDA_REDIS_PASSWORD: {{ $parts._1 | b64enc }}
{{- end -}}
{{- end -}}
{{- end -}}
