//! The Lua scripts of the Redis adapter (run with EVALSHA, loaded on first use). Every key a
//! script touches is passed in KEYS and carries the cluster's hash tag, so the scripts run
//! unchanged on Redis Cluster and Valkey. Time is the server's (`TIME`), so the nodes' clocks
//! need not agree.

/// Take a lease on every limit and tokens from every bucket, all or none.
/// KEYS: `nl` lease sets, then buckets. ARGV: nl, member, lease_ms, nl maxima, then per bucket
/// (per_minute, need, take). Returns {0,0,0} granted, {1,i,0} limit i full,
/// {2,j,wait_ms} bucket j short.
pub const ADMIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nl = tonumber(ARGV[1])
local member = ARGV[2]
local lease = tonumber(ARGV[3])
for i = 1, nl do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[3 + i]) then
    return {1, i - 1, 0}
  end
end
local base = 3 + nl
local level = {}
for j = 1, #KEYS - nl do
  local key = KEYS[nl + j]
  local rate = tonumber(ARGV[base + 3 * j - 2])
  local need = tonumber(ARGV[base + 3 * j - 1])
  local v = redis.call('HMGET', key, 't', 'at')
  local tokens = tonumber(v[1])
  local at = tonumber(v[2])
  if tokens == nil or at == nil then tokens = rate; at = now end
  tokens = math.min(rate, tokens + math.max(0, now - at) * rate / 60000)
  if tokens < need then
    return {2, j - 1, math.ceil((need - tokens) * 60000 / rate)}
  end
  level[j] = tokens
end
for j = 1, #KEYS - nl do
  local key = KEYS[nl + j]
  redis.call('HSET', key, 't', tostring(level[j] - tonumber(ARGV[base + 3 * j])), 'at', now)
  redis.call('PEXPIRE', key, 120000)
end
for i = 1, nl do
  redis.call('ZADD', KEYS[i], now + lease, member)
  redis.call('PEXPIRE', KEYS[i], lease * 2)
end
return {0, 0, 0}
"#;

/// Push the expiry of held leases forward. KEYS: lease sets; ARGV: lease_ms, then the member
/// held in each KEYS[i]. Returns how many leases were still there (a lease that expired
/// meanwhile is not re-created).
pub const RENEW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local n = 0
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[i + 1]) then
    redis.call('ZADD', KEYS[i], 'XX', now + lease, ARGV[i + 1])
    redis.call('PEXPIRE', KEYS[i], lease * 2)
    n = n + 1
  end
end
return n
"#;

/// Take tokens after the fact (a bucket may go into debt, at most one minute's worth).
/// KEYS[1] bucket; ARGV per_minute, tokens.
pub const DEBIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(v[1])
local at = tonumber(v[2])
if tokens == nil or at == nil then tokens = rate; at = now end
tokens = math.min(rate, tokens + math.max(0, now - at) * rate / 60000)
tokens = math.max(-rate, tokens - tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], 120000)
return 1
"#;

/// Announce a node and forget the dead ones. KEYS[1] expiry set, KEYS[2] info hash;
/// ARGV id, info JSON, ttl_ms. Returns the live node count.
pub const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, d in ipairs(dead) do redis.call('HDEL', KEYS[2], d) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"#;

/// The live nodes' info JSON. KEYS[1] expiry set, KEYS[2] info hash.
pub const NODES: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
local out = {}
for _, id in ipairs(live) do
  local v = redis.call('HGET', KEYS[2], id)
  if v then table.insert(out, v) end
end
return out
"#;
