"""The alarm back end: the scheduler app, its cron loader, the jobs and the cluster/ring machinery."""
