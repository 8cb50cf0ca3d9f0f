"""Role settings, picked by the role part of ``DJANGO_CONF_MODULE`` (``conf.<role>.<env>.<platform>``)."""
