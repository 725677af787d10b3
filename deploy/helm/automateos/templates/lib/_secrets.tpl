{{/*
Secret values the chart owns. Empty values are generated once and kept across upgrades by looking
up the Secret this release created. The result is memoised in .Values so every template of one
render (the Secret, the hook Secret, the checksum annotations) sees the same generated values.
Returns YAML: databaseUrl, redisUrl, internalToken, webhookKey, encryptionKeys, postgresPassword,
signingKeys.
*/}}
{{- define "automateos.secretValues" -}}
{{- if not (hasKey .Values "__automateosSecretValues") -}}
{{- $fullname := include "automateos.fullname" . -}}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace $fullname).data | default dict -}}
{{- $existingKeys := (lookup "v1" "Secret" .Release.Namespace (printf "%s-signing-keys" $fullname)).data | default dict -}}
{{- $v := dict -}}
{{- $pg := .Values.database.inCluster -}}
{{- $pgPassword := $pg.password | default (get $existing "POSTGRES_PASSWORD" | b64dec) | default (randAlphaNum 32) -}}
{{- $_ := set $v "postgresPassword" $pgPassword -}}
{{- if $pg.enabled -}}
{{- $_ := set $v "databaseUrl" (printf "postgresql://%s:%s@%s-postgresql:5432/%s" ($pg.username | urlquery) ($pgPassword | urlquery) $fullname $pg.database) -}}
{{- else -}}
{{- $_ := set $v "databaseUrl" .Values.database.url -}}
{{- end -}}
{{- if .Values.redis.inCluster.enabled -}}
{{- $_ := set $v "redisUrl" (printf "redis://%s-redis:6379/0" $fullname) -}}
{{- else -}}
{{- $_ := set $v "redisUrl" .Values.redis.url -}}
{{- end -}}
{{- $_ := set $v "internalToken" (.Values.secrets.internalToken | default (get $existing "AUTOMATEOS_INTERNAL_TOKEN" | b64dec) | default (randAlphaNum 48)) -}}
{{- $_ := set $v "webhookKey" (.Values.secrets.webhookKey | default (get $existing "AUTOMATEOS_WEBHOOK_KEY" | b64dec) | default (randAlphaNum 48)) -}}
{{/* One AES-256 key, "<id>:<base64 of 32 bytes>"; rotation adds keys in front (docs/credentials.md). */}}
{{- $_ := set $v "encryptionKeys" (.Values.secrets.encryptionKeys | default (get $existing "AUTOMATEOS_ENCRYPTION_KEYS" | b64dec) | default (printf "k%s:%s" (now | date "20060102") (randBytes 32))) -}}
{{- $keys := dict -}}
{{- if .Values.signingKeys.keys -}}
{{- range $kid, $pem := .Values.signingKeys.keys -}}
{{- $_ := set $keys (printf "%s.pem" $kid) $pem -}}
{{- end -}}
{{- else if $existingKeys -}}
{{- range $file, $pem := $existingKeys -}}
{{- $_ := set $keys $file ($pem | b64dec) -}}
{{- end -}}
{{- else -}}
{{/* A sortable key id: a later rotation key added as a newer date sorts after it and signs. */}}
{{- $_ := set $keys (printf "%s.pem" (now | date "2006-01-02")) (genPrivateKey "ed25519") -}}
{{- end -}}
{{- $_ := set $v "signingKeys" $keys -}}
{{- $_ := set .Values "__automateosSecretValues" $v -}}
{{- end -}}
{{- toYaml (get .Values "__automateosSecretValues") -}}
{{- end -}}

{{/*
Where each secret environment variable comes from: the chart's Secret or an existing one.
(dict "ctx" $ "hook" bool) -> YAML list of {env, secret, key, owned}. With hook=true the chart's
values come from the migration hook's own Secret, which exists before the release's objects.
*/}}
{{- define "automateos.secretRefs" -}}
{{- $ctx := .ctx -}}
{{- $own := include "automateos.fullname" $ctx -}}
{{- if .hook }}{{ $own = printf "%s-migrations" $own }}{{ end -}}
{{- $db := $ctx.Values.database -}}
{{- $redis := $ctx.Values.redis -}}
{{- $sec := $ctx.Values.secrets -}}
- env: DATABASE_URL
  {{- if and $db.existingSecret (not $db.inCluster.enabled) }}
  secret: {{ $db.existingSecret }}
  key: {{ $db.existingSecretKey }}
  owned: false
  {{- else }}
  secret: {{ $own }}
  key: DATABASE_URL
  owned: true
  {{- end }}
- env: REDIS_URL
  {{- if and $redis.existingSecret (not $redis.inCluster.enabled) }}
  secret: {{ $redis.existingSecret }}
  key: {{ $redis.existingSecretKey }}
  owned: false
  {{- else }}
  secret: {{ $own }}
  key: REDIS_URL
  owned: true
  {{- end }}
- env: AUTOMATEOS_INTERNAL_TOKEN
  {{- if $sec.existingSecret }}
  secret: {{ $sec.existingSecret }}
  key: {{ $sec.internalTokenKey }}
  owned: false
  {{- else }}
  secret: {{ $own }}
  key: AUTOMATEOS_INTERNAL_TOKEN
  owned: true
  {{- end }}
- env: AUTOMATEOS_WEBHOOK_KEY
  {{- if $sec.existingSecret }}
  secret: {{ $sec.existingSecret }}
  key: {{ $sec.webhookKeyKey }}
  owned: false
  {{- else }}
  secret: {{ $own }}
  key: AUTOMATEOS_WEBHOOK_KEY
  owned: true
  {{- end }}
- env: AUTOMATEOS_ENCRYPTION_KEYS
  {{- if $sec.existingSecret }}
  secret: {{ $sec.existingSecret }}
  key: {{ $sec.encryptionKeysKey }}
  owned: false
  {{- else }}
  secret: {{ $own }}
  key: AUTOMATEOS_ENCRYPTION_KEYS
  owned: true
  {{- end }}
{{- end -}}

{{/* data: of the chart-owned Secret (base64), only the entries not taken from existing Secrets. */}}
{{- define "automateos.ownedSecretData" -}}
{{- $ctx := .ctx -}}
{{- $values := include "automateos.secretValues" $ctx | fromYaml -}}
{{- $byEnv := dict "DATABASE_URL" $values.databaseUrl "REDIS_URL" $values.redisUrl "AUTOMATEOS_INTERNAL_TOKEN" $values.internalToken "AUTOMATEOS_WEBHOOK_KEY" $values.webhookKey "AUTOMATEOS_ENCRYPTION_KEYS" $values.encryptionKeys -}}
{{- $hookUses := include "automateos.secretsUsedBy" "migrations" | fromYamlArray -}}
{{- range (include "automateos.secretRefs" (dict "ctx" $ctx "hook" false) | fromYamlArray) }}
{{- if and .owned (or (not $.hook) (has .env $hookUses)) }}
{{ .key }}: {{ get $byEnv .env | b64enc }}
{{- end }}
{{- end }}
{{- if and $ctx.Values.database.inCluster.enabled (not .hook) }}
POSTGRES_PASSWORD: {{ $values.postgresPassword | b64enc }}
{{- end }}
{{- end -}}

{{/*
Which secret variables each component reads (checked against the code: grep the settings'
readers). The worker runs nodes on user data and the internet: it never gets the internal token
(it needs the webhook key only to derive runs' resume URLs); ingest never gets the database URL;
auth gets the internal token only (to believe the console's forwarded client address), never the
webhook key. The encryption keys go where credentials or webhook
secrets are sealed or opened: workflows, ingest, the worker, and the migration that seals old rows.
*/}}
{{- define "automateos.secretsUsedBy" -}}
{{- $used := dict
  "auth" (list "DATABASE_URL" "REDIS_URL" "AUTOMATEOS_INTERNAL_TOKEN")
  "workflows" (list "DATABASE_URL" "REDIS_URL" "AUTOMATEOS_INTERNAL_TOKEN" "AUTOMATEOS_WEBHOOK_KEY" "AUTOMATEOS_ENCRYPTION_KEYS")
  "ingest" (list "REDIS_URL" "AUTOMATEOS_INTERNAL_TOKEN" "AUTOMATEOS_WEBHOOK_KEY" "AUTOMATEOS_ENCRYPTION_KEYS")
  "worker" (list "DATABASE_URL" "REDIS_URL" "AUTOMATEOS_WEBHOOK_KEY" "AUTOMATEOS_ENCRYPTION_KEYS")
  "migrations" (list "DATABASE_URL" "AUTOMATEOS_ENCRYPTION_KEYS") -}}
{{- toYaml (get $used .) -}}
{{- end -}}

{{/* env entries for the secret variables one component reads: (dict "ctx" $ "hook" bool "component" "auth"). */}}
{{- define "automateos.secretEnv" -}}
{{- $used := include "automateos.secretsUsedBy" .component | fromYamlArray -}}
{{- range (include "automateos.secretRefs" . | fromYamlArray) }}
{{- if has .env $used }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "automateos.signingKeysSecretName" -}}
{{- .Values.signingKeys.existingSecret | default (printf "%s-signing-keys" (include "automateos.fullname" .)) -}}
{{- end -}}
