"""Development: standalone Redis, console logs, and Redis as the broker unless a RabbitMQ host is given."""

import os

DEBUG = True
CELERY_BROKER_BACKEND = "rabbitmq" if os.environ.get("BK_MONITOR_RABBITMQ_HOST") else "redis"
