-- wrk script: visitors asking for numbers, as from the TLS load balancer (X-Forwarded-Proto https,
-- the client's address in X-Forwarded-For). BENCH_MODE:
--   new    every request is a new visitor of one of BENCH_POOL_KEYS, from its own address
--   mix    a share BENCH_NEW_SHARE of new visitors, the rest renewing one of the connection's recent
--          visitors (keepalive), each request from its own address
--   flood  new visitors, all from one address (a client inventing visitor ids)
-- Every promo answer is written to <BENCH_OUT>/holds-<phase>-<thread>.txt for the double-hold check.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  pool_keys = {}
  for key in string.gmatch(os.getenv("BENCH_POOL_KEYS"), "[^,]+") do table.insert(pool_keys, key) end
  mode = os.getenv("BENCH_MODE") or "mix"
  new_share = tonumber(os.getenv("BENCH_NEW_SHARE") or "0.3")
  phase = os.getenv("BENCH_PHASE") or "run"
  out = io.open(os.getenv("BENCH_OUT") .. "/holds-" .. phase .. "-" .. id .. ".txt", "w")
  recent = {}
  serial = 0
  sent = 0
  math.randomseed(id * 7919 + os.time())
  errors5xx = 0
  limited = 0
  last = nil
end

function request()
  local visitor, key, keepalive, new_visitor
  sent = sent + 1
  if mode ~= "mix" or #recent == 0 or math.random() < new_share then
    serial = serial + 1
    visitor = string.format("bench-%s-%02d-%08d", phase, id, serial)
    key = pool_keys[math.random(#pool_keys)]
    keepalive = "false"
    new_visitor = "true"  -- as the tag says of a visitor id it made just now
    if #recent >= 64 then table.remove(recent, 1) end
    table.insert(recent, { visitor, key })
  else
    local pick = recent[math.random(#recent)]
    visitor, key, keepalive, new_visitor = pick[1], pick[2], "true", "false"
  end
  last = visitor
  local address = "203.0.113.7"
  if mode ~= "flood" then
    address = string.format("10.%d.%d.%d", id % 256, math.floor(sent / 256) % 256, sent % 256)
  end
  local body = '{"visitor_id":"' .. visitor .. '","page_url":"https://www.example.com/landing?utm_source=bench",'
    .. '"params":{"utm_source":"bench"},"keepalive":' .. keepalive .. ',"new_visitor":' .. new_visitor .. '}'
  return wrk.format("POST", "/api/v1/ringpools/" .. key .. "/numbers",
    { ["Content-Type"] = "application/json", ["X-Forwarded-Proto"] = "https",
      ["X-Forwarded-For"] = address }, body)
end

function response(status, headers, body)
  if status >= 500 then errors5xx = errors5xx + 1 end
  if status == 429 then limited = limited + 1 end
  if status == 200 then
    local number, kind, expires = string.match(body, '"number": "([^"]+)".-"kind": "([^"]+)", "expires_at": "?([^",}]*)')
    if kind == "promo" then out:write(last, " ", number, " ", expires, "\n") end
  end
end

function done(summary, latency, requests)
  local e5, l = 0, 0
  for _, t in ipairs(threads) do
    e5 = e5 + (t:get("errors5xx") or 0)
    l = l + (t:get("limited") or 0)
  end
  io.write(string.format('{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "non_2xx": %d, "errors_5xx": %d, "limited": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, e5, l,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
