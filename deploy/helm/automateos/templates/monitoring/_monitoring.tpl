{{/*
templates/monitoring/ holds the Grafana dashboard ConfigMap and the PrometheusRule (alerts). The
ServiceMonitors (auth, workflows, ingest) and the worker's PodMonitor live in each component's
folder and are switched by monitoring.serviceMonitor.enabled / monitoring.podMonitor.enabled.
*/}}
