from tests.integration.conftest import rabbitmq_vhost  # noqa: F401  (the RabbitMQ fleet's own vhost)
