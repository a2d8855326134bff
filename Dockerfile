# loadkit, its bundled service and scenarios: one image for the target, the master and workers
# (docker-compose.yml, deploy/k8s/, docs/distributed.md). Every machine of a distributed run
# must run the same loadkit: build this once and use the one image everywhere.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md ./
COPY loadkit ./loadkit
COPY service ./service
COPY scenarios ./scenarios
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /work
# Locust's master port (workers connect to it) and the bundled service's port.
EXPOSE 5557 8000
CMD ["loadkit", "--help"]
