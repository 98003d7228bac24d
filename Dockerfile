FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY config ./config
COPY accounts ./accounts
COPY workflows ./workflows
RUN pip install -c requirements.lock .
COPY . .
RUN SECRET_KEY=build-only STATIC_MANIFEST=true python manage.py collectstatic --noinput
RUN useradd --system --uid 1000 stepwise && mkdir -p /app/var && chown stepwise /app/var
USER stepwise
EXPOSE 8000
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
