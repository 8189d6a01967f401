-- Copy one mailbox into another directly, each message once, with its labels.
--
--   gmailscript run scripts/migrate.lua --account corp --user alice@example.com -- bob@example.com
--   gmailscript run scripts/migrate.lua --account corp --user alice@example.com --dry-run -- bob@example.com
--
-- The source is the run's mailbox (--user with a service account); the
-- destination, the argument, is reached with the same credentials:
-- gmail.import{user = ...} has a service account act for that user as its
-- subject (domain-wide delegation). A one-user login (or a fixed
-- GMAILSCRIPT_TOKEN) acts for its own mailbox only, and Gmail refuses the
-- destination with 403 "Delegation denied".
--
-- Every message gmail.list gives (spam and trash left out, as backup.lua
-- does) is fetched as raw bytes and imported into the destination
-- (messages.import, 25 units, paced to the destination's quota) with its
-- label names: system labels by id, user labels by name, created when
-- missing, refused names renamed "<name> (restored)" and reported. The
-- state (arg 2, default ./.gmailscript-migrate-SRC-to-DEST.state) records
-- each source id once the destination gave its id: a killed run resumes,
-- a second run sends nothing and fetches nothing again.

local dest = arg[1]
if not dest or not dest:find("@", 1, true) then
  error("migrate: name the destination mailbox: gmailscript run migrate.lua --account A --user SRC -- DEST@example.com", 0)
end

local profile = assert(gmail.profile())
if profile.email:lower() == dest:lower() then
  error("migrate: the destination " .. dest .. " is the source mailbox itself", 0)
end
local state_path = arg[2] or (".gmailscript-migrate-" .. profile.email .. "-to-" .. dest .. ".state")
local state
if not DRY_RUN or io.open(state_path, "rb") then
  state = store.open(state_path)
end

-- Source label ids to names (a label made during the run is looked up again).
local names = {}
local function load_names()
  for _, l in ipairs(assert(gmail.labels())) do names[l.id] = l.name end
end
load_names()

-- One message at a time, fetched when gmail.import asks for it; ids done
-- before are passed over without fetching.
local ids = gmail.list{}
local fetch_failed = {}
local skipped = 0
local function items()
  for id in ids do
    if state and state:is_done(id) then
      skipped = skipped + 1
    else
      local msg, err = gmail.get(id, { format = "raw" })
      if msg then
        local labels = {}
        for _, l in ipairs(msg.labels) do
          if not names[l] then load_names() end
          labels[#labels + 1] = names[l] or l
        end
        return { raw = msg:raw(), labels = labels, key = id }
      elseif err.class ~= "not_found" then
        fetch_failed[#fetch_failed + 1] = string.format("%s: %s", id, tostring(err))
      end
    end
  end
  return nil
end

local report = gmail.import(items, { resume = state, user = dest, total = profile.messages_total })

local renamed = {}
for from, to in pairs(report.labels_renamed) do
  renamed[#renamed + 1] = string.format("%q -> %q", from, to)
end
table.sort(renamed)
result = { src = profile.email, dest = dest, report = report, fetch_failed = fetch_failed }

print(string.format(
  "migrate of %s into %s: %s %d, %d already there, %d failed, %d retried, %d quota units, %.1f s",
  profile.email, dest, report.dry_run and "would import" or "imported", report.ok,
  report.already_done + skipped, report.failed + #fetch_failed, report.retried, report.units, report.seconds))
if #report.labels_created > 0 then
  print((report.dry_run and "labels to create: " or "labels created: ") .. table.concat(report.labels_created, ", "))
end
if #renamed > 0 then
  print("labels Gmail refused, renamed: " .. table.concat(renamed, ", "))
end
for i, f in ipairs(report.failures) do
  if i > 10 then print(string.format("... and %d more failures", #report.failures - 10)) break end
  print(string.format("failed: %s: %s", f.id, f.error.message))
end
for i, f in ipairs(fetch_failed) do
  if i > 10 then print(string.format("... and %d more source messages not fetched", #fetch_failed - 10)) break end
  print("not fetched from the source: " .. f)
end
if state then state:close() end
if report.stopped then
  log.warn("migrate: stopped early (" .. report.stopped .. "); run again to go on")
end
if #fetch_failed > 0 then
  error(string.format("migrate: %d source messages could not be fetched; run again to try them", #fetch_failed), 0)
end
