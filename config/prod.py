"""Production: RabbitMQ broker (host defaults to rabbitmq.service.consul), sentinel Redis unless on PaaS V3."""

DEBUG = False
CELERY_BROKER_BACKEND = "rabbitmq"
