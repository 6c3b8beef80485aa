# The operator image. Built by tools/image/build.sh: the base comes from debootstrap + docker import
# (no image registry needed) and the wheels from build/wheels (no network needed during the build).
ARG BASE=modelsync-base:bookworm
FROM ${BASE} AS build
COPY build/wheels /wheels
RUN python3 -m venv /opt/modelsync \
 && /opt/modelsync/bin/pip install --no-index --find-links /wheels --no-cache-dir modelsync \
 && find /opt/modelsync -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE}
COPY --from=build /opt/modelsync /opt/modelsync
ENV PATH=/opt/modelsync/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["modelsync"]
CMD ["run"]
