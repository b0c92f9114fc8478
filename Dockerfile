# Slim image running the Tailor worker as a non-root user.
#   docker build -t tailor .
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -p 9108:9108 tailor
# Mount your settings at /etc/tailor/tailor.toml (see flows/defaults.toml for every key).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flows ./flows
COPY operators ./operators
COPY state ./state
COPY tailor ./tailor
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 tailor \
    && mkdir -p /etc/tailor /var/lib/tailor/.tailor \
    && cp /usr/local/lib/python3.11/site-packages/tailor/flows/defaults.toml /etc/tailor/tailor.toml \
    && chown -R tailor /var/lib/tailor
USER tailor
WORKDIR /var/lib/tailor
# Recovery snapshots (recovery.dir is relative to the working directory): keep them on a volume.
VOLUME ["/var/lib/tailor/.tailor"]
EXPOSE 9108 8080
ENV PYTHONHASHSEED=0
# The compiled steps (FISM, co-occurrence) are cached here (site-packages is not writable by
# the worker's user).
ENV NUMBA_CACHE_DIR=/var/lib/tailor/.cache/numba
STOPSIGNAL SIGTERM
ENTRYPOINT ["tailor", "--config", "/etc/tailor/tailor.toml"]
CMD ["run"]
