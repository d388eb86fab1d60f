# The connector image: one image, one process per container (`connector worker`, `intake`, `codec-server`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY connector ./connector
COPY workflows ./workflows
COPY activities ./activities
RUN pip install --no-cache-dir . && useradd --create-home connector
USER connector
ENTRYPOINT ["connector"]
