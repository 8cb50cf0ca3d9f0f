-- The end of a run that held its entry's run lease.
-- KEYS[1]: the entry's lease; KEYS[2]: the entry's buffered slot. ARGV[1]: the run's marker; ARGV[2]: the lease in
-- milliseconds; ARGV[3]: the prefix of slot claim keys (the service DB is no Redis Cluster: see acquire.lua).
-- Returns {released (1 or 0: no longer this run's), the buffered slot to start now or ''}.
-- A buffered slot waiting is handed the lease at once (marker 'handoff', one lease long): a newer slot arriving
-- before its start finds the entry still taken, and the buffered run, not the newer one, runs next. It stays
-- recorded until its run takes the lease (acquire.lua); a start that never comes (the worker died before sending it)
-- is made good by its reminder, sent every lease while it waits, once the hand-off lease runs out.
local held = redis.call('HMGET', KEYS[1], 'marker', 'slot')
if held[1] ~= ARGV[1] then
    -- Not this run's: taken (a replace, an expiry), or already handed over by this very call, sent again after a
    -- lost reply, which then learns the slot to start again.
    if held[1] == 'handoff' then
        return {0, held[2]}
    end
    return {0, ''}
end
redis.call('DEL', KEYS[1])
local waiting = redis.call('GET', KEYS[2])
if not waiting then
    return {1, ''}
end
if redis.call('GET', ARGV[3] .. waiting) ~= 'buffered' then
    -- No longer waiting (it ran some other way, its claim expired): nothing to hand over, and nothing waits.
    redis.call('DEL', KEYS[2])
    return {1, ''}
end
local time = redis.call('TIME')
redis.call('HSET', KEYS[1], 'slot', waiting, 'marker', 'handoff', 'fence', 0, 'worker', '(handed over, starting)',
           'since', string.format('%d.%06d', time[1], time[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, waiting}
