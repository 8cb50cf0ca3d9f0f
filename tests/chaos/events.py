"""What the chaos app and the harness share: the queue, and the lists (in the events Redis) beats and jobs record
to, each item a JSON object with at least ``ts`` and ``pid``. Kept apart from the app module so the test process
does not import the backend app (Django set-up, two Celery apps, logging signal handlers) just for these names."""

QUEUE = "chaos"
# the one task the chaos app runs (it records a run's start and finish)
TASK = "chaos.record"
# beat: a message it published (its publish returned); ``id``
PUBLISHED = "published"
# worker: a delivery, before the dedupe decides whether it runs; ``id``, ``host``, ``redelivered``
DELIVERED = "delivered"
# worker: a run began / ran to its end; ``id``, ``host``
STARTED, FINISHED = "started", "finished"
# beat or worker: an armed fault went off; ``action``, ``published_before`` (messages counted before it), on a
# worker the ``id`` of the message it was taking
FAULT = "fault"
# A worker silent this long is dead and what it held goes back to the queue (the platform's Redis transport): the
# platform's 2 s beat and 10 s timeout, shortened so scenarios stay short.
CONSUMER_HEARTBEAT, CONSUMER_TIMEOUT = 0.5, 3.0
