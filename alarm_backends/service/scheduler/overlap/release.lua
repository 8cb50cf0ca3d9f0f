-- The end of a run that held its entry's run lease.
-- KEYS[1]: the entry's lease; KEYS[2]: the entry's buffered slot. ARGV[1]: the run's marker.
-- Returns {released (1 or 0: no longer this run's), the buffered slot waiting for it or ''}. The buffered slot stays
-- recorded until its run takes the lease (acquire.lua), so a worker that dies before starting it loses nothing: the
-- buffered run's reminder (re-sent every lease while it waits) starts it.
if redis.call('HGET', KEYS[1], 'marker') ~= ARGV[1] then
    return {0, ''}
end
redis.call('DEL', KEYS[1])
return {1, redis.call('GET', KEYS[2]) or ''}
