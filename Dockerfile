# The agentrunner image: API, workers and CLI (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY core ./core
COPY db ./db
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY stack ./stack
RUN pip install --no-cache-dir .
ENV AGENTRUNNER_API_HOST=0.0.0.0
EXPOSE 8000
CMD ["agentrunner", "api"]
