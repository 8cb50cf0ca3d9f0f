-- A run of an entry with an overlap policy asks for the entry's run lease, on the Redis server's clock.
-- KEYS[1]: the entry's lease (a hash: slot, marker, fence, worker, since, and after a replace the replaced run's
-- slot and worker; it expires unless renewed); KEYS[2]: the entry's buffered slot (buffer_one: the one slot waiting
-- for the running one); KEYS[3]: the entry's fence counter (never expires: each holder's fence is larger than every
-- one before); KEYS[4]: this run's slot claim (dedupe's claim.lua took it): marked 'skipped' or 'buffered' when the
-- run is dropped or waits, so a redelivery of it is dropped too and the buffered run's starts know it still waits;
-- KEYS[5]: the entry's overlap totals (a hash: skipped, buffered, replaced; what the schedule view shows).
-- ARGV[1]: the policy (skip, buffer_one or replace); ARGV[2]: this run's slot id; ARGV[3]: this run's marker (its
-- slot claim's); ARGV[4]: the lease in milliseconds; ARGV[5]: the worker (host:pid); ARGV[6]: the prefix of slot
-- claim keys; ARGV[7]: a slot claim's TTL in seconds.
-- Returns {'acquired', fence}, {'replaced', replaced slot, its worker, fence}, {'held', milliseconds left} (this
-- very slot runs under another claim: a redelivery while it may still be alive), {'buffered', holder's slot} or
-- {'skipped', holder's slot, buffered slot or ''}.
-- The platform's service DB is a standalone or Sentinel-managed Redis: the replaced slot's claim key, built here
-- from ARGV[6], is not declared in KEYS (a Redis Cluster would refuse it).
local lease, buffered, fences, claim, totals = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local policy, slot, marker, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local function take(replaced, replaced_worker)
    local time = redis.call('TIME')
    local fence = redis.call('INCR', fences)
    redis.call('DEL', lease)
    redis.call('HSET', lease, 'slot', slot, 'marker', marker, 'fence', fence, 'worker', ARGV[5],
               'since', string.format('%d.%06d', time[1], time[2]))
    if replaced then
        -- Kept so that this call sent again (a lost reply) still answers 'replaced', and the old run is stopped.
        redis.call('HSET', lease, 'replaced', replaced, 'replaced_worker', replaced_worker)
    end
    redis.call('PEXPIRE', lease, ttl)
    if redis.call('GET', buffered) == slot then
        redis.call('DEL', buffered)  -- the buffered run is the one starting
    end
    return fence
end

local held = redis.call('HMGET', lease, 'slot', 'marker', 'fence', 'worker', 'replaced', 'replaced_worker')
local holder, holder_marker = held[1], held[2]
if not holder_marker then
    return {'acquired', take()}
end
if holder_marker == marker then
    -- This very call sent again (its first reply was lost): the lease is already this run's.
    if held[5] then
        return {'replaced', held[5], held[6] or '', tonumber(held[3])}
    end
    return {'acquired', tonumber(held[3])}
end
if holder == slot then
    if holder_marker == 'handoff' then
        return {'acquired', take()}  -- the buffered run, handed the lease by the run it waited for (release.lua)
    end
    -- A redelivery of a slot whose run holds the lease: that run may still be alive (a broker's redelivery of a
    -- long job, a reminder's after a worker restart). It may take the slot over only once the lease has run out.
    return {'held', redis.call('PTTL', lease)}
end
local claim_ttl = ARGV[7]
if policy == 'replace' then
    -- The running one is replaced: its slot is marked so a redelivery of it is dropped, and the lease changes hands
    -- now, so its renewals and its release no longer touch it.
    redis.call('SET', ARGV[6] .. holder, 'replaced', 'EX', claim_ttl)
    redis.call('HINCRBY', totals, 'replaced', 1)
    local worker = held[4] or ''
    return {'replaced', holder, worker, take(holder, worker)}
end
if policy == 'buffer_one' then
    local waiting = redis.call('GET', buffered)
    if not waiting or waiting == slot then
        redis.call('SET', buffered, slot, 'EX', claim_ttl)
        redis.call('SET', claim, 'buffered', 'EX', claim_ttl)
        if not waiting then
            redis.call('HINCRBY', totals, 'buffered', 1)  -- once per buffered run, not per reminder
        end
        return {'buffered', holder}
    end
    redis.call('SET', claim, 'skipped', 'EX', claim_ttl)
    redis.call('HINCRBY', totals, 'skipped', 1)
    return {'skipped', holder, waiting}
end
redis.call('SET', claim, 'skipped', 'EX', claim_ttl)
redis.call('HINCRBY', totals, 'skipped', 1)
return {'skipped', holder, ''}
