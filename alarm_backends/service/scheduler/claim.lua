-- A worker's claim of a scheduled slot, decided on the Redis server's clock.
-- KEYS[1]: the slot's claim key. ARGV[1]: this claim's running marker ('running:<random>'; a worker before it wrote
-- 'running'); ARGV[2]: the claim's TTL in seconds; ARGV[3]: the run's deadline (epoch seconds on this server's clock,
-- from the bkm_deadline header), or '' for none; ARGV[4]: '1' when the broker redelivered the message; ARGV[5]: '1'
-- for a start of a buffered run (overlap/acquire.lua left its slot 'buffered' while another run held the entry);
-- a redelivery may take such a slot too.
-- Returns {'expired', now} (past its deadline: not run), {'claimed'} (also for this claim sent again), {'taken_over'}
-- (a redelivery of a run that never finished) or {'duplicate', what the slot holds} (already ran or running).
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
if ARGV[3] ~= '' and now > tonumber(ARGV[3]) then
    return {'expired', string.format('%.3f', now)}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
    return {'claimed'}
end
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
    -- This very claim sent again: its first reply was lost (a timeout, a dropped connection) and the caller retried.
    return {'claimed'}
end
if ARGV[4] == '1' and held and string.sub(held, 1, 7) == 'running' then
    return {'taken_over'}
end
if (ARGV[5] == '1' or ARGV[4] == '1') and held == 'buffered' then
    -- A start of the buffered run, or the redelivery of its first delivery (its worker died before it sent the
    -- reminder): overlap/acquire.lua decides again whether it runs or still waits.
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return {'claimed'}
end
return {'duplicate', held or ''}
