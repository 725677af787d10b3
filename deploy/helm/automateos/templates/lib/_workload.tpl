{{/* Deployment of one component: (dict "ctx" $ "component" "auth"). */}}
{{- define "automateos.deployment" -}}
{{- $cfg := index .ctx.Values .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "automateos.componentName" . }}
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
spec:
  {{- if not (include "automateos.autoscaled" .) }}
  replicas: {{ $cfg.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "automateos.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 25%
  template:
    {{- include "automateos.podTemplate" . | nindent 4 }}
{{- end -}}

{{/* ConfigMap of one component: its environment (see automateos.configData). */}}
{{- define "automateos.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "automateos.componentName" . }}
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
data:
  {{- include "automateos.configData" . | trim | nindent 2 }}
{{- end -}}

{{/* ClusterIP Service of an HTTP component. */}}
{{- define "automateos.service" -}}
{{- $cfg := index .ctx.Values .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "automateos.componentName" . }}
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
  {{- with $cfg.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $cfg.service.type }}
  selector:
    {{- include "automateos.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $cfg.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- define "automateos.pdb" -}}
{{- $cfg := index .ctx.Values .component -}}
{{- if $cfg.podDisruptionBudget.enabled -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "automateos.componentName" . }}
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
spec:
  {{- if hasKey $cfg.podDisruptionBudget "minAvailable" }}
  minAvailable: {{ $cfg.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $cfg.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "automateos.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}

{{/* CPU HPA (+ extra metrics): (dict "ctx" $ "component" "ingest" "autoscaling" <values>). */}}
{{- define "automateos.hpa" -}}
{{- $as := .autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "automateos.componentName" . }}
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "automateos.componentName" . }}
  minReplicas: {{ $as.minReplicas }}
  maxReplicas: {{ $as.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $as.targetCPUUtilizationPercentage }}
    {{- with $as.metrics }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $as.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
ServiceMonitor of an HTTP component (/metrics on its http port). honorLabels: the operator sets
a `service` target label (the Kubernetes Service's name) that would otherwise rename the
services' own `service` label (auth, workflows, ingest) to `exported_service`; the dashboard and
alerts select and group on the services' own.
*/}}
{{- define "automateos.serviceMonitor" -}}
{{- $m := .ctx.Values.monitoring.serviceMonitor -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "automateos.componentName" . }}
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
    {{- with $m.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "automateos.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: http
      path: /metrics
      honorLabels: true
      interval: {{ $m.interval }}
      scrapeTimeout: {{ $m.scrapeTimeout }}
      {{- with $m.relabelings }}
      relabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $m.metricRelabelings }}
      metricRelabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
