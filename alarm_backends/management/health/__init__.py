"""``manage.py healthz``: the statuses and their report (``status``, pure), the checks against the live services
(``checks``), and the original's self-monitoring daemon (``daemon``, ``healthz -d``)."""
