# Observability: the dashboard, the alert rules and a real Prometheus scraping a real local stack.
# See docs/observability.md. Prometheus comes from Debian (2.42 on bookworm), like CI machines get it.

METRICS_PYTEST ?= -q -p no:cacheprovider

.PHONY: metrics-tools metrics-test metrics-dashboard

metrics-tools: ## install prometheus + promtool from Debian when missing (apt, needs root)
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "metrics-tools: run as root, or: sudo apt-get install --no-install-recommends prometheus" >&2; \
		exit 1; \
	fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends prometheus >/dev/null

metrics-test: $(STAMP) metrics-tools ## run PostgreSQL, Redis, every service and Prometheus locally, send traffic, check every panel, alert and label
	AUTOMATEOS_METRICS_TEST=1 $(PY) -m pytest tests/observability $(METRICS_PYTEST)

metrics-dashboard: $(STAMP) metrics-tools ## redraw docs/dashboard.png from live data (needs Debian's chromium)
	@command -v chromium >/dev/null || { echo "metrics-dashboard: apt-get install -y --no-install-recommends chromium" >&2; exit 1; }
	$(PY) -m tests.observability.render_dashboard docs/dashboard.png
