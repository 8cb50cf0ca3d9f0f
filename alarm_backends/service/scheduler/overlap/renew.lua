-- The running job's renewal of its entry's run lease.
-- KEYS[1]: the entry's lease; ARGV[1]: the run's marker; ARGV[2]: the lease in milliseconds.
-- Returns 1 (renewed) or 0 (the lease is no longer this run's: it expired and was taken, or a replace took it).
if redis.call('HGET', KEYS[1], 'marker') == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
