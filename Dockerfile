# runherald worker image. Build: docker build -t runherald .
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY runherald ./runherald
COPY streams ./streams
COPY notifiers ./notifiers
COPY templates ./templates
COPY benchmarks ./benchmarks
RUN pip install --no-cache-dir . && useradd --system --uid 10001 herald \
    && mkdir -p /var/lib/runherald && chown herald /var/lib/runherald
# The SQL ledger's SQLite file (README, "The ledger in SQL"): mount a volume here to keep it across
# containers; without one a new container rebuilds it from the status topic.
ENV RUNHERALD_DATA_DIR=/var/lib/runherald
VOLUME /var/lib/runherald
USER herald
EXPOSE 6066
ENTRYPOINT ["runherald"]
CMD ["worker"]
