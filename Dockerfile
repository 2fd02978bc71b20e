# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=inventory_site.settings.production
WORKDIR /app
COPY pyproject.toml README.md ./
COPY inventory_site ./inventory_site
COPY inventory ./inventory
COPY warehouses ./warehouses
COPY purchasing ./purchasing
COPY templates ./templates
COPY manage.py ./
RUN pip install --no-cache-dir . \
    && useradd --system --uid 1000 stockroom \
    && python manage.py collectstatic --noinput --settings=inventory_site.settings.base
USER stockroom
EXPOSE 8000
CMD ["gunicorn", "inventory_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
