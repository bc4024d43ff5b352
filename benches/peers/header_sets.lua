-- wrk script: one request per line of the file $HEADER_SETS, each line a set of headers
-- ("Name: value", tab-separated), added to the request wrk was given. wrk cannot sign
-- requests, so benches/load.sh has bench_kit write pre-signed ones (unique nonces): no line may
-- be sent twice. Therefore:
-- - thread i of $WRK_THREADS (default 2, as load.sh runs wrk) sends lines i, i+T, i+2T, ...;
-- - every run starts at the offset kept in $HEADER_SETS.pos, and done() moves it past every
--   line used, so load.sh's warm-up and measured run never share a line;
-- - past the end it wraps around (tokens are reused on purpose); with $HEADER_SETS_ONCE=1
--   (signed lines) a thread whose lines ran out stops instead, and says so on stderr: the run
--   then ends early (CPU per request stays right: it is charged per completed request), and only
--   the requests already in flight are replays (401, counted as non-2xx).
local path = os.getenv("HEADER_SETS") or error("HEADER_SETS: the file of header sets")
local stride = tonumber(os.getenv("WRK_THREADS") or "2")
local once = os.getenv("HEADER_SETS_ONCE") == "1"
local threads = {}
local count = 0

local function read_offset()
  local f = io.open(path .. ".pos", "r")
  if not f then return 0 end
  local n = tonumber(f:read("*l") or "0") or 0
  f:close()
  return n
end

function setup(thread)
  thread:set("id", count)
  table.insert(threads, thread)
  count = count + 1
end

function init(args)
  -- Two passes, so a thread keeps only its own lines (the signed file is tens of MB).
  local total = 0
  for _ in io.lines(path) do
    total = total + 1
  end
  if total == 0 then
    error(path .. ": no header sets")
  end
  local offset = read_offset()
  if offset >= total then
    if once and id == 0 then
      io.stderr:write(path .. ": every line was used before; starting over (signed lines: replays)\n")
    end
    offset = offset % total
  end
  requests = {}
  used = 0
  wrapped = 0
  -- A thread past the end of a short file (one token, say) starts over at its first line.
  local first = offset + id
  if first >= total then
    first = first % total
  end
  local n = 0
  for line in io.lines(path) do
    if n >= first and (n - first) % stride == 0 then
      local headers = {}
      for name, value in line:gmatch("([^\t:]+):%s*([^\t]*)") do
        headers[name] = value
      end
      requests[#requests + 1] = wrk.format(nil, nil, headers)
    end
    n = n + 1
  end
end

function request()
  used = used + 1
  local i = used
  if i > #requests then
    wrapped = wrapped + 1
    i = (i - 1) % #requests + 1
  end
  return requests[i]
end

if once then
  function response()
    if used >= #requests then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, reqs)
  local most, wraps = 0, 0
  for _, thread in ipairs(threads) do
    most = math.max(most, thread:get("used") or 0)
    wraps = wraps + (thread:get("wrapped") or 0)
  end
  local f = assert(io.open(path .. ".pos", "w"))
  f:write(tostring(read_offset() + most * stride) .. "\n")
  f:close()
  if once and wraps > 0 then
    io.stderr:write(path .. ": " .. wraps .. " requests reused a line (the file is too short)\n")
  end
end
