# syntax=docker/dockerfile:1
# One image for every AutomateOS component; the Helm chart picks the command per Deployment:
#   python -m services.auth | services.workflows | services.ingest | services.worker | shared.db upgrade
# One image means one dependency resolution, one build and one layer cache for the whole
# monorepo, and the migration Job always runs the exact code the services run.
#
# BASE_IMAGE must provide Python >= 3.11 with the venv module (`python3 -m venv`); the default is
# the official slim image, `make image-test` uses a debootstrap-built Debian base instead.
ARG BASE_IMAGE=docker.io/library/python:3.12-slim-bookworm

# ---- build: resolve and install dependencies into a self-contained virtualenv --------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a source change reuses this layer.
# Behind a TLS-intercepting proxy, pass its CA bundle as a build secret (never stored in a layer):
#   --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extras = p["optional-dependencies"]; \
reqs = p["dependencies"] + [r for e in ("auth", "workflows", "ingest", "worker") for r in extras[e]]; \
print("\n".join(r for r in reqs if not r.startswith("automateos")))' > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

# Then the project itself (no dependency resolution left to do), compiled to bytecode now
# because the root filesystem is read-only at run time.
COPY shared ./shared
COPY services ./services
COPY nodes ./nodes
RUN --mount=type=cache,target=/root/.cache/pip --mount=type=secret,id=ca,required=false \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && pip install --no-deps '.[auth,workflows,ingest,worker]' \
 && python -m compileall -q /opt/venv/lib \
 && pip uninstall -y -q pip setuptools wheel

# ---- runtime: the base image + the virtualenv, nothing else ---------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG UID=10001
# A fixed numeric uid: Kubernetes can only verify runAsNonRoot for a numeric USER.
RUN useradd --uid "${UID}" --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin automateos
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTOMATEOS_DATA_DIR=/tmp/automateos
WORKDIR /tmp
USER ${UID}:${UID}
LABEL org.opencontainers.image.title="automateos" \
      org.opencontainers.image.description="AutomateOS services: pick one with the command" \
      org.opencontainers.image.source="https://github.com/automateos/automateos"
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz. No default service: the command says
# which component this container is.
CMD ["python", "-c", "print('run one of: python -m services.auth | services.workflows | services.ingest | services.worker | shared.db upgrade')"]
