{{/*
NetworkPolicy of one component: (dict "ctx" $ "component" "auth").
HTTP components: ingress from the ingress controller, from this release's pods (service-to-service
calls, the helm test) and from the metrics scraper. The worker: ingress from the scraper only;
egress to DNS, PostgreSQL, Redis and the internet, never to other in-cluster services.
*/}}
{{- define "automateos.networkPolicy" -}}
{{- $ctx := .ctx -}}
{{- $np := $ctx.Values.networkPolicy -}}
{{- $isWorker := eq .component "worker" -}}
{{- $port := ternary "metrics" "http" $isWorker -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "automateos.componentName" . }}
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "automateos.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress{{ if $isWorker }}, Egress{{ end }}]
  ingress:
    {{- if not $isWorker }}
    {{- with $np.ingressControllerPeers }}
    - from:
        {{- toYaml . | nindent 8 }}
      ports:
        - {port: {{ $port }}, protocol: TCP}
    {{- end }}
    - from:
        - podSelector:
            matchLabels:
              {{- include "automateos.selectorLabels" (dict "ctx" $ctx) | nindent 14 }}
      ports:
        - {port: {{ $port }}, protocol: TCP}
    {{- end }}
    {{- with $np.metricsPeers }}
    - from:
        {{- toYaml . | nindent 8 }}
      ports:
        - {port: {{ $port }}, protocol: TCP}
    {{- end }}
  {{- if $isWorker }}
  egress:
    - to:
        {{- toYaml $np.dnsPeers | nindent 8 }}
      ports:
        - {port: 53, protocol: UDP}
        - {port: 53, protocol: TCP}
    {{- if or (not $ctx.Values.database.inCluster.enabled) (not $ctx.Values.redis.inCluster.enabled) }}
    - ports:
        {{- toYaml $np.databaseEgress.ports | nindent 8 }}
      {{- with $np.databaseEgress.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if $ctx.Values.database.inCluster.enabled }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "automateos.selectorLabels" (dict "ctx" $ctx "component" "postgresql") | nindent 14 }}
      ports:
        - {port: 5432, protocol: TCP}
    {{- end }}
    {{- if $ctx.Values.redis.inCluster.enabled }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "automateos.selectorLabels" (dict "ctx" $ctx "component" "redis") | nindent 14 }}
      ports:
        - {port: 6379, protocol: TCP}
    {{- end }}
    {{- if $np.worker.internet.enabled }}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            {{- with $np.worker.internet.except }}
            except:
              {{- toYaml . | nindent 14 }}
            {{- end }}
    {{- end }}
    {{- with $np.worker.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end -}}

{{/* A dev database accepts only this release's pods: (dict "ctx" $ "component" "redis" "port" 6379). */}}
{{- define "automateos.devNetworkPolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "automateos.componentName" . }}
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "automateos.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              {{- include "automateos.selectorLabels" (dict "ctx" .ctx) | nindent 14 }}
      ports:
        - {port: {{ .port }}, protocol: TCP}
{{- end -}}
