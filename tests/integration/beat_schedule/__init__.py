"""``manage.py beat_schedule`` against the real Redis and a real patched scheduler ticking in this process."""
