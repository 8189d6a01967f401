-- Top senders by count and by size.
--
--   gmailscript run scripts/stats.lua --sim [-- QUERY [N]]
--   gmailscript repl -i scripts/stats.lua --sim   # then explore `result`
--
-- Leaves its figures in the global `result`: messages (how many were
-- counted), by_count and by_size (lists of {address, n}, largest first),
-- and report (the batch report).

local query = arg[1]
local top = tonumber(arg[2] or "10")
if not top then
  error("stats: N must be a number, got " .. arg[2], 0)
end

local count, bytes = {}, {}
local report = gmail.batch(gmail.list{ q = query }, {
  format = "metadata",
  headers = { "From" },
  on_message = function(m)
    local from = m:header("From") or "(no sender)"
    local who = (from:match("<([^>]+)>") or from):lower()
    count[who] = (count[who] or 0) + 1
    bytes[who] = (bytes[who] or 0) + m.size
  end,
})

local function ranked(t)
  local list = {}
  for k, v in pairs(t) do list[#list + 1] = { k, v } end
  table.sort(list, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
  return list
end

result = { messages = report.ok, by_count = ranked(count), by_size = ranked(bytes), report = report }

-- Figures of part of the mailbox would read as the whole: none are printed
-- (gmailscript's last line says why the run stopped).
if report.stopped then
  log.warn(string.format("stats: the run stopped early, after %d messages; no figures printed", report.ok))
  return
end

print(string.format("%d messages%s", report.ok, query and (" matching " .. query) or ""))
print("\nTop senders by count:")
for i, e in ipairs(result.by_count) do
  if i > top then break end
  print(string.format("%4d  %6d  %s", i, e[2], e[1]))
end
print("\nTop senders by size:")
for i, e in ipairs(result.by_size) do
  if i > top then break end
  print(string.format("%4d  %8.1f MB  %s", i, e[2] / 1e6, e[1]))
end
