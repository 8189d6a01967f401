-- Export the headers of the messages a query matches, one JSON object per line.
--
--   gmailscript run scripts/export.lua --sim -- 'newer_than:1y' export.jsonl
--
-- Each line: id, thread_id, date (whole seconds since 1970, UTC), from, to,
-- cc, subject, message_id, labels, size.
--
-- A state file beside the output (FILE.state) records what is in it: an
-- interrupted export (Ctrl-C, a kill, a failed listing) goes on where it
-- stopped when run again with the same query and file, and a later run adds
-- only the messages the file does not have yet. To start over, remove FILE
-- and FILE.state. Leaves `result` (path, query, written, already_there,
-- report) for `gmailscript repl -i`.

local query = arg[1] or "newer_than:1y"
local path = arg[2] or "export.jsonl"
local state = store.open(path .. ".state")
local before = state:get("query")
if before and before ~= query then
  error(string.format("export: %s holds an export of %q, not of %q; give another file, or remove %s and %s to start over",
    path, before, query, path, state:path()), 0)
end
state:set("query", query)
local out = output.jsonl(path, { resume = state })

local report = gmail.batch(gmail.list{ q = query }, {
  format = "metadata",
  headers = { "From", "To", "Cc", "Subject", "Date", "Message-ID" },
  resume = state,
  on_message = function(m)
    out:write{
      id = m.id,
      thread_id = m.thread_id,
      date = math.floor(m.date),
      from = m:header("From"),
      to = m:header("To"),
      cc = m:header("Cc"),
      subject = m:header("Subject"),
      message_id = m:header("Message-ID"),
      labels = m.labels,
      size = m.size,
    }
  end,
})
out:close()
state:close()

result = { path = path, query = query, written = report.ok, already_there = report.already_done, report = report }

if report.stopped then
  log.warn(string.format("export: stopped early: %d messages added to %s this run (%d were there already); run the same command again to go on",
    report.ok, path, report.already_done))
else
  print(string.format("exported %d messages matching %q to %s (%d already there, %d failed, %.1f s)",
    report.ok, query, path, report.already_done, report.failed, report.seconds))
end
