-- Label and archive old newsletters. See what it would do first:
--
--   gmailscript run scripts/cleanup.lua --sim --dry-run
--   gmailscript run scripts/cleanup.lua --sim
--
-- A newsletter here is mail in the inbox, older than DAYS (default 30),
-- that carries a List-Unsubscribe header — something Gmail's own filters
-- cannot test. Matches get the label LABEL (default "Newsletters") and
-- leave the inbox. Leaves `result` (found: the ids; report; modified: the
-- gmail.modify report) for `gmailscript repl -i`.

local days = tonumber(arg[1] or "30")
local label = arg[2] or "Newsletters"
if not days then
  error("cleanup: DAYS must be a number, got " .. arg[1], 0)
end

local found = {}
local report = gmail.batch(gmail.list{ q = "in:inbox older_than:" .. days .. "d" }, {
  format = "metadata",
  headers = { "List-Unsubscribe", "From", "Subject" },
  on_message = function(m)
    if m:header("List-Unsubscribe") then
      found[#found + 1] = m.id
    end
  end,
})
result = { found = found, report = report }

-- A listing that stopped part way found only some: change nothing, so a
-- rerun does the whole job (gmailscript's last line says why it stopped).
if report.stopped then
  log.warn(string.format("cleanup: the run stopped early, after %d messages; nothing changed", report.ok))
  return
end

print(string.format("%d of %d inbox messages older than %d days are newsletters",
  #found, report.ok, days))

if #found > 0 then
  local r = gmail.modify(found, { add = { label }, remove = { "INBOX" } })
  result.modified = r
  if r.dry_run then
    print("dry run: nothing changed; run without --dry-run to apply")
  else
    print(string.format("labelled %q and archived %d messages", label, r.ok))
  end
end
