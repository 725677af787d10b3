{{/*
The pod template of one long-running component: (dict "ctx" $ "component" "auth").
HTTP components listen on .port (container port "http"); the worker serves /healthz, /readyz and
/metrics on .metricsPort (container port "metrics"). Same command as locally: python -m services.<component>.
*/}}
{{- define "automateos.podTemplate" -}}
{{- $ctx := .ctx -}}
{{- $component := .component -}}
{{- $cfg := index $ctx.Values $component -}}
{{- $isWorker := eq $component "worker" -}}
{{- $portName := ternary "metrics" "http" $isWorker -}}
metadata:
  labels:
    {{- include "automateos.labels" . | nindent 4 }}
    {{- with $cfg.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "automateos.configData" . | sha256sum }}
    {{- $owned := include "automateos.ownedSecretData" (dict "ctx" $ctx "hook" false) }}
    {{- if $owned }}
    checksum/secret: {{ $owned | sha256sum }}
    {{- end }}
    {{- if and (eq $component "auth") (not $ctx.Values.signingKeys.existingSecret) }}
    checksum/signing-keys: {{ (include "automateos.secretValues" $ctx | fromYaml).signingKeys | toYaml | sha256sum }}
    {{- end }}
    {{- with $cfg.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "automateos.serviceAccountName" $ctx }}
  automountServiceAccountToken: {{ $ctx.Values.serviceAccount.automountServiceAccountToken }}
  {{- with $ctx.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $ctx.Values.podSecurityContext | nindent 4 }}
  {{- if $isWorker }}
  # >= the job timeout: on SIGTERM the worker stops taking jobs and finishes the running one.
  terminationGracePeriodSeconds: {{ include "automateos.worker.gracePeriod" $ctx }}
  {{- else }}
  terminationGracePeriodSeconds: 30
  {{- end }}
  {{- with $cfg.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $cfg.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $cfg.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $cfg.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $cfg.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ $component }}
      image: {{ include "automateos.image" $ctx }}
      imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
      command: ["python", "-m", "services.{{ $component }}"]
      {{- if $isWorker }}
      args:
        - "--processes"
        - {{ $cfg.processes | int64 | toString | quote }}
        - "--concurrency"
        - {{ $cfg.concurrency | int64 | toString | quote }}
      {{- end }}
      ports:
        - name: {{ $portName }}
          containerPort: {{ ternary $cfg.metricsPort $cfg.port $isWorker }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "automateos.componentName" . }}
      env:
        {{- include "automateos.secretEnv" (dict "ctx" $ctx "hook" false "component" $component) | trim | nindent 8 }}
      startupProbe:
        httpGet: {path: /healthz, port: {{ $portName }}}
        {{- toYaml $cfg.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet: {path: /healthz, port: {{ $portName }}}
        {{- toYaml $cfg.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet: {path: /readyz, port: {{ $portName }}}
        {{- toYaml $cfg.probes.readiness | nindent 8 }}
      {{- if not $isWorker }}
      lifecycle:
        # Keep serving while the endpoint removal reaches every node and ingress controller;
        # then uvicorn drains in-flight requests (well within the 30 s grace period).
        preStop:
          exec: {command: ["sleep", "5"]}
      {{- end }}
      resources:
        {{- toYaml $cfg.resources | nindent 8 }}
      securityContext:
        {{- toYaml $ctx.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        # The root filesystem is read-only; /tmp is the only writable place.
        - name: tmp
          mountPath: /tmp
        {{- if eq $component "auth" }}
        - name: signing-keys
          mountPath: {{ include "automateos.signingKeysDir" $ctx }}
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- if eq $component "auth" }}
    - name: signing-keys
      secret:
        secretName: {{ include "automateos.signingKeysSecretName" $ctx }}
        defaultMode: 0440
    {{- end }}
{{- end -}}

{{/* Whether an autoscaler owns the replica count: (dict "ctx" $ "component" "worker"). */}}
{{- define "automateos.autoscaled" -}}
{{- $cfg := index .ctx.Values .component -}}
{{- if eq .component "worker" -}}
{{- if or $cfg.autoscaling.keda.enabled $cfg.autoscaling.hpa.enabled }}true{{ end -}}
{{- else if $cfg.autoscaling.enabled }}true{{ end -}}
{{- end -}}
