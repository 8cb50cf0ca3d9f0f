"""Overlap policies: what a scheduled run does when the entry's previous run is still running.

Per entry (the ``overlap`` of its options, default ``CRON_DEFAULT_OVERLAP``):

* ``allow`` (the original's, and the default): runs overlap; nothing below is done;
* ``skip``: a run that finds the previous one still running is not run; it is counted, logged and written to the run
  log as ``skipped``;
* ``buffer_one``: such a run waits and runs as soon as the running one ends; at most one waits, later ones are
  skipped (Temporal's BufferOne);
* ``replace``: the running one is terminated (Celery's ``revoke(terminate=True)``, as ``celery control revoke
  --terminate`` does) and this one runs (Kubernetes' Replace).

"Still running" is a lease in the service DB that the run takes after its slot's claim (``acquire.lua``) and renews
every third of ``CRON_RUN_LEASE`` while the job runs (``renew.lua``), so a worker killed mid-run frees the entry
within one lease. Only the holder's marker renews or releases it, so a run whose lease was taken (it expired, or a
replace took it) changes nothing; each holder also gets a larger ``fence`` number than every one before, which the
logs and the schedule view show. A redelivery of a slot whose own run still holds the lease (a broker's redelivery
of a long job) is not run beside it: it is sent again for when the lease runs out, and runs then only if that run
died. A buffered run is handed the lease by the run it waited for (``release.lua``), which sends its start; the
buffering worker also sends it reminders, one per lease while it waits, so a worker that dies before sending the
start loses nothing. All of them carry the slot's own id, so it runs once.
"""

from __future__ import annotations

ALLOW, SKIP, BUFFER_ONE, REPLACE = "allow", "skip", "buffer_one", "replace"
OVERLAPS = (ALLOW, SKIP, BUFFER_ONE, REPLACE)
# The header of a buffered run's start (the hand-off and the reminders): its claim may take a slot left 'buffered'.
BUFFERED_HEADER = "bkm_buffered"
# The header of a redelivery sent again because its slot's run still held the lease: once it has run out, the slot may
# be taken over (that run died), or the copy is dropped (it ended).
TAKEOVER_HEADER = "bkm_takeover"
# The header of a run whose policy is its sender's, not the entry's (`beat_schedule backfill --overlap skip`).
OVERLAP_HEADER = "bkm_overlap"


def run_policy(header: object, entry_policy: str) -> str:
    """A run's policy: its message's ``bkm_overlap`` when it names one, the entry's otherwise."""
    return str(header) if header in OVERLAPS else entry_policy


def check_overlap(value: object) -> str:
    """An entry's ``overlap`` option, or ValueError naming the choices."""
    if value not in OVERLAPS:
        raise ValueError(f"overlap {value!r}: expected one of {', '.join(OVERLAPS)}")
    return str(value)
