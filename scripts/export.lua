-- Export the headers of the messages a query matches, one JSON object per line.
--
--   gmailscript run scripts/export.lua --sim -- 'newer_than:1y' export.jsonl
--
-- Each line: id, thread_id, date (seconds), from, to, cc, subject,
-- message_id, labels, size.

local query = arg[1] or "newer_than:1y"
local path = arg[2] or "export.jsonl"
local out = output.jsonl(path, { overwrite = true })

local report = gmail.batch(gmail.list{ q = query }, {
  format = "metadata",
  headers = { "From", "To", "Cc", "Subject", "Date", "Message-ID" },
  on_message = function(m)
    out:write{
      id = m.id,
      thread_id = m.thread_id,
      date = m.date,
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

print(string.format("exported %d messages matching %q to %s (%d failed, %.1f s)",
  report.ok, query, path, report.failed, report.seconds))
