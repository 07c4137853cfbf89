-- wrk script: POST /execute (echo) with a unique nonce per request.
-- Usage: wrk -t2 -c64 -d20s -s benches/http/execute.lua http://127.0.0.1:5000
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format('{"action":"echo","payload":{"msg":"hi"},"nonce":"w%d-%d-%d"}', thread_id, os.time(), counter)
  return wrk.format(nil, "/execute", nil, body)
end

function response(status, headers, body)
  if status ~= 200 then
    wrk.thread:stop()
  end
end
