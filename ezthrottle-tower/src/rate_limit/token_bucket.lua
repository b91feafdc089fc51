-- Token bucket, atomically. KEYS[1]: the bucket (hash: tokens, updated_ms).
-- ARGV: rate per second, burst. Returns {allowed, remaining, retry_after_ms, reset_ms}.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
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
  tokens = tokens - 1
  allowed = 1
else
  retry_after = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated_ms', now)
local reset = math.ceil((burst - tokens) * 1000 / rate)
redis.call('PEXPIRE', KEYS[1], math.max(reset, 1))
return {allowed, math.floor(tokens), retry_after, reset}
