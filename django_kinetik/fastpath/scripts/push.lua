-- Push job ids onto one tag queue and keep the "Redis still has our state"
-- marker alive, in one round trip.
--
-- KEYS[1] the tag's sorted set, KEYS[2] the marker; ARGV score, id, score, id...
-- NX: an id already queued keeps its place (a reconcile must not reorder).
-- Returns 1 if the marker was there, 0 if Redis lost its state since the last
-- reconcile (flushed or restarted): the caller then reconciles in full.
for i = 1, #ARGV, 2 do
    redis.call('ZADD', KEYS[1], 'NX', ARGV[i], ARGV[i + 1])
end
return redis.call('EXISTS', KEYS[2])
