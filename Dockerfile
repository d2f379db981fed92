# runherald worker image. Build: docker build -t runherald .
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY runherald ./runherald
COPY streams ./streams
COPY notifiers ./notifiers
COPY templates ./templates
COPY benchmarks ./benchmarks
RUN pip install --no-cache-dir . && useradd --system --uid 10001 herald
USER herald
EXPOSE 6066
ENTRYPOINT ["runherald"]
CMD ["worker"]
