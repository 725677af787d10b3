{{/*
Names and labels. Shared shapes are called with (dict "ctx" $ "component" "<name>"), so every
component renders the same way and differs only by its values block.
*/}}

{{- define "automateos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "automateos.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>, the name of every object of one component. */}}
{{- define "automateos.componentName" -}}
{{- printf "%s-%s" (include "automateos.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "automateos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "auth"). */}}
{{- define "automateos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "automateos.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* Full label set: (dict "ctx" $ "component" "auth"); component may be empty. */}}
{{- define "automateos.labels" -}}
helm.sh/chart: {{ include "automateos.chart" .ctx }}
{{ include "automateos.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: automateos
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{- define "automateos.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "automateos.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "automateos.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" .Values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* In-cluster URL of an HTTP component: (dict "ctx" $ "component" "auth"). */}}
{{- define "automateos.serviceUrl" -}}
{{- $cfg := index .ctx.Values .component -}}
{{- printf "http://%s:%v" (include "automateos.componentName" .) $cfg.port -}}
{{- end -}}
