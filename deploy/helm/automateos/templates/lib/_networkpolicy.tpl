{{/*
NetworkPolicy of one component: (dict "ctx" $ "component" "auth").
Ingress: the HTTP components from the ingress controller, this release's pods (service-to-service
calls, the helm test) and the metrics scraper; the worker from the scraper only.
Egress, each component only to what it calls (docs/kubernetes.md has the table): DNS; PostgreSQL
(auth, workflows, worker) and Redis (all) only at their configured peers; workflows to auth (JWKS);
ingest to workflows (/internal/hooks); the worker to the internet except private ranges and
never on the PostgreSQL/Redis ports; plus networkPolicy.extraEgress (e.g. an OTLP collector).
*/}}
{{- define "automateos.networkPolicy" -}}
{{- $ctx := .ctx -}}
{{- $np := $ctx.Values.networkPolicy -}}
{{- $component := .component -}}
{{- $isWorker := eq $component "worker" -}}
{{- $port := ternary "metrics" "http" $isWorker -}}
{{- $usesDatabase := has $component (list "auth" "workflows" "worker") -}}
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
  policyTypes: [Ingress, Egress]
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
  egress:
    - to:
        {{- toYaml $np.dnsPeers | nindent 8 }}
      ports:
        - {port: 53, protocol: UDP}
        - {port: 53, protocol: TCP}
    {{- if $usesDatabase }}
    {{- include "automateos.storeEgress" (dict "ctx" $ctx "store" "postgresql" "inCluster" $ctx.Values.database.inCluster.enabled "peers" $np.databaseEgress.postgresql) | nindent 4 }}
    {{- end }}
    {{- include "automateos.storeEgress" (dict "ctx" $ctx "store" "redis" "inCluster" $ctx.Values.redis.inCluster.enabled "peers" $np.databaseEgress.redis) | nindent 4 }}
    {{- if eq $component "workflows" }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "automateos.selectorLabels" (dict "ctx" $ctx "component" "auth") | nindent 14 }}
      ports:
        - {port: {{ $ctx.Values.auth.port }}, protocol: TCP}
    {{- end }}
    {{- if eq $component "ingest" }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "automateos.selectorLabels" (dict "ctx" $ctx "component" "workflows") | nindent 14 }}
      ports:
        - {port: {{ $ctx.Values.workflows.port }}, protocol: TCP}
    {{- end }}
    {{- if and $isWorker $np.worker.internet.enabled }}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            {{- with $np.worker.internet.except }}
            except:
              {{- toYaml . | nindent 14 }}
            {{- end }}
      # Every TCP port but PostgreSQL's and Redis': those are reachable only at the peers above.
      ports:
        - {port: 1, endPort: 5431, protocol: TCP}
        - {port: 5433, endPort: 6378, protocol: TCP}
        - {port: 6380, endPort: 65535, protocol: TCP}
    {{- end }}
    {{- if $isWorker }}
    {{- with $np.worker.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- end }}
    {{- with $np.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/*
Egress to PostgreSQL or Redis: (dict "ctx" $ "store" "redis" "inCluster" bool "peers" {port, to}).
In-cluster: the dev instance's pods. External: the configured peers, required (the chart cannot
resolve the URL's host, and an empty list would mean any destination).
*/}}
{{- define "automateos.storeEgress" -}}
{{- if .inCluster -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "automateos.selectorLabels" (dict "ctx" .ctx "component" .store) | nindent 10 }}
  ports:
    - {port: {{ ternary 5432 6379 (eq .store "postgresql") }}, protocol: TCP}
{{- else -}}
{{- $store := ternary .ctx.Values.database .ctx.Values.redis (eq .store "postgresql") -}}
{{/* Without a URL yet, validate.yaml says that first. */}}
{{- if and (not .peers.to) (or $store.url $store.existingSecret) -}}
{{- fail (printf "networkPolicy.databaseEgress.%s.to: list where your %s is (e.g. [{ipBlock: {cidr: 10.0.5.0/24}}]), or set networkPolicy.enabled=false" .store .store) -}}
{{- end -}}
{{- with .peers.to }}
- to:
    {{- toYaml . | nindent 4 }}
  ports:
    - {port: {{ $.peers.port }}, protocol: TCP}
{{- end }}
{{- end -}}
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
