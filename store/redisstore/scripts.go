package redisstore

import (
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/store"
)

// Every state transition is one of these scripts, so that it is atomic and
// takes one round trip. Times are unix milliseconds. Events are strings
// (codec.go). Delivery hashes hold the fields evt, hook, rule, action,
// status, n (attempts), due, lease, token, err, created and updated (and
// id, in those stored by earlier versions); action state hashes hold
// action, paused, breaker, failures, opens, blocked, changed, err and
// version; see codec.go.
//
// A delivery waiting for an attempt is in its action's queue
// (<base>q:<action>) scored by its due time; a leased one is in its
// action's lease set (<base>lease:<action>) scored by its lease's end,
// never in both. Scripts that do not get these keys as KEYS build them from
// the key base and the delivery's stored action, as keys.go does.

// eventLua holds the helpers that read an event's stored string (codec.go).
// evhead parses its head: the status letter, the received time, the hook
// and the position (from 1) at which its records start; nil when v is not
// an event. evdlvs lists the delivery ids among its records.
const eventLua = `
local function evhead(v)
	local s, recv, ml, bl, hook, at = string.match(v, "^(%a)(%d+)|(%d+)|(%d+)%a?|([^\n]*)\n()")
	if not s then
		return nil
	end
	return s, tonumber(recv), hook, at + tonumber(ml) + 1 + tonumber(bl)
end

local function evdlvs(v, r)
	local out = {}
	for tag, val in string.gmatch(string.sub(v, r), "\n(.)([^\n]*)") do
		if tag == "D" then
			out[#out + 1] = val
		end
	end
	return out
end
`

// enqueueLua holds enqueue, which stores, queues and indexes the
// deliveries of event evt whose arguments are ARGV[at..last]: per delivery
// its id, due time, action, lane ("" for none), creation, hook, rule, its
// hand-off (below), x, then x field/value arguments of the fields a new
// delivery may have set besides (err, updated). Its hash gets these
// fields, with status "pending"; a field left out reads as zero or empty.
// KEYS[queues] is the set of queued actions, and the deliveries' keys
// start at KEYS[first]: each delivery's hash, listing index, action queue,
// lane and its action's lanes, five by five; a delivery in no lane names
// its queue for the last two, or, when it is offered to the caller, its
// action's lease set and state. The sorted-set and set members it adds go
// through zadd(key, score, member) and sadd(key, member), which may write
// at once (zaddNow, saddNow) or gather the writes of a whole batch
// (acceptScript). It returns the number of deliveries stored, the number
// of those queued (not handed off), and which were handed off: nil for
// none, else a string of one letter per delivery, "1" handed off, "0" not.
// Scores go to Redis as strings: a Lua number would be formatted by Lua
// and parsed again by the command, on every member. Deliveries take nine
// arguments and their extra fields each, so that the field names, the
// status and what other arguments carry already (the event, the due time,
// the action, the lane, the creation) are not sent again for every
// delivery.
//
// A delivery in a lane joins the lane, a sorted set of the ids of its
// deliveries not final (<base>lane:<action>:<sha1 of the lane>) scored by
// place: its creation, or one more than the score of the lane's last
// delivery when that is not less, so that the lane keeps the order of the
// accepts even within one millisecond (ids made in one millisecond sort by
// their random part). It is queued only when the lane has no active delivery, the
// one queued or held, which the action's lanes hash names
// (<base>lanes:<action>: sha1 of the lane → the active delivery's id).
// The lane's own writes are never gathered: the next delivery of the same
// lane, in the same batch, reads them.
//
// A delivery in no lane may be offered to the caller (store.HandOff): its
// hand-off argument is then "<lease end>|<now>|<cap>|<token>", else "".
// It is leased to the caller, as leaseScript would lease it at now, when
// its action's state is neither paused nor blocked (a breaker probe is
// leaseScript's to take) and, with a cap above 0, the action's live leases
// are fewer: its hash gets the token and the lease's end, and it joins the
// lease set at that end instead of the queue. Its lease set gets the
// member at once, so that the next delivery offered counts it. On a
// partitioned store, whose actions' states and caps are kept in partition
// 0, reserveScript has let the delivery through before the accept: its cap
// is then "r", and the last key of the five names its queue, like a
// delivery in no lane.
const enqueueLua = `
-- The actions of the deliveries enqueue queued (not handed off), each
-- once, in the order first queued: what a wake-up names.
local queuedSeen, queuedActions = {}, {}

local function zaddNow(key, score, member)
	redis.call("ZADD", key, score, member)
end

local function saddNow(key, member)
	redis.call("SADD", key, member)
end

-- handOff returns the token and lease end of an offered delivery that is
-- leased to the caller, nil when it is queued.
local function handOff(hand, lkey, akey)
	local untl, now, cap, token = string.match(hand, "^(%d+)|(%d+)|(%w+)|(.+)$")
	if not token then
		return nil
	end
	if cap == "r" then
		return token, untl
	end
	local s = redis.call("HMGET", akey, "paused", "blocked")
	if s[1] == "1" or tonumber(s[2]) then
		return nil
	end
	cap = tonumber(cap)
	if cap > 0 and redis.call("ZCOUNT", lkey, "(" .. now, "+inf") >= cap then
		return nil
	end
	return token, untl
end

local function enqueue(at, last, evt, queues, first, zadd, sadd)
	local n, queued, handed = 0, 0, nil
	while at <= last do
		local id, due, action, lane, created = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
		local hand, x = ARGV[at + 7], tonumber(ARGV[at + 8])
		local k = first + 5 * n
		n = n + 1
		local token, untl
		if lane == "" and hand ~= "" then
			token, untl = handOff(hand, KEYS[k + 3], KEYS[k + 4])
		end
		if token then
			redis.call("HSET", KEYS[k], "evt", evt, "hook", ARGV[at + 5], "rule", ARGV[at + 6], "action", action,
				"status", "pending", "due", due, "created", created, "token", token, "lease", untl,
				unpack(ARGV, at + 9, at + 8 + x))
			redis.call("ZADD", KEYS[k + 3], untl, id)
			handed = handed or {}
			handed[n] = "1"
		elseif lane == "" then
			redis.call("HSET", KEYS[k], "evt", evt, "hook", ARGV[at + 5], "rule", ARGV[at + 6], "action", action,
				"status", "pending", "due", due, "created", created, unpack(ARGV, at + 9, at + 8 + x))
		else
			redis.call("HSET", KEYS[k], "evt", evt, "hook", ARGV[at + 5], "rule", ARGV[at + 6], "action", action,
				"status", "pending", "due", due, "created", created, "lane", lane, unpack(ARGV, at + 9, at + 8 + x))
		end
		zadd(KEYS[k + 1], "0", id)
		local queue = not token
		if lane ~= "" then
			local lh = redis.sha1hex(lane)
			local place = created
			local tail = redis.call("ZRANGE", KEYS[k + 3], -1, -1, "WITHSCORES")[2]
			if tail and tonumber(tail) >= tonumber(created) then
				place = string.format("%.0f", tonumber(tail) + 1)
			end
			redis.call("ZADD", KEYS[k + 3], place, id)
			local active = redis.call("HGET", KEYS[k + 4], lh)
			if active and active ~= id then
				queue = false
			else
				redis.call("HSET", KEYS[k + 4], lh, id)
			end
		end
		if queue then
			zadd(KEYS[k + 2], due, id)
		end
		if not token then
			queued = queued + 1
			if not queuedSeen[action] then
				queuedSeen[action] = true
				queuedActions[#queuedActions + 1] = action
			end
		end
		sadd(KEYS[queues], action)
		at = at + 9 + x
	end
	if handed then
		for i = 1, n do
			handed[i] = handed[i] or "0"
		end
		handed = table.concat(handed)
	end
	return n, queued, handed
end
`

// laneLua holds laneNext, which a script calls when the delivery id of
// action, in lane (its stored lane field), became final: it leaves the
// lane, and when it was the lane's active delivery, the first one waiting
// becomes active and is queued at its due time. It returns 1 when it
// queued one. The including script sets base first.
const laneLua = `
local function laneNext(base, action, lane, id)
	if not lane or lane == "" then
		return 0
	end
	local lh = redis.sha1hex(lane)
	local lkey, hkey = base .. "lane:" .. action .. ":" .. lh, base .. "lanes:" .. action
	redis.call("ZREM", lkey, id)
	if redis.call("HGET", hkey, lh) ~= id then
		return 0
	end
	local head = redis.call("ZRANGE", lkey, 0, 0)[1]
	if not head then
		redis.call("HDEL", hkey, lh)
		return 0
	end
	redis.call("HSET", hkey, lh, head)
	local due = redis.call("HGET", base .. "dlv:" .. head, "due")
	redis.call("ZADD", base .. "q:" .. action, tonumber(due) or 0, head)
	return 1
end
`

// acceptScript accepts a batch of events, in order, each as one accept:
// it checks the event's idempotency key, stores the event and its
// deliveries, queues them and indexes both for listing. Events stay
// separate (a duplicate later in the batch meets its original earlier in
// it); what they share is the batch's writes to the same sorted sets and
// sets, gathered and sent as one ZADD or SADD per key at the end, so that
// a batch of one hook's events costs three commands per event (SET NX GET,
// SET, HSET) and a handful per batch. All keys of a call must be in one
// slot: on a Redis Cluster a call holds one partition's events. The relays
// are woken by the caller, once per batch (commit.go), unless the call
// offers deliveries to the caller (store.HandOff, enqueueLua): it then
// names the wake channel, and the script wakes the relays for the
// deliveries it queued, if any, with a message that names their actions
// (wakePayload).
//
//	ARGV[1]    n: the number of events
//	ARGV[2]    the wake channel, or "" when the caller wakes the relays
//	ARGV[3..]  per event, two by two: how many keys and how many
//	           arguments it has; its keys follow those of the events
//	           before it in KEYS, its arguments those of the events
//	           before it in ARGV, after these counts
//
// Each event's keys, from its first:
//
//	1          idempotency key        <base>idem:<hook>:<sha256 of key>
//	2          queued actions         <base>queues
//	3          event                  <base>evt:<id>
//	4          the event's index      <base>ix:e:<status letter>:<hook>
//	5          listing indexes        <base>ix
//	6..        per delivery: its hash <base>dlv:<id>, its index
//	           <base>ix:d:<hook>|<action>, its action's queue
//	           <base>q:<action>, its lane <base>lane:<action>:<sha1> and
//	           its action's lanes <base>lanes:<action> (see enqueueLua)
//
// and its arguments, from its first:
//
//	1          event id
//	2          received at
//	3          key window ends at; "0" to skip the idempotency check
//	4          how long Redis keeps the idempotency key (ms)
//	5          the event's stored string, its deliveries' records included
//	6          "1" when the caller waits for replicas: a duplicate then
//	           writes too (see the script)
//	7          m: number of index names that follow (members of key 5),
//	           registered whatever becomes of the event: the caller sends
//	           those of every event of the call with its first event,
//	           and none with the others (acceptCommand)
//	then       its deliveries' arguments (see enqueueLua)
//
// A duplicate's arrival is recorded on the original event, which shares
// the idempotency key's partition, as a record "U<arrival number>|<received
// at>"; only the last maxArrivals such records are kept.
//
// Returns, per event, {event id, 0, handed off} when stored, {original
// event id, 1, ""} for a duplicate, all in one flat list; handed off is ""
// when no delivery was, else a letter per delivery (see enqueueLua).
var acceptScript = redis.NewScript(eventLua + enqueueLua + `
local maxArrivals = ` + strconv.Itoa(store.MaxDuplicateArrivals) + `
-- The batch's gathered writes: per key, in the order first met, the
-- sorted set's score/member pairs and the set's members (each once).
local zkeys, zpairs, skeys, smembers = {}, {}, {}, {}
local function zadd(key, score, member)
	local t = zpairs[key]
	if not t then
		t = {}
		zpairs[key] = t
		zkeys[#zkeys + 1] = key
	end
	t[#t + 1] = score
	t[#t + 1] = member
end
local function sadd(key, member)
	local t = smembers[key]
	if not t then
		t = {seen = {}}
		smembers[key] = t
		skeys[#skeys + 1] = key
	end
	if not t.seen[member] then
		t.seen[member] = true
		t[#t + 1] = member
	end
end

-- accept1 accepts the event whose keys follow KEYS[kb] and whose last
-- argument is ARGV[last], its first ARGV[ab + 1].
local function accept1(kb, ab, last)
	local id = ARGV[ab + 1]
	local m = tonumber(ARGV[ab + 7])
	for i = 8, 7 + m do
		sadd(KEYS[kb + 5], ARGV[ab + i])
	end
	if ARGV[ab + 3] ~= "0" then
		local val = id .. "|" .. ARGV[ab + 3]
		local held = redis.call("SET", KEYS[kb + 1], val, "NX", "GET", "PX", ARGV[ab + 4])
		if held then
			local oid, exp = string.match(held, "^(.*)|(%d+)$")
			if oid and tonumber(exp) > tonumber(ARGV[ab + 2]) then
				local okey = string.sub(KEYS[kb + 3], 1, #KEYS[kb + 3] - #id) .. oid
				local v = redis.call("GET", okey)
				local _, _, _, r
				if v then
					_, _, _, r = evhead(v)
				end
				if r then
					local keep, arrivals, n = {}, {}, 0
					for rec, tag in string.gmatch(string.sub(v, r), "(\n(.)[^\n]*)") do
						if tag == "U" then
							arrivals[#arrivals + 1] = rec
							n = tonumber(string.match(rec, "^\nU(%d+)|")) or n
						else
							keep[#keep + 1] = rec
						end
					end
					for i = math.max(1, #arrivals - maxArrivals + 2), #arrivals do
						keep[#keep + 1] = arrivals[i]
					end
					keep[#keep + 1] = "\nU" .. (n + 1) .. "|" .. ARGV[ab + 2]
					redis.call("SET", okey, string.sub(v, 1, r - 1) .. table.concat(keep))
				end
				if ARGV[ab + 6] == "1" then
					-- A write of its own, replicated after the original's, so
					-- that the caller's WAIT covers the original too.
					redis.call("PEXPIRE", KEYS[kb + 1], ARGV[ab + 4])
				end
				return oid, 1
			end
			redis.call("SET", KEYS[kb + 1], val, "PX", ARGV[ab + 4])
		end
	end
	redis.call("SET", KEYS[kb + 3], ARGV[ab + 5])
	zadd(KEYS[kb + 4], "0", id)
	local _, queued, handed = enqueue(ab + 8 + m, last, id, kb + 2, kb + 6, zadd, sadd)
	return id, 0, queued, handed
end

local n = tonumber(ARGV[1])
local out = {}
local kb, ab = 0, 2 + 2 * n
local woken = 0
for i = 1, n do
	local nk, na = tonumber(ARGV[2 * i + 1]), tonumber(ARGV[2 * i + 2])
	local id, dup, queued, handed = accept1(kb, ab, ab + na)
	out[#out + 1] = id
	out[#out + 1] = dup
	out[#out + 1] = handed or ""
	woken = woken + (queued or 0)
	kb, ab = kb + nk, ab + na
end
-- Rounds of at most 2000 values (1000 pairs or 2000 members) keep unpack
-- below Lua's stack limit.
local function flush(cmd, keys, values)
	for _, key in ipairs(keys) do
		local t = values[key]
		for j = 1, #t, 2000 do
			redis.call(cmd, key, unpack(t, j, math.min(j + 1999, #t)))
		end
	end
end
flush("ZADD", zkeys, zpairs)
flush("SADD", skeys, smembers)
if ARGV[2] ~= "" and woken > 0 then
	redis.call("PUBLISH", ARGV[2], woken .. " " .. table.concat(queuedActions, " "))
end
return out
`)

// leaseScript serves every quota of a lease request. Per action it applies
// the gate of store.Gate to the action's stored state (paused: none;
// blocked until later: none; blocked until now or earlier: one probe, after
// which the state becomes store.Probing's), then takes leases that ended
// unrenewed, then due deliveries, earliest first. Each leased delivery gets
// a fresh token and its lease's end, and moves to the lease set at that
// end. Ids whose delivery is missing or not pending or retrying are dropped
// from the queue or lease set they were found in.
//
//	KEYS       per quota: the action's queue <base>q:<action>, its lease
//	           set <base>lease:<action> and its state <base>act:<action>
//	ARGV[1]    now
//	ARGV[2]    lease ends at, > now
//	ARGV[3]    key base               <prefix>:{p}:
//	ARGV[4]    token head: the i-th lease of this call gets head..i
//	then       per quota, six by six: how many deliveries to take at
//	           most, when a probe would end, the most live leases the
//	           action may have (0: no cap), the gate: "" to apply the
//	           stored state's, or the gate gateScript applied already in
//	           another slot ("p" paused, "0" open, or the time until
//	           which the action is blocked; the state key is then not
//	           read, and the quota's want is final), the token
//	           offset: "" to number the leases head..i across the call,
//	           or n to name the quota's k-th lease head..q.."."..(n+k),
//	           q the quota's place, as gateScript names its placeholders,
//	           and the caller's leases being recorded
//	           (store.ActionQuota.Recording): "" or a JSON array of
//	           delivery id, token, id, token…, those of which still live
//	           the cap does not count
//
// Returns {next due, per quota next due, delivery, event, delivery, event,
// …}: next due is the earliest time at which one of the actions not paused
// has a delivery due (or its lease ending), no earlier than the action's
// block; 0 when none; the list that follows is that time for each quota.
// Each delivery is its field/value list, which ends with its new token and
// lease (they win over any read before them) and its id; each event is its
// stored string, "" when missing.
//
// The client sends a script again when its reply did not come in time. A
// second run of the same call finds the first run's leases in the lease
// sets at their end (ARGV[2]), their tokens starting with the call's head,
// and hands them back, with now as next due, instead of leasing anew and
// leaving those held, unseen, until they end.
var leaseScript = redis.NewScript(`
local now, untl, base, head = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local nexts = {}
local out, seq, nextDue = {0, nexts}, 0, nil
-- fields2 returns the values of fields a and b in the field/value list d.
local function fields2(d, a, b)
	local x, y
	for j = 1, #d, 2 do
		if d[j] == a then
			x = d[j + 1]
		elseif d[j] == b then
			y = d[j + 1]
		end
	end
	return x, y
end

-- A second run of this call? Its leases end at untl and their tokens
-- start with head.
local again = false
for i = 1, #KEYS / 3 do
	nexts[i] = 0
	for _, id in ipairs(redis.call("ZRANGEBYSCORE", KEYS[3 * i - 1], untl, untl)) do
		local d = redis.call("HGETALL", base .. "dlv:" .. id)
		local token, evt = fields2(d, "token", "evt")
		if token and string.sub(token, 1, #head) == head then
			again = true
			d[#d + 1], d[#d + 2] = "id", id
			out[#out + 1] = d
			out[#out + 1] = redis.call("GET", base .. "evt:" .. (evt or "")) or ""
		end
	end
end
if again then
	for i = 1, #KEYS / 3 do
		nexts[i] = now
	end
	out[1] = now
	return out
end
-- A quota with a token offset names its leases head..quota.."."..n from
-- the offset on, the names gateScript counted in the cap set; others are
-- numbered head..seq across the call.
local qi, qoff, qn = 0, nil, 0

local function take(key, lkey, from_queue, want)
	local got = 0
	while got < want do
		-- Rounds of at most 1000 keep unpack below Lua's stack limit.
		local ids = redis.call("ZRANGEBYSCORE", key, "-inf", now, "LIMIT", 0, math.min(want - got, 1000))
		if #ids == 0 then
			break
		end
		local leased = {}
		for _, id in ipairs(ids) do
			local dkey = base .. "dlv:" .. id
			local d = redis.call("HGETALL", dkey)
			local status, evt = fields2(d, "status", "evt")
			if status == "pending" or status == "retrying" then
				got = got + 1
				local token
				if qoff then
					qn = qn + 1
					token = head .. qi .. "." .. (qoff + qn)
				else
					seq = seq + 1
					token = head .. seq
				end
				redis.call("HSET", dkey, "token", token, "lease", untl)
				-- Later fields win when the reply is read: these replace
				-- the token and lease of a lease that ended.
				d[#d + 1], d[#d + 2], d[#d + 3], d[#d + 4] = "token", token, "lease", untl
				d[#d + 1], d[#d + 2] = "id", id
				out[#out + 1] = d
				out[#out + 1] = redis.call("GET", base .. "evt:" .. (evt or "")) or ""
				leased[#leased + 1] = untl
				leased[#leased + 1] = id
			else
				redis.call("ZREM", key, id)
			end
		end
		if #leased > 0 then
			if from_queue then
				local gone = {}
				for j = 2, #leased, 2 do
					gone[#gone + 1] = leased[j]
				end
				redis.call("ZREM", key, unpack(gone))
			end
			redis.call("ZADD", lkey, unpack(leased))
		end
	end
	return got
end

local function first(key)
	return tonumber(redis.call("ZRANGE", key, 0, 0, "WITHSCORES")[2])
end

for i = 1, #KEYS / 3 do
	nexts[i] = 0
	local qkey, lkey, akey = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
	local want, cap, gate = tonumber(ARGV[6 * i - 1]), tonumber(ARGV[6 * i + 1]), ARGV[6 * i + 2]
	qi, qoff, qn = i, tonumber(ARGV[6 * i + 3]), 0
	-- An idle action, nothing queued and nothing held (Redis keeps no
	-- empty set), costs one command: it has nothing to lease, to gate or
	-- to report.
	if redis.call("EXISTS", qkey, lkey) > 0 then
		local t, l = first(qkey), first(lkey)
		if cap > 0 and want > 0 then
			-- Live leases are those that end after now, held by any
			-- process, less the caller's that are being recorded.
			local recording = 0
			if ARGV[6 * i + 4] ~= "" then
				local r = cjson.decode(ARGV[6 * i + 4])
				for j = 1, #r - 1, 2 do
					local score = redis.call("ZSCORE", lkey, r[j])
					if score and tonumber(score) > now and redis.call("HGET", base .. "dlv:" .. r[j], "token") == r[j + 1] then
						recording = recording + 1
					end
				end
			end
			want = math.min(want, cap + recording - redis.call("ZCOUNT", lkey, "(" .. now, "+inf"))
		end
		local s
		if gate == "" then
			s = redis.call("HMGET", akey, "paused", "blocked")
		elseif gate == "p" then
			s = {"1"}
		else
			s = {"0", false}
		end
		if s[1] ~= "1" then
			local blocked = tonumber(s[2])
			local probe = false
			if gate ~= "" then
				blocked = tonumber(gate)
				if blocked == 0 then
					blocked = nil
				end
			elseif blocked then
				if now < blocked then
					want = 0
				else
					want, probe = math.min(1, want), true
				end
			end
			if want > 0 and ((l and l <= now) or (t and t <= now)) then
				local got = 0
				if l and l <= now then
					got = take(lkey, lkey, false, want)
				end
				if t and t <= now then
					got = got + take(qkey, lkey, true, want - got)
				end
				if probe and got > 0 then
					blocked = tonumber(ARGV[6 * i])
					redis.call("HSET", akey, "breaker", "half-open", "blocked", ARGV[6 * i], "changed", ARGV[1])
					redis.call("HINCRBY", akey, "version", 1)
				end
				t, l = first(qkey), first(lkey)
			end
			if not t or (l and l < t) then
				t = l
			end
			if t then
				if blocked and blocked > now and blocked > t then
					t = blocked
				end
				nexts[i] = t
				if not nextDue or t < nextDue then
					nextDue = t
				end
			end
		end
	end
end
if nextDue then
	out[1] = nextDue
end
return out
`)

// busyScript tells, in one partition, which actions have anything queued
// or held: those whose queue or lease set exists (Redis keeps no empty
// set).
//
//	KEYS       per action, two by two: its queue <base>q:<action> and its
//	           lease set <base>lease:<action>
//
// Returns per action 1 when either set exists, else 0.
var busyScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS / 2 do
	out[i] = math.min(redis.call("EXISTS", KEYS[2 * i - 1], KEYS[2 * i]), 1)
end
return out
`)

// gateScript applies, on a partitioned store, what leaseScript applies
// itself on a store of one partition: per action, the gate of its stored
// state (a probe moves the state to half-open at once) and the cap on its
// live leases across every partition. A cap is counted in a sorted set of
// lease tokens scored by lease end (<base>cap:<action>): this script adds
// a placeholder per delivery it allows, settleScript swaps them for the
// tokens of the leases taken, and renew, finish and release keep the set
// in step, so that a lease whose worker died stops counting when it ends.
//
//	KEYS       per quota, two by two: the action's state <base>act:<action>
//	           and its lease tokens <base>cap:<action>, in partition 0
//	ARGV[1]    now
//	ARGV[2]    lease ends at
//	ARGV[3]    placeholder head: the j-th placeholder of quota i is
//	           head..i.."."..j
//	then       per quota, four by four: how many deliveries it asks for,
//	           when a probe would end, the cap (0: none), and "" or a
//	           JSON array of the tokens of the caller's leases being
//	           recorded (store.ActionQuota.Recording), which the cap does
//	           not count while they are live
//
// Returns per quota {allowed, gate, version}: how many deliveries the
// action may take, its gate for leaseScript ("p", "0" or blocked until),
// and, when the action was moved to half-open for a probe (its gate is
// then "0": the probe may be taken), the state's new version (else 0), so
// that settleScript can move it back when no delivery was due after all.
// A second run of the same call, which the client sends when the reply is
// late, finds the first run's placeholders and allows what they count, and
// the probe the first run granted, which the state names by the call's
// placeholder head (probe_by), and grants it again.
var gateScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS / 2 do
	local akey, ckey = KEYS[2 * i - 1], KEYS[2 * i]
	local want, probeEnd, cap = tonumber(ARGV[4 * i]), ARGV[4 * i + 1], tonumber(ARGV[4 * i + 2])
	local s = redis.call("HMGET", akey, "paused", "blocked", "probe_by", "version")
	local gate, version, again = "0", 0, false
	local blocked = tonumber(s[2])
	if s[1] == "1" then
		want, gate = 0, "p"
	elseif blocked and now < blocked and s[2] == probeEnd and s[3] == ARGV[3] then
		-- The probe this call granted in its first run.
		want, again = math.min(1, want), true
	elseif blocked and now < blocked then
		want, gate = 0, s[2]
	elseif blocked then
		want = math.min(1, want)
	end
	if cap > 0 and want > 0 then
		redis.call("ZREMRANGEBYSCORE", ckey, "-inf", now)
		-- A second run of this call (the client sends a script again
		-- when its reply did not come in time) finds its placeholders
		-- at their lease end, and allows what they count.
		local prefix, mine = ARGV[3] .. i .. ".", 0
		for _, m in ipairs(redis.call("ZRANGEBYSCORE", ckey, ARGV[2], ARGV[2])) do
			if string.sub(m, 1, #prefix) == prefix then
				mine = mine + 1
			end
		end
		if mine > 0 then
			want = math.min(want, mine)
		else
			local recording = 0
			if ARGV[4 * i + 3] ~= "" then
				for _, token in ipairs(cjson.decode(ARGV[4 * i + 3])) do
					if redis.call("ZSCORE", ckey, token) then
						recording = recording + 1
					end
				end
			end
			want = math.min(want, cap + recording - redis.call("ZCARD", ckey))
			if want > 0 then
				local held = {}
				for j = 1, want do
					held[#held + 1] = ARGV[2]
					held[#held + 1] = ARGV[3] .. i .. "." .. j
				end
				redis.call("ZADD", ckey, unpack(held))
			end
		end
	end
	if want < 0 then
		want = 0
	end
	if again and want > 0 then
		version = tonumber(s[4]) or 0
	elseif blocked and now >= blocked and want > 0 then
		redis.call("HSET", akey, "breaker", "half-open", "blocked", probeEnd, "changed", ARGV[1], "probe_from", s[2], "probe_by", ARGV[3])
		version = redis.call("HINCRBY", akey, "version", 1)
	end
	out[i] = {want, gate, version}
end
return out
`)

// reserveScript lets through, on a partitioned store, the deliveries an
// accept offers its caller (store.HandOff) before the accept runs in the
// event's partition: it applies what enqueueLua's hand-off applies on a
// store of one partition, from the action's state and cap set in
// partition 0 (gateScript). A delivery is let through when its action is
// neither paused nor blocked (a breaker probe is the lease's to take) and,
// with a cap above 0, the cap set counts fewer live leases; its lease's
// token then joins the cap set at the lease's end, whatever the cap, so
// that a lease handed off counts under a cap set later, and renew, finish
// and release keep it in step like any other. A second run of the same
// call finds its tokens and lets them through again.
//
//	KEYS       per delivery, two by two: its action's state
//	           <base>act:<action> and cap set <base>cap:<action>, in
//	           partition 0
//	ARGV[1]    now
//	ARGV[2]    lease ends at
//	then       per delivery, two by two: the cap (0: none), the token
//
// Returns per delivery 1 when let through, else 0.
var reserveScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS / 2 do
	local akey, ckey = KEYS[2 * i - 1], KEYS[2 * i]
	local cap, token = tonumber(ARGV[1 + 2 * i]), ARGV[2 + 2 * i]
	out[i] = 0
	if redis.call("ZSCORE", ckey, token) then
		out[i] = 1
	else
		local s = redis.call("HMGET", akey, "paused", "blocked")
		if s[1] ~= "1" and not tonumber(s[2]) then
			redis.call("ZREMRANGEBYSCORE", ckey, "-inf", ARGV[1])
			if cap == 0 or redis.call("ZCARD", ckey) < cap then
				redis.call("ZADD", ckey, ARGV[2], token)
				out[i] = 1
			end
		end
	end
end
return out
`)

// settleScript ends a partitioned Lease (see gateScript) when it must:
// per quota it drops the placeholders that no lease took, holds the tokens
// of leases taken under other names, and moves an action that gateScript
// moved to half-open back to where it was when no delivery was leased for
// its probe, unless its state changed since.
//
//	KEYS       per quota, two by two, as gateScript's
//	ARGV[1]    lease ends at
//	then       per quota: the version gateScript set (0: none), whether a
//	           probe was leased (1 or 0), n, n placeholders to drop, m, m
//	           tokens to hold
var settleScript = redis.NewScript(`
local at = 2
for i = 1, #KEYS / 2 do
	local akey, ckey = KEYS[2 * i - 1], KEYS[2 * i]
	local version, probed, n = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
	if n > 0 then
		redis.call("ZREM", ckey, unpack(ARGV, at + 3, at + 2 + n))
	end
	at = at + 3 + n
	local m = tonumber(ARGV[at])
	if m > 0 then
		local held = {}
		for j = 1, m do
			held[#held + 1] = ARGV[1]
			held[#held + 1] = ARGV[at + j]
		end
		redis.call("ZADD", ckey, unpack(held))
	end
	at = at + 1 + m
	if version ~= "0" and probed == "0" then
		local s = redis.call("HMGET", akey, "version", "probe_from")
		if s[1] == version and s[2] then
			redis.call("HSET", akey, "blocked", s[2], "breaker", "open")
			redis.call("HINCRBY", akey, "version", 1)
		end
	end
end
return 1
`)

// renewScript extends the leases that still hold: the delivery still has
// the lease's token and is pending or retrying.
//
//	KEYS       per lease: the delivery's hash  <base>dlv:<id>
//	ARGV[1]    lease ends at
//	ARGV[2]    key base   <prefix>:{p}:
//	then       per lease: the delivery id and the lease token
//
// Returns per lease 1 when extended, 0 when lost.
var renewScript = redis.NewScript(`
local out = {}
for i, dkey in ipairs(KEYS) do
	local id, token = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
	local d = redis.call("HMGET", dkey, "token", "status", "action")
	if token ~= "" and d[1] == token and (d[2] == "pending" or d[2] == "retrying") then
		redis.call("HSET", dkey, "lease", ARGV[1])
		redis.call("ZADD", ARGV[2] .. "lease:" .. (d[3] or ""), ARGV[1], id)
		out[i] = 1
	else
		out[i] = 0
	end
end
return out
`)

// finishScript records attempts and, for each whose lease still holds,
// counts it and applies its outcome; a succeeded outcome is applied without
// the lease too, unless the delivery succeeded already. Applying it takes
// the delivery out of its action's lease set, back into its queue at the
// next attempt when retrying, and into the dead index when dead. One call
// serves a whole batch: the cost of running a script is paid once, not per
// attempt.
//
//	KEYS       per attempt, two by two: the delivery hash <base>dlv:<id>
//	           and its attempts list <base>dlv:<id>:attempts
//	ARGV[1]    key base          <prefix>:{p}:
//	ARGV[2]    wake channel, for the deliveries a final outcome lets go
//	           in their lanes (laneLua)
//	then       per attempt, seven by seven: the delivery id, the lease
//	           token, the attempt (JSON), the new status (succeeded,
//	           retrying or dead), the next attempt at (retrying), the last
//	           error and the updated at
//
// Returns, per attempt, 1 when applied, 0 when the lease was lost (the
// attempt is still recorded), -1 when there is no such delivery (nothing is
// recorded). An attempt that is the last recorded already was recorded by
// an earlier run of the same call, which the client sent again: it is not
// recorded twice, and counts as applied when the delivery shows its
// outcome.
var finishScript = redis.NewScript(laneLua + `
local base = ARGV[1]
local dead = base .. "ix:dead"
local out = {}
-- The deliveries let go in their lanes, and their actions, each once:
-- what the wake-up names.
local woken, wokenSeen, wokenActions = 0, {}, {}
for i = 1, #KEYS / 2 do
	local dkey, akey = KEYS[2 * i - 1], KEYS[2 * i]
	local at = 3 + 7 * (i - 1)
	local id, token, attempt, status = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
	local nextAt, err, updated = ARGV[at + 4], ARGV[at + 5], ARGV[at + 6]
	local d = redis.call("HMGET", dkey, "status", "token", "action", "n", "lane", "updated")
	if not d[1] then
		out[i] = -1
	elseif redis.call("LINDEX", akey, -1) == attempt then
		-- A second run of this finish: the client sends a script again
		-- when its reply did not come in time. The attempt is recorded
		-- already, and its outcome applied if the delivery shows it.
		if d[1] == status and d[6] == updated then
			out[i] = 1
		else
			out[i] = 0
		end
	else
		redis.call("RPUSH", akey, attempt)
		local held = (d[1] == "pending" or d[1] == "retrying") and token ~= "" and d[2] == token
		if not held and (status ~= "succeeded" or d[1] == "succeeded") then
			out[i] = 0
		else
			local action = d[3] or ""
			local n = (tonumber(d[4]) or 0) + 1
			redis.call("ZREM", base .. "lease:" .. action, id)
			if status == "retrying" then
				-- An empty token, lease or due reads as none: one HSET
				-- instead of an HSET and an HDEL.
				redis.call("HSET", dkey, "status", status, "err", err, "updated", updated, "n", n, "due", nextAt, "token", "", "lease", "")
				redis.call("ZADD", base .. "q:" .. action, nextAt, id)
			else
				redis.call("HSET", dkey, "status", status, "err", err, "updated", updated, "n", n, "token", "", "lease", "", "due", "")
				if not held then
					-- Only a held delivery is sure to be out of its queue.
					redis.call("ZREM", base .. "q:" .. action, id)
				end
			end
			if status == "dead" then
				redis.call("ZADD", dead, 0, id)
			elseif d[1] == "dead" then
				redis.call("ZREM", dead, id)
			end
			if status ~= "retrying" and laneNext(base, action, d[5], id) > 0 then
				woken = woken + 1
				if not wokenSeen[action] then
					wokenSeen[action] = true
					wokenActions[#wokenActions + 1] = action
				end
			end
			out[i] = 1
		end
	end
end
if woken > 0 then
	redis.call("PUBLISH", ARGV[2], woken .. " " .. table.concat(wokenActions, " "))
end
return out
`)

// releaseScript gives leases back without counting an attempt: each
// delivery its lease still holds is due again at once, back in its
// action's queue, and the relays are woken.
//
//	KEYS       per lease: the delivery's hash  <base>dlv:<id>
//	ARGV[1]    now: the deliveries' new due time
//	ARGV[2]    key base      <prefix>:{p}:
//	ARGV[3]    wake channel
//	then       per lease: the delivery id and the lease token
//
// Returns how many leases were given back.
var releaseScript = redis.NewScript(`
local n, seen, actions = 0, {}, {}
for i, dkey in ipairs(KEYS) do
	local id, token = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
	local d = redis.call("HMGET", dkey, "token", "status", "action")
	if token ~= "" and d[1] == token and (d[2] == "pending" or d[2] == "retrying") then
		local action = d[3] or ""
		redis.call("HDEL", dkey, "token", "lease")
		redis.call("HSET", dkey, "due", ARGV[1])
		redis.call("ZREM", ARGV[2] .. "lease:" .. action, id)
		redis.call("ZADD", ARGV[2] .. "q:" .. action, ARGV[1], id)
		n = n + 1
		if not seen[action] then
			seen[action] = true
			actions[#actions + 1] = action
		end
	end
end
if n > 0 then
	redis.call("PUBLISH", ARGV[3], n .. " " .. table.concat(actions, " "))
end
return n
`)

// actionStatesScript reads the state of every action that has one.
//
//	KEYS[1]  actions with a state  <base>acts
//	ARGV[1]  key base              <prefix>:{p}:
//
// Returns one field/value list per action.
var actionStatesScript = redis.NewScript(`
local out = {}
for _, a in ipairs(redis.call("SMEMBERS", KEYS[1])) do
	local s = redis.call("HGETALL", ARGV[1] .. "act:" .. a)
	if #s > 0 then
		out[#out + 1] = s
	end
end
return out
`)

// putActionStateScript writes an action's state if its stored version is
// still the one the writer read (0 when none is stored).
//
//	KEYS[1]  action state          <base>act:<action>
//	KEYS[2]  actions with a state  <base>acts
//	ARGV[1]  version read
//	ARGV[2]  action
//	ARGV[3..]  the state's fields and values, version excepted
//
// Returns the new version, or -1 when the stored version differs.
var putActionStateScript = redis.NewScript(`
local v = tonumber(redis.call("HGET", KEYS[1], "version") or "0")
if v ~= tonumber(ARGV[1]) then
	return -1
end
redis.call("HSET", KEYS[1], "version", v + 1, unpack(ARGV, 3))
redis.call("SADD", KEYS[2], ARGV[2])
return v + 1
`)

// putIdentityScript replaces the store's identity if it is still the one
// the caller read.
//
//	KEYS[1]  identity      <base>identity
//	ARGV[1]  id read       "" when none was stored
//	ARGV[2..]  the new identity's fields and values
//
// Returns 1, or 0 when the stored identity is another one.
var putIdentityScript = redis.NewScript(`
local cur = redis.call("HGET", KEYS[1], "id") or ""
if cur ~= ARGV[1] then
	return 0
end
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], unpack(ARGV, 2))
return 1
`)

// queueStatsScript counts, per queued action, its deliveries due (in the
// queue or under a lease that ended), in flight (under a live lease) and
// scheduled (due later), and finds its oldest due time. An action whose
// queue and lease set are both empty is dropped from the set of queued
// actions: every script that queues a delivery adds it back.
//
//	KEYS[1]  queued actions  <base>queues
//	ARGV[1]  now
//	ARGV[2]  key base        <prefix>:{p}:
//
// Returns per action with deliveries {action, due, in flight, scheduled,
// oldest due or 0, lanes, deliveries waiting in them, lanes blocked, the
// oldest first delivery of a lane's creation or 0}.
var queueStatsScript = redis.NewScript(`
local now, after = ARGV[1], "(" .. ARGV[1]
local out = {}
for _, a in ipairs(redis.call("SMEMBERS", KEYS[1])) do
	local q, l = ARGV[2] .. "q:" .. a, ARGV[2] .. "lease:" .. a
	local qdue = redis.call("ZCOUNT", q, "-inf", now)
	local ldue = redis.call("ZCOUNT", l, "-inf", now)
	local held = redis.call("ZCOUNT", l, after, "+inf")
	local later = redis.call("ZCOUNT", q, after, "+inf")
	if qdue + ldue + held + later == 0 then
		redis.call("SREM", KEYS[1], a)
	else
		local oldest = nil
		if qdue > 0 then
			oldest = tonumber(redis.call("ZRANGE", q, 0, 0, "WITHSCORES")[2])
		end
		if ldue > 0 then
			local t = tonumber(redis.call("ZRANGE", l, 0, 0, "WITHSCORES")[2])
			if not oldest or t < oldest then
				oldest = t
			end
		end
		-- The action's lanes: how many, the deliveries waiting in them,
		-- those blocked by an active delivery that is retrying, and the
		-- creation of the oldest first delivery.
		local lanes, waiting, blocked, head = 0, 0, 0, nil
		local hkey = ARGV[2] .. "lanes:" .. a
		local active = redis.call("HGETALL", hkey)
		for j = 1, #active, 2 do
			local lkey = ARGV[2] .. "lane:" .. a .. ":" .. active[j]
			local n = redis.call("ZCARD", lkey)
			if n == 0 then
				redis.call("HDEL", hkey, active[j])
			else
				lanes, waiting = lanes + 1, waiting + n - 1
				local f = redis.call("ZRANGE", lkey, 0, 0)[1]
				local first = tonumber(redis.call("HGET", ARGV[2] .. "dlv:" .. f, "created"))
				if first and (not head or first < head) then
					head = first
				end
				if n > 1 and redis.call("HGET", ARGV[2] .. "dlv:" .. active[j + 1], "status") == "retrying" then
					blocked = blocked + 1
				end
			end
		end
		out[#out + 1] = {a, qdue + ldue, held, later, oldest or 0, lanes, waiting, blocked, head or 0}
	end
end
return out
`)

// upgradeScript moves up to a chunk of entries from the due index of
// earlier versions into the per-action queues: a pending or retrying
// delivery goes to its action's lease set when it has a lease (the entry's
// score is then the lease's end), else to its action's queue, both at the
// entry's score, unless it is queued there already. Entries of missing or
// final deliveries are dropped.
//
//	KEYS[1]  earlier due index  <base>due
//	KEYS[2]  queued actions     <base>queues
//	ARGV[1]  key base           <prefix>:{p}:
//	ARGV[2]  chunk size
//
// Returns how many entries the due index still holds.
var upgradeScript = redis.NewScript(`
local base = ARGV[1]
local zs = redis.call("ZRANGE", KEYS[1], 0, tonumber(ARGV[2]) - 1, "WITHSCORES")
local ids = {}
for i = 1, #zs, 2 do
	local id, score = zs[i], zs[i + 1]
	ids[#ids + 1] = id
	local d = redis.call("HMGET", base .. "dlv:" .. id, "status", "action", "token", "lease")
	if (d[1] == "pending" or d[1] == "retrying") and d[2] then
		local q, l = base .. "q:" .. d[2], base .. "lease:" .. d[2]
		if not redis.call("ZSCORE", q, id) and not redis.call("ZSCORE", l, id) then
			if d[3] and d[3] ~= "" and d[4] and d[4] ~= "" then
				redis.call("ZADD", l, score, id)
			else
				redis.call("ZADD", q, score, id)
			end
			redis.call("SADD", KEYS[2], d[2])
		end
	end
end
if #ids > 0 then
	redis.call("ZREM", KEYS[1], unpack(ids))
end
return redis.call("ZCARD", KEYS[1])
`)

// deliveriesScript reads an event's deliveries in accept order.
//
//	KEYS[1]  event     <base>evt:<id>
//	ARGV[1]  key base  <prefix>:{p}:
//
// Returns nil when there is no such event, else one field/value list per
// delivery, each with its id.
var deliveriesScript = redis.NewScript(eventLua + `
local v = redis.call("GET", KEYS[1])
if not v then
	return false
end
local _, _, _, r = evhead(v)
local out = {}
if r then
	for _, id in ipairs(evdlvs(v, r)) do
		local d = redis.call("HGETALL", ARGV[1] .. "dlv:" .. id)
		if #d > 0 then
			d[#d + 1], d[#d + 2] = "id", id
			out[#out + 1] = d
		end
	end
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

// pageScript reads one page of a listing, newest first. Its candidates come
// from one or more sources, merged by id: the listing indexes the filter
// names (events: those of the hook and status asked for; deliveries: those
// of the hook and action), the dead index, or the action queues and lease
// sets (pending and retrying deliveries, while they hold fewer than budget
// ids; past that, the deliveries indexes). A delivery is then checked
// against the whole filter. It examines
// at most budget ids, so that a selective filter on a large store cannot
// hold Redis for long: when the budget runs out the page may be short, and
// next is the last id examined.
//
//	KEYS[1]    listing indexes  <base>ix
//	KEYS[2]    queued actions   <base>queues
//	ARGV[1]    key base         <prefix>:{p}:
//	ARGV[2]    from: e (events), d (deliveries, by index), x (dead
//	           deliveries), q (deliveries in the queues)
//	ARGV[3]    cursor: list ids below it; "" from the newest
//	ARGV[4]    list ids at or above it; "" for no bound
//	ARGV[5]    list ids below it; "" for no bound
//	ARGV[6]    limit
//	ARGV[7]    budget, > limit
//	ARGV[8]    hook; "" for any
//	ARGV[9]    status (events: its letter); "" for any
//	ARGV[10]   action; "" for any
//	ARGV[11..] deliveries: the fields to list, status, hook and action
//	           among them
//
// Returns {next, id, record, id, record, …}: next is the last id of the
// page when more may follow, else ""; an event's record is its stored
// string, a delivery's its listed fields' values in order.
var pageScript = redis.NewScript(`
local base, from, cursor = ARGV[1], ARGV[2], ARGV[3]
local limit, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local hook, status, action = ARGV[8], ARGV[9], ARGV[10]
local names = {unpack(ARGV, 11)}
local pos = {}
for i, name in ipairs(names) do
	pos[name] = i
end

local hi, lo = "+", "-"
if cursor ~= "" then
	hi = "(" .. cursor
end
if ARGV[5] ~= "" and (cursor == "" or ARGV[5] < cursor) then
	hi = "(" .. ARGV[5]
end
if ARGV[4] ~= "" then
	lo = "[" .. ARGV[4]
end

-- Pending and retrying deliveries are listed from the queues while these
-- hold fewer than budget ids: sorting them is then cheap. A larger backlog
-- is walked through the deliveries indexes instead, newest first, each
-- delivery's status checked, as for succeeded ones.
local actions
if from == "q" then
	actions = redis.call("SMEMBERS", KEYS[2])
	if action ~= "" then
		actions = {action}
	end
	local total = 0
	for _, a in ipairs(actions) do
		total = total + redis.call("ZCARD", base .. "q:" .. a) + redis.call("ZCARD", base .. "lease:" .. a)
	end
	if total > budget then
		from = "d"
	end
end

-- The sources, and whether a record must be checked against the filter.
local idxs, check = {}, true
if from == "e" or from == "d" then
	for _, name in ipairs(redis.call("SMEMBERS", KEYS[1])) do
		local keep = false
		if from == "e" then
			local s, h = string.match(name, "^e:(%a):(.*)$")
			keep = s and (status == "" or s == status) and (hook == "" or h == hook)
		else
			local h, a = string.match(name, "^d:([^|]*)|(.*)$")
			keep = h and (hook == "" or h == hook) and (action == "" or a == action)
		end
		if keep then
			idxs[#idxs + 1] = base .. "ix:" .. name
		end
	end
	check = from == "d" and status ~= ""
elseif from == "x" then
	idxs[1] = base .. "ix:dead"
end

-- queued lists the pending and retrying deliveries' ids within the bounds,
-- newest first: the queues hold no more than the backlog.
local queued
if from == "q" then
	queued = {}
	local top, bottom = string.sub(hi, 2), string.sub(lo, 2)
	for _, a in ipairs(actions) do
		for _, k in ipairs({base .. "q:" .. a, base .. "lease:" .. a}) do
			for _, id in ipairs(redis.call("ZRANGE", k, 0, -1)) do
				if (hi == "+" or id < top) and (lo == "-" or id >= bottom) then
					queued[#queued + 1] = id
				end
			end
		end
	end
	table.sort(queued, function(a, b) return a > b end)
end
local qat = 1

-- The indexes are merged as they are read: each has a head, a chunk of its
-- next ids, refilled when used up, and the next id is the largest of the
-- heads. A page thus reads about the ids it examines, plus a chunk per
-- index, however many indexes the filter names.
local chunk = 64
if not check and from ~= "x" then
	chunk = math.min(chunk, limit + 1)
end
local heads = {}
for i, k in ipairs(idxs) do
	heads[i] = {key = k, ids = {}, at = 1, from = hi, done = false}
end

local function nextID()
	if queued then
		qat = qat + 1
		return queued[qat - 1]
	end
	local best, bh = nil, nil
	for _, h in ipairs(heads) do
		if h.at > #h.ids and not h.done then
			h.ids = redis.call("ZREVRANGEBYLEX", h.key, h.from, lo, "LIMIT", 0, chunk)
			h.at, h.done = 1, #h.ids < chunk
			if #h.ids > 0 then
				h.from = "(" .. h.ids[#h.ids]
			end
		end
		local id = h.ids[h.at]
		if id and (not best or id > best) then
			best, bh = id, h
		end
	end
	if bh then
		bh.at = bh.at + 1
	end
	return best
end

local function read(id)
	if from == "e" then
		return redis.call("GET", base .. "evt:" .. id)
	end
	local v = redis.call("HMGET", base .. "dlv:" .. id, unpack(names))
	local st = v[pos.status]
	if not st then
		return false
	end
	if check or from == "x" or from == "q" then
		if (status ~= "" and st ~= status) or (hook ~= "" and v[pos.hook] ~= hook) or
			(action ~= "" and v[pos.action] ~= action) then
			return false
		end
	end
	for i = 1, #names do
		v[i] = v[i] or ""
	end
	return v
end

local out = {""}
local found, seen, last = 0, 0, nil
while true do
	local id = nextID()
	if not id then
		return out
	end
	seen = seen + 1
	local rec = read(id)
	if rec then
		if found == limit then
			out[1] = last
			return out
		end
		found, last = found + 1, id
		out[#out + 1] = id
		out[#out + 1] = rec
	end
	if seen >= budget then
		out[1] = id
		return out
	end
end
`)

// retryScript makes a delivery that is not final, or is dead, pending and
// due at a given time, unless it succeeded or a worker holds it then. Its
// lease token is dropped, so a worker whose lease had expired loses it, and
// it moves from its action's lease set, if there, to its queue.
//
//	KEYS[1]  delivery hash   <base>dlv:<id>
//	KEYS[2]  dead index      <base>ix:dead
//	KEYS[3]  queued actions  <base>queues
//	ARGV[1]  delivery id
//	ARGV[2]  due at (also its updated at)
//	ARGV[3]  wake channel
//	ARGV[4]  key base        <prefix>:{p}:
//
// Returns the delivery's field/value list, or -1 when there is no such
// delivery, 0 when it succeeded, -2 when it is leased past ARGV[2].
var retryScript = redis.NewScript(`
local d = redis.call("HMGET", KEYS[1], "status", "lease", "action", "lane", "created")
if not d[1] then
	return -1
end
if d[1] == "succeeded" then
	return 0
end
if d[2] and d[2] ~= "" and tonumber(d[2]) > tonumber(ARGV[2]) then
	return -2
end
local id, base, action = ARGV[1], ARGV[4], d[3] or ""
redis.call("HSET", KEYS[1], "status", "pending", "due", ARGV[2], "updated", ARGV[2])
redis.call("HDEL", KEYS[1], "token", "lease")
redis.call("ZREM", base .. "lease:" .. action, id)
-- In a lane, it goes back in at its place and waits while another
-- delivery of the lane is active.
local queue = true
if d[4] and d[4] ~= "" then
	local lh = redis.sha1hex(d[4])
	local hkey = base .. "lanes:" .. action
	redis.call("ZADD", base .. "lane:" .. action .. ":" .. lh, "NX", tonumber(d[5]) or ARGV[2], id)
	local active = redis.call("HGET", hkey, lh)
	if active and active ~= id then
		queue = false
	else
		redis.call("HSET", hkey, lh, id)
	end
end
if queue then
	redis.call("ZADD", base .. "q:" .. action, ARGV[2], id)
else
	redis.call("ZREM", base .. "q:" .. action, id)
end
redis.call("SADD", KEYS[3], action)
if d[1] == "dead" then
	redis.call("ZREM", KEYS[2], id)
end
redis.call("PUBLISH", ARGV[3], "1 " .. action)
local out = redis.call("HGETALL", KEYS[1])
out[#out + 1], out[#out + 2] = "id", id
return out
`)

// addDeliveriesScript stores, queues and indexes new deliveries of a stored
// event, as acceptScript does, lists them on the event, adds rules to its
// matched rules (kept free of repeats) and marks it accepted, moving it to
// its hook's index of accepted events. Nothing is written when the event
// is missing or one of the deliveries exists already.
//
//	KEYS[1]    queued actions   <base>queues
//	KEYS[2]    event            <base>evt:<id>
//	KEYS[3]    listing indexes  <base>ix
//	KEYS[4..]  per delivery: its hash, its index, its action's queue, its
//	           lane and its action's lanes, as for acceptScript
//	ARGV[1]    event id
//	ARGV[2]    wake channel
//	ARGV[3]    key base         <prefix>:{p}:
//	ARGV[4]    r: number of rules that follow; ARGV[5..4+r] the rules
//	then       m: number of index names that follow (members of KEYS[3])
//	then       the deliveries' arguments (see enqueueLua)
//
// Returns the number of deliveries stored, -1 when there is no such event,
// or {i} when the i-th delivery (from 0) exists already.
var addDeliveriesScript = redis.NewScript(eventLua + enqueueLua + `
local v = redis.call("GET", KEYS[2])
if not v then
	return -1
end
for k = 4, #KEYS, 5 do
	if redis.call("EXISTS", KEYS[k]) == 1 then
		return {(k - 4) / 5}
	end
end
local s, _, hook, r = evhead(v)
local have, add = {}, {}
for tag, val in string.gmatch(string.sub(v, r or (#v + 1)), "\n(.)([^\n]*)") do
	if tag == "R" then
		have[val] = true
	end
end
local nr = tonumber(ARGV[4])
for i = 5, 4 + nr do
	if not have[ARGV[i]] then
		have[ARGV[i]] = true
		add[#add + 1] = "\nR" .. ARGV[i]
	end
end
local at = 5 + nr
local m = tonumber(ARGV[at])
if m > 0 then
	redis.call("SADD", KEYS[3], unpack(ARGV, at + 1, at + m))
end
at = at + 1 + m
local i = at
while i <= #ARGV do
	add[#add + 1] = "\nD" .. ARGV[i]
	i = i + 9 + tonumber(ARGV[i + 8])
end
-- One SET of the whole string rather than APPEND and SETRANGE: APPEND
-- would leave the string with room to grow, twice its size.
if s and s ~= "a" then
	v = "a" .. string.sub(v, 2)
end
redis.call("SET", KEYS[2], v .. table.concat(add))
if s and s ~= "a" then
	redis.call("ZREM", ARGV[3] .. "ix:e:" .. s .. ":" .. hook, ARGV[1])
	redis.call("ZADD", ARGV[3] .. "ix:e:a:" .. hook, 0, ARGV[1])
	redis.call("SADD", KEYS[3], "e:a:" .. hook)
end
local n = enqueue(at, #ARGV, ARGV[1], 1, 4, zaddNow, saddNow)
redis.call("PUBLISH", ARGV[2], n .. " " .. table.concat(queuedActions, " "))
return n
`)

// createKeyScript stores a new API key unless its id or the hash of its
// secret is taken.
//
//	KEYS[1]  key hash      <base>key:<id>
//	KEYS[2]  hash lookup   <base>keyhash:<hash of the secret>
//	KEYS[3]  keys index    <base>keys
//	ARGV[1]  key id
//	ARGV[2]  created at (the index score)
//	ARGV[3..]  the key's fields and values
//
// Returns 1 when stored, 0 when the id is taken, -1 when the hash is.
var createKeyScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return 0
end
if redis.call("EXISTS", KEYS[2]) == 1 then
	return -1
end
redis.call("HSET", KEYS[1], unpack(ARGV, 3))
redis.call("SET", KEYS[2], ARGV[1])
redis.call("ZADD", KEYS[3], ARGV[2], ARGV[1])
return 1
`)

// keysScript reads every API key, oldest first.
//
//	KEYS[1]  keys index  <base>keys
//	ARGV[1]  key base    <prefix>:{p}:
//
// Returns one field/value list per key.
var keysScript = redis.NewScript(`
local out = {}
for _, id in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
	out[#out + 1] = redis.call("HGETALL", ARGV[1] .. "key:" .. id)
end
return out
`)

// keyByHashScript reads the API key whose secret has a given hash.
//
//	KEYS[1]  hash lookup  <base>keyhash:<hash of the secret>
//	ARGV[1]  key base     <prefix>:{p}:
//
// Returns nil when there is no such key, else its field/value list.
var keyByHashScript = redis.NewScript(`
local id = redis.call("GET", KEYS[1])
if not id then
	return false
end
return redis.call("HGETALL", ARGV[1] .. "key:" .. id)
`)

// stampKeyScript sets a time field of an API key: "revoked" only once,
// "used" only forward.
//
//	KEYS[1]  key hash  <base>key:<id>
//	ARGV[1]  field: revoked or used
//	ARGV[2]  time
//
// Returns 1 when set, 0 when kept, -1 when there is no such key.
var stampKeyScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return -1
end
local cur = tonumber(redis.call("HGET", KEYS[1], ARGV[1]))
if cur and (ARGV[1] == "revoked" or cur >= tonumber(ARGV[2])) then
	return 0
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// pruneLeaseScript takes or extends the pruning lease of a partitioned
// store, in partition 0, as pruneScript does its own partition's: under
// it, one process at a time prunes the whole store.
//
//	KEYS[1]  pruning lease  <base>prune:lease
//	ARGV[1]  now
//	ARGV[2]  owner
//	ARGV[3]  lease ends at, > now
//
// Returns 1 when the caller holds the lease, -1 when another owner does.
var pruneLeaseScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local held = redis.call("GET", KEYS[1])
if held then
	local owner, untl = string.match(held, "^(.*)|(%d+)$")
	if owner and owner ~= ARGV[2] and tonumber(untl) > now then
		return -1
	end
end
redis.call("SET", KEYS[1], ARGV[2] .. "|" .. ARGV[3], "PX", math.max(1, tonumber(ARGV[3]) - now))
return 1
`)

// pruneScript examines one batch of events, oldest first from where the
// last batch stopped, and removes those that are prunable (store.Prunable)
// with their deliveries and attempts and every index entry that names
// them: the listing indexes, the dead index, and the action queues and
// lease sets (which hold no final delivery, but a stray entry would outlive
// its delivery). The idempotency key of a pruned event is left to expire on
// its own TTL. It runs only for the owner of the pruning lease, which it
// takes when free or ended and extends.
//
//	KEYS[1]  pruning lease    <base>prune:lease
//	KEYS[2]  pruning cursor   <base>prune:cursor
//	KEYS[3]  listing indexes  <base>ix
//	ARGV[1]  now
//	ARGV[2]  owner
//	ARGV[3]  lease ends at, > now
//	ARGV[4]  completed before: ignored and succeeded events received earlier go
//	ARGV[5]  failed before: events with a dead delivery received earlier go
//	ARGV[6]  bound: examine only ids below it
//	ARGV[7]  limit: how many events to examine at most
//	ARGV[8]  key base         <prefix>:{p}:
//
// Returns {-1} when another owner holds the lease, else {events,
// deliveries, attempts removed, more (1 or 0)}.
var pruneScript = redis.NewScript(eventLua + `
local now = tonumber(ARGV[1])
local held = redis.call("GET", KEYS[1])
if held then
	local owner, untl = string.match(held, "^(.*)|(%d+)$")
	if owner and owner ~= ARGV[2] and tonumber(untl) > now then
		return {-1}
	end
end
redis.call("SET", KEYS[1], ARGV[2] .. "|" .. ARGV[3], "PX", math.max(1, tonumber(ARGV[3]) - now))

local completed, failed = tonumber(ARGV[4]), tonumber(ARGV[5])
local limit, base = tonumber(ARGV[7]), ARGV[8]
local from = "-"
local cursor = redis.call("GET", KEYS[2])
if cursor then
	from = "(" .. cursor
end
-- The oldest ids of every events index, merged: the first limit of them
-- are the oldest of all.
local ids, index = {}, {}
for _, name in ipairs(redis.call("SMEMBERS", KEYS[3])) do
	if string.sub(name, 1, 2) == "e:" then
		local k = base .. "ix:" .. name
		for _, id in ipairs(redis.call("ZRANGEBYLEX", k, from, "(" .. ARGV[6], "LIMIT", 0, limit)) do
			ids[#ids + 1] = id
			index[id] = k
		end
	end
end
table.sort(ids)
for i = #ids, limit + 1, -1 do
	ids[i] = nil
end
local events, deliveries, attempts = 0, 0, 0
for _, id in ipairs(ids) do
	local ekey = base .. "evt:" .. id
	local v = redis.call("GET", ekey)
	local s, recv, hook, r
	if v then
		s, recv, hook, r = evhead(v)
	end
	if not s then
		-- An index entry without its event: nothing else to remove.
		redis.call("ZREM", index[id], id)
	else
		local ds, open, dead = {}, false, false
		for _, did in ipairs(evdlvs(v, r)) do
			local d = redis.call("HMGET", base .. "dlv:" .. did, "status", "hook", "action")
			if d[1] then
				ds[#ds + 1] = {did, d[1], d[2] or "", d[3] or ""}
				if d[1] == "dead" then
					dead = true
				elseif d[1] ~= "succeeded" then
					open = true
				end
			end
		end
		local prunable = false
		if not open and not (s == "a" and #ds == 0) then
			if dead then
				prunable = recv < failed
			else
				prunable = recv < completed
			end
		end
		if prunable then
			for _, d in ipairs(ds) do
				local did, dkey = d[1], base .. "dlv:" .. d[1]
				attempts = attempts + redis.call("LLEN", dkey .. ":attempts")
				redis.call("DEL", dkey, dkey .. ":attempts")
				redis.call("ZREM", base .. "ix:d:" .. d[3] .. "|" .. d[4], did)
				redis.call("ZREM", base .. "ix:dead", did)
				redis.call("ZREM", base .. "q:" .. d[4], did)
				redis.call("ZREM", base .. "lease:" .. d[4], did)
				deliveries = deliveries + 1
			end
			redis.call("DEL", ekey)
			redis.call("ZREM", index[id], id)
			events = events + 1
		end
	end
end
local more = 0
if #ids == limit then
	redis.call("SET", KEYS[2], ids[#ids])
	more = 1
else
	redis.call("DEL", KEYS[2])
end
return {events, deliveries, attempts, more}
`)

// layoutScript moves up to a chunk of events, oldest first, from the
// layout of earlier versions (an event hash, its list of deliveries, and
// indexes of every record per hook, action and status) into this one (an
// event string listing its deliveries, one index per record): the event is
// rewritten, it and its deliveries are indexed anew, and their entries in
// the earlier indexes are removed. Delivery hashes keep their layout.
//
//	KEYS[1]  earlier events index  <base>idx:evt
//	KEYS[2]  listing indexes       <base>ix
//	ARGV[1]  key base              <prefix>:{p}:
//	ARGV[2]  chunk size
//
// Returns how many entries the earlier events index still holds.
var layoutScript = redis.NewScript(`
local base = ARGV[1]
local ids = redis.call("ZRANGE", KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
	local ekey = base .. "evt:" .. id
	if redis.call("TYPE", ekey).ok == "hash" then
		local f = redis.call("HGETALL", ekey)
		local e = {}
		for i = 1, #f, 2 do
			e[f[i]] = f[i + 1]
		end
		local hook, status, body = e.hook or "", e.status or "accepted", e.body or ""
		local letter = "a"
		if status == "ignored" then
			letter = "i"
		end
		local meta = '{"k":' .. cjson.encode(e.ikey or "")
		if e.hdr and e.hdr ~= "" then
			meta = meta .. ',"h":' .. e.hdr
		end
		if e.qry and e.qry ~= "" then
			meta = meta .. ',"q":' .. e.qry
		end
		meta = meta .. "}"
		local parts = {letter .. (e.recv or "0") .. "|" .. #meta .. "|" .. #body .. "|" .. hook .. "\n", meta, "\n", body}
		if e.rules and e.rules ~= "" then
			for _, rule in ipairs(cjson.decode(e.rules)) do
				parts[#parts + 1] = "\nR" .. rule
			end
		end
		for _, did in ipairs(redis.call("LRANGE", ekey .. ":dlvs", 0, -1)) do
			parts[#parts + 1] = "\nD" .. did
			local d = redis.call("HMGET", base .. "dlv:" .. did, "hook", "action", "status")
			if d[3] then
				local name = "d:" .. (d[1] or "") .. "|" .. (d[2] or "")
				redis.call("ZADD", base .. "ix:" .. name, 0, did)
				redis.call("SADD", KEYS[2], name)
				if d[3] == "dead" then
					redis.call("ZADD", base .. "ix:dead", 0, did)
				end
				redis.call("ZREM", base .. "idx:dlv:hook:" .. (d[1] or ""), did)
				redis.call("ZREM", base .. "idx:dlv:action:" .. (d[2] or ""), did)
				redis.call("ZREM", base .. "idx:dlv:status:" .. d[3], did)
			end
			redis.call("ZREM", base .. "idx:dlv", did)
		end
		redis.call("DEL", ekey, ekey .. ":dlvs")
		redis.call("SET", ekey, table.concat(parts))
		local name = "e:" .. letter .. ":" .. hook
		redis.call("ZADD", base .. "ix:" .. name, 0, id)
		redis.call("SADD", KEYS[2], name)
		redis.call("ZREM", base .. "idx:evt:hook:" .. hook, id)
		redis.call("ZREM", base .. "idx:evt:status:" .. status, id)
	end
end
if #ids > 0 then
	redis.call("ZREM", KEYS[1], unpack(ids))
end
return redis.call("ZCARD", KEYS[1])
`)
