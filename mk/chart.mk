# Kubernetes delivery: the Helm chart and the container image, proven without a cluster.
# Tools land in .tools/ (gitignored); every fetch is idempotent.

TOOLS_DIR := .tools
HELM3 := $(TOOLS_DIR)/helm3/helm
HELM4 := $(TOOLS_DIR)/helm4/helm
CHART_PYTEST ?= -q -p no:cacheprovider

.PHONY: chart-tools chart-test image-tools image-test

chart-tools: $(STAMP) ## fetch helm 3 (+ helm 4 when available) into .tools/ and kubernetes-validate into .venv
	@$(PY) scripts/tools/fetch_helm.py --major 3 --dest $(TOOLS_DIR) >/dev/null
	@$(PY) scripts/tools/fetch_helm.py --major 4 --dest $(TOOLS_DIR) >/dev/null \
		|| echo "chart-tools: helm 4 unavailable, its tests will skip"
	@$(PY) -c 'import kubernetes_validate' 2>/dev/null \
		|| $(PY) -m pip install -q 'kubernetes-validate>=1.37'

chart-test: chart-tools ## helm lint/template (helm 3+4), strict validation for K8s 1.29+1.37, manifest tests, the chart's commands run as local processes
	HELM=$(HELM3) HELM4=$(HELM4) $(PY) -m pytest tests/deploy $(CHART_PYTEST)

image-tools: ## install podman/runc/debootstrap (apt, root) and build the local Debian base image
	scripts/tools/podman-setup.sh $(TOOLS_DIR) >/dev/null

image-test: chart-tools image-tools ## build the image with podman from the real Dockerfile, run every component from it and push a webhook through
	CONTAINERS_CONF=$(abspath $(TOOLS_DIR))/podman/containers.conf AUTOMATEOS_IMAGE_TEST=1 \
		HELM=$(HELM3) $(PY) -m pytest tests/deploy/test_image.py $(CHART_PYTEST)
