-- Token bucket, atomically. KEYS[1]: the bucket (hash: tokens, updated_ms).
-- ARGV: rate per second, burst, '1' to peek (read without taking a token or writing).
-- Returns {allowed, remaining, retry_after_ms, reset_ms}.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local peek = ARGV[3] == '1'
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated_ms')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
local elapsed = math.max(0, now - updated)
tokens = math.min(burst, tokens + elapsed * rate / 1000)
local allowed = 0
local retry_after = 0
if tokens >= 1 then
  if not peek then tokens = tokens - 1 end
  allowed = 1
else
  retry_after = math.ceil((1 - tokens) * 1000 / rate)
end
local reset = math.ceil((burst - tokens) * 1000 / rate)
if not peek then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated_ms', now)
  redis.call('PEXPIRE', KEYS[1], math.max(reset, 1))
end
return {allowed, math.floor(tokens), retry_after, reset}
