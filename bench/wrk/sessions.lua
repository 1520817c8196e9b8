-- wrk script: a different session cookie on every request, round-robin over a file of cookie values (one a line).
--
--   wrk -t2 -c32 -d10s -s bench/wrk/sessions.lua http://127.0.0.1:3000/ -- <cookie-file> [cookie-name] [threads]
--
-- cookie-name defaults to signin_session; threads (default 2) must be wrk's -t. Each thread reads the whole file
-- and walks its own share of it (thread i of n from i/n on), so together the threads send every cookie in turn.
-- Each run starts at a random place in the file: with more cookies than a run sends (1,000,000), a later run does
-- not just send again the cookies an earlier run left in the app's cache.
local counter = 0
local offset

function setup(thread)
  if not offset then
    math.randomseed(os.time())
    offset = math.random()
  end
  -- Globals in that thread's interpreter, read by init below.
  thread:set("index", counter)
  thread:set("offset", offset)
  counter = counter + 1
end

local cookies = {}
local name
local next_cookie = 1

function init(args)
  local path = args[1] or error("usage: ... -- <cookie-file> [cookie-name] [threads]")
  name = args[2] or "signin_session"
  local threads = tonumber(args[3] or "2")
  for line in io.lines(path) do
    if line ~= "" then cookies[#cookies + 1] = line end
  end
  if #cookies == 0 then error("no cookies in " .. path) end
  next_cookie = math.floor(#cookies * ((offset or 0) + (index or 0) / threads)) % #cookies + 1
end

function request()
  local cookie = cookies[next_cookie]
  next_cookie = next_cookie + 1
  if next_cookie > #cookies then next_cookie = 1 end
  return wrk.format(nil, nil, { ["Cookie"] = name .. "=" .. cookie })
end
