-- The end of a scheduled run, in one round trip: its slot marked done, and its run-log entry written.
-- KEYS[1]: the slot's claim key (the service DB); KEYS[2]: the run-log stream (in the log DB, ARGV[3]).
-- ARGV[1]: the done marker; ARGV[2]: the claim's TTL in seconds; ARGV[3]: the log DB ('' without an entry);
-- ARGV[4]: the stream's approximate maximum length; ARGV[5 ..]: the entry's fields and values.
-- Both DBs are on the main Redis (the DB plan); a SELECT inside a script changes only the script's DB (since Redis
-- 2.8.12), not the calling connection's.
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] ~= '' then
    redis.call('SELECT', ARGV[3])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
end
return 1
