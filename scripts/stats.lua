-- Top senders by count and by size.
--
--   gmailscript run scripts/stats.lua --sim [-- QUERY [N]]

local query = arg[1]
local top = tonumber(arg[2] or "10")

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

print(string.format("%d messages%s", report.ok, query and (" matching " .. query) or ""))
print("\nTop senders by count:")
for i, e in ipairs(ranked(count)) do
  if i > top then break end
  print(string.format("%4d  %6d  %s", i, e[2], e[1]))
end
print("\nTop senders by size:")
for i, e in ipairs(ranked(bytes)) do
  if i > top then break end
  print(string.format("%4d  %8.1f MB  %s", i, e[2] / 1e6, e[1]))
end
