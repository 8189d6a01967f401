-- Restore mail into Gmail from a backup folder or a Takeout mbox, each message once.
--
--   gmailscript run scripts/restore.lua --account dest --dry-run -- /backups/alice
--   gmailscript run scripts/restore.lua --account dest -- /backups/alice   # written by backup.lua
--   gmailscript run scripts/restore.lua --account dest -- takeout.mbox     # Google Takeout
--
-- A folder is read as a Maildir (input.maildir: the label names backup.lua
-- kept in .gmailscript-labels.jsonl, else the seen/flagged flags); a file
-- as an mbox (input.mbox: Takeout's X-Gmail-Labels). Messages go in with
-- messages.import (25 quota units each, paced to the quota), their labels
-- with them: system labels by id, user labels by name, created when
-- missing; a name Gmail refuses (such as "Muted") is created as
-- "Muted (restored)" and reported. The state, beside the source and named
-- for the destination mailbox, records each message once Gmail gave its
-- id; a killed run resumes there and sends nothing twice. --dry-run says
-- what would be imported and which labels made, and changes nothing.

local src = arg[1]
if not src then
  error("restore: name what to restore: gmailscript run restore.lua --account dest -- /backups/alice (or takeout.mbox)", 0)
end
src = src:gsub("/+$", "")

local function is_file(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local ok = f:read(0)
  f:close()
  return ok ~= nil or path:match("%.mbox$") ~= nil
end

local profile = assert(gmail.profile())
local items, kind, state_path
if is_file(src) then
  items, kind = input.mbox(src), "mbox"
  state_path = src .. ".restore-" .. profile.email .. ".state"
else
  items, kind = input.maildir(src), "maildir"
  state_path = src .. "/.gmailscript-restore-" .. profile.email .. ".state"
end

-- A dry run leaves no state behind; it reads one a real run left.
local state
if not DRY_RUN or io.open(state_path, "rb") then
  state = store.open(state_path)
end

local report = gmail.import(items, { resume = state })

local renamed = {}
for from, to in pairs(report.labels_renamed) do
  renamed[#renamed + 1] = string.format("%q -> %q", from, to)
end
table.sort(renamed)
result = { src = src, kind = kind, email = profile.email, report = report }

local verb = report.dry_run and "would import" or "imported"
print(string.format(
  "restore of %s (%s) into %s: %s %d, %d already there, %d failed, %d retried, %d quota units, %.1f s",
  src, kind, profile.email, verb, report.ok, report.already_done, report.failed,
  report.retried, report.units, report.seconds))
if #report.labels_created > 0 then
  print((report.dry_run and "labels to create: " or "labels created: ") .. table.concat(report.labels_created, ", "))
end
if #renamed > 0 then
  print("labels Gmail refused, renamed: " .. table.concat(renamed, ", "))
end
if #report.labels_left_off > 0 then
  print("label names with nothing to set, left off: " .. table.concat(report.labels_left_off, ", "))
end
for i, f in ipairs(report.failures) do
  if i > 10 then print(string.format("... and %d more failures", #report.failures - 10)) break end
  print(string.format("failed: %s: %s", f.id, f.error.message))
end
if report.stopped then
  log.warn("restore: stopped early (" .. report.stopped .. "); run again to go on")
end
