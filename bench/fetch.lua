-- gmailscript's side of the comparison: fetch every listed message in the
-- given format, write each delivered id to a file.
--   gmailscript run bench/fetch.lua --endpoint URL --quota 2026 --quota-window 2s -- FORMAT OUT_IDS
local format, out_path = arg[1] or "metadata", arg[2] or "ids.txt"
local out = io.open(out_path, "w")
local report = gmail.batch(gmail.list{}, {
  format = format,
  progress = false,
  on_message = function(m) out:write(m.id, "\n") end,
})
out:close()
io.stderr:write(string.format("gmailscript: %d ok, %d failed, %d skipped, %d retried\n",
  report.ok, report.failed, report.skipped, report.retried))
