package redisstore

import "github.com/redis/go-redis/v9"

// Every state transition is one of these scripts, so that it is atomic and
// takes one round trip. Times are unix milliseconds. Delivery hashes hold the
// fields id, evt, hook, rule, action, status, n (attempts), due, lease,
// token, err, created and updated; see codec.go.

// acceptScript checks the idempotency key, stores the event, stores its
// deliveries, indexes them as due and wakes the relays.
//
//	KEYS[1]    idempotency key   <base>idem:<hook>:<sha256 of key>
//	KEYS[2]    due index         <base>due
//	KEYS[3]    event hash        <base>evt:<id>
//	KEYS[4]    event deliveries  <base>evt:<id>:dlvs
//	KEYS[5..]  delivery hashes   <base>dlv:<id>, one per delivery
//	ARGV[1]    event id
//	ARGV[2]    received at
//	ARGV[3]    key window ends at; "0" to skip the idempotency check
//	ARGV[4]    how long Redis keeps the idempotency key (ms)
//	ARGV[5]    wake channel
//	ARGV[6]    e: number of event field/value arguments that follow
//	ARGV[7..6+e]  event fields and values
//	then       f: number of arguments per delivery, and per delivery
//	           its id, its due time and f-2 field/value arguments
//
// Returns {event id, 0} when stored, {original event id, 1} for a duplicate.
var acceptScript = redis.NewScript(`
if ARGV[3] ~= "0" then
	local held = redis.call("GET", KEYS[1])
	if held then
		local id, exp = string.match(held, "^(.*)|(%d+)$")
		if id and tonumber(exp) > tonumber(ARGV[2]) then
			return {id, 1}
		end
	end
	redis.call("SET", KEYS[1], ARGV[1] .. "|" .. ARGV[3], "PX", ARGV[4])
end
local e = tonumber(ARGV[6])
redis.call("HSET", KEYS[3], unpack(ARGV, 7, 6 + e))
local at = 7 + e
local f = tonumber(ARGV[at])
at = at + 1
local n = 0
while at <= #ARGV do
	n = n + 1
	local id = ARGV[at]
	redis.call("HSET", KEYS[4 + n], unpack(ARGV, at + 2, at + f - 1))
	redis.call("RPUSH", KEYS[4], id)
	redis.call("ZADD", KEYS[2], ARGV[at + 1], id)
	at = at + f
end
if n > 0 then
	redis.call("PUBLISH", ARGV[5], n)
end
return {ARGV[1], 0}
`)

// leaseScript leases up to n due deliveries: each gets a fresh token, its
// lease end, and is re-indexed at that end so that it falls due again if its
// worker never finishes. Ids in the index whose delivery is missing or final
// are dropped from it.
//
//	KEYS[1]    due index         <base>due
//	ARGV[1]    now
//	ARGV[2]    lease ends at
//	ARGV[3]    key base          <prefix>:{p}:
//	ARGV[4..]  n fresh lease tokens, one per delivery that may be leased
//
// Returns, per leased delivery, its hash and its event's hash as
// field/value lists.
var leaseScript = redis.NewScript(`
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, #ARGV - 3)
local out = {}
for i, id in ipairs(ids) do
	local dkey = ARGV[3] .. "dlv:" .. id
	local d = redis.call("HMGET", dkey, "status", "evt")
	if d[1] == "pending" or d[1] == "retrying" then
		redis.call("HSET", dkey, "token", ARGV[3 + i], "lease", ARGV[2])
		redis.call("ZADD", KEYS[1], ARGV[2], id)
		out[#out + 1] = redis.call("HGETALL", dkey)
		out[#out + 1] = redis.call("HGETALL", ARGV[3] .. "evt:" .. d[2])
	else
		redis.call("ZREM", KEYS[1], id)
	end
end
return out
`)

// finishScript records an attempt and, if the lease still holds, applies
// the outcome: succeeded and dead leave the due index, retrying is
// re-indexed at its next attempt.
//
//	KEYS[1]  due index        <base>due
//	KEYS[2]  delivery hash    <base>dlv:<id>
//	KEYS[3]  attempts list    <base>dlv:<id>:attempts
//	ARGV[1]  delivery id
//	ARGV[2]  lease token
//	ARGV[3]  attempt (JSON)
//	ARGV[4]  new status: succeeded, retrying or dead
//	ARGV[5]  next attempt at (retrying)
//	ARGV[6]  last error
//	ARGV[7]  updated at
//
// Returns 1 when applied, 0 when the lease was lost (the attempt is still
// recorded), -1 when there is no such delivery (nothing is recorded).
var finishScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 0 then
	return -1
end
redis.call("RPUSH", KEYS[3], ARGV[3])
local d = redis.call("HMGET", KEYS[2], "token", "status")
if ARGV[2] == "" or d[1] ~= ARGV[2] or (d[2] ~= "pending" and d[2] ~= "retrying") then
	return 0
end
redis.call("HINCRBY", KEYS[2], "n", 1)
redis.call("HSET", KEYS[2], "status", ARGV[4], "err", ARGV[6], "updated", ARGV[7])
redis.call("HDEL", KEYS[2], "token", "lease")
if ARGV[4] == "retrying" then
	redis.call("HSET", KEYS[2], "due", ARGV[5])
	redis.call("ZADD", KEYS[1], ARGV[5], ARGV[1])
else
	redis.call("HDEL", KEYS[2], "due")
	redis.call("ZREM", KEYS[1], ARGV[1])
end
return 1
`)

// deliveriesScript reads an event's deliveries in accept order.
//
//	KEYS[1]  event hash        <base>evt:<id>
//	KEYS[2]  event deliveries  <base>evt:<id>:dlvs
//	ARGV[1]  key base          <prefix>:{p}:
//
// Returns nil when there is no such event, else one field/value list per delivery.
var deliveriesScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return false
end
local out = {}
for _, id in ipairs(redis.call("LRANGE", KEYS[2], 0, -1)) do
	out[#out + 1] = redis.call("HGETALL", ARGV[1] .. "dlv:" .. id)
end
return out
`)

// attemptsScript reads a delivery's attempts in the order recorded.
//
//	KEYS[1]  delivery hash  <base>dlv:<id>
//	KEYS[2]  attempts list  <base>dlv:<id>:attempts
//
// Returns nil when there is no such delivery, else the attempts (JSON).
var attemptsScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return false
end
return redis.call("LRANGE", KEYS[2], 0, -1)
`)
