-- Sliding log, atomically. KEYS[1]: the log (sorted set of admission times, ms).
-- ARGV: limit, window ms, a member unique to this request, '1' to peek (read the room
-- left without admitting or writing).
-- Returns {allowed, remaining, retry_after_ms, reset_ms}.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if ARGV[4] == '1' then
  local inside = '(' .. (now - window)
  local count = redis.call('ZCOUNT', KEYS[1], inside, '+inf')
  if count == 0 then return {1, limit, 0, 0} end
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], inside, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local reset = math.max(1, tonumber(newest[2]) + window - now)
  if count < limit then return {1, limit - count, 0, reset} end
  return {0, 0, math.max(1, tonumber(oldest[2]) + window - now), reset}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, limit - count - 1, 0, window}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local retry_after = math.max(1, tonumber(oldest[2]) + window - now)
local reset = math.max(1, tonumber(newest[2]) + window - now)
return {0, 0, retry_after, reset}
