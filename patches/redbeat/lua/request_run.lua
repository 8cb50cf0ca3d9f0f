-- Ask the leader to run an entry once, now (`beat_schedule run`). The leader publishes the request on its next tick
-- under the id `<name>@<request epoch ms>` and clears it in its fenced commit (commit.lua). HSETNX: while a request
-- is pending another one joins it, so two operators asking at once get one run.
-- KEYS[1]: the entry's hash; KEYS[2]: the run-now requests (hash: entry name → epoch ms); ARGV[1]: the entry's name.
-- Returns {exists (1/0), created (1/0), the pending request (epoch ms) or false}.
-- This script writes after reading TIME: Redis < 5 allows that only with effects replication (a no-op since 7).
redis.replicate_commands()
if redis.call('HEXISTS', KEYS[1], 'definition') == 0 then
    return {0, 0, false}
end
local time = redis.call('TIME')
local stamp = string.format('%d%03d', tonumber(time[1]), math.floor(tonumber(time[2]) / 1000))
local created = redis.call('HSETNX', KEYS[2], ARGV[1], stamp)
return {1, created, redis.call('HGET', KEYS[2], ARGV[1])}
