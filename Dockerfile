# The operator image: `docker build .` on the official slim Python image. The first stage builds the
# wheels of modelsync and its runtime dependencies and installs them into a virtualenv; the final
# stage keeps only that virtualenv and runs it as an unprivileged user (uid 65532), on a root
# filesystem that may be read-only (nothing is written at run time; bytecode is compiled here).
#
# Without an image registry (`make image`, tools/image/build.sh): BASE is a local Debian image made
# with debootstrap, and WHEELS names a directory of the build context holding every wheel needed,
# built on the host, so that the build downloads nothing.
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ARG WHEELS=
WORKDIR /src
COPY . .
RUN set -eu; \
    python3 -m venv /opt/modelsync; \
    if [ -n "$WHEELS" ]; then \
      cp -r "$WHEELS" /wheels; \
    else \
      /opt/modelsync/bin/pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .; \
    fi; \
    /opt/modelsync/bin/pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /wheels modelsync; \
    /opt/modelsync/bin/pip uninstall --yes --quiet pip setuptools; \
    /opt/modelsync/bin/modelsync --version

FROM ${BASE}
RUN echo 'modelsync:x:65532:65532:modelsync:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'modelsync:x:65532:' >> /etc/group
COPY --from=build /opt/modelsync /opt/modelsync
ENV PATH=/opt/modelsync/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="modelsync" \
      org.opencontainers.image.description="Kubernetes operator that keeps Model and ModelService resources in sync with AI model registries" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
# 8080: /healthz (liveness and readiness); 9090: Prometheus metrics
EXPOSE 8080 9090
ENTRYPOINT ["modelsync"]
CMD ["run"]
