"""The console's audit trail: every control an operator used (pause, resume, run now), who, when, and what came of
it. The named permission ``console.operate_schedule`` (or staff status) is what lets a user use them."""

from __future__ import annotations

from django.db import models

ACTIONS = ("pause", "resume", "run")


class AuditEntry(models.Model):
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The user's name as it was: the trail outlives a deleted or renamed account.
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=[(action, action) for action in ACTIONS])
    entry = models.CharField(max_length=512)
    outcome = models.CharField(max_length=512)

    class Meta:
        ordering = ("-at", "-id")
        permissions = (("operate_schedule", "Can pause, resume and run schedule entries in the console"),)

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.entry}: {self.outcome}"
