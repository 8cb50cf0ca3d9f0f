"""``manage.py beat_schedule``: how the schedule is shown (``view``, pure)."""
