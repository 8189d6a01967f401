-- Back up a mailbox to a Maildir, and keep it up to date.
--
--   gmailscript run scripts/backup.lua --sim            # into ./backup
--   gmailscript run scripts/backup.lua --sim -- ~/mail  # somewhere else
--   gmailscript run scripts/backup.lua --account corp --users all -- /backups
--                                       # a folder that exists: /backups/<address>/ each
--
-- The first run fetches every message (format raw) into DEST/{cur,new,tmp}.
-- Its state (ids done, failures, the history id) lives beside the mail in
-- DEST/.gmailscript-state. A killed run resumes where it stopped and writes
-- nothing twice. A later run is incremental: it asks Gmail's history what
-- changed since, fetches new mail, applies label changes to the Maildir
-- flags (seen, flagged) and notes deletions; if Gmail no longer keeps that
-- history, it lists everything again (done ids are skipped). Leaves
-- `result` (mode, email, dest, report) for `gmailscript repl -i`.
--
-- Label names, not only flags: each message's labels (system ids such as
-- INBOX, user labels by name such as Work/2024) go to
-- DEST/.gmailscript-labels.jsonl, one JSON line per message and per label
-- change, the last line for an id winning. The message files keep Gmail's
-- bytes. scripts/restore.lua reads both back (input.maildir).

local dest = arg[1] or "backup"
-- A --users run (many mailboxes): one Maildir and state per user.
if gmail.user then dest = dest .. "/" .. gmail.user end
local mail = output.maildir(dest)
local state = store.open(dest .. "/.gmailscript-state")

-- Taken before listing, so changes made while we fetch show up next time.
local profile = assert(gmail.profile())

-- Label ids to names (labels made during the run are looked up again).
local names = {}
local function load_names()
  for _, l in ipairs(assert(gmail.labels())) do names[l.id] = l.name end
end
load_names()
local sidecar = assert(io.open(dest .. "/" .. input.LABELS_FILE, "a"))
local function keep_labels(id, label_ids)
  local out = {}
  for _, l in ipairs(label_ids) do
    if not names[l] then load_names() end
    out[#out + 1] = names[l] or l
  end
  -- Written before the message's file: a kill in between leaves a line for
  -- a message not yet there, which the next run writes again.
  sidecar:write(json.encode({ id = id, labels = out }), "\n")
  sidecar:flush()
end

local function fetch(ids, total)
  return gmail.batch(ids, {
    format = "raw",
    resume = state,
    total = total,
    on_message = function(msg)
      keep_labels(msg.id, msg.labels)
      mail:write(msg)
    end,
  })
end

local since = state:get("history_id")
local report, mode
if since then
  local changes, err = gmail.history(since)
  if changes then
    mode = "incremental"
    local new, seen, relabelled, deleted = {}, {}, 0, 0
    for c in changes do
      if c.type == "added" and not seen[c.id] then
        seen[c.id] = true
        new[#new + 1] = c.id
      elseif c.type == "deleted" then
        deleted = deleted + 1
        state:set("deleted:" .. c.id, c.history_id)
      elseif c.message_labels then
        keep_labels(c.id, c.message_labels)
        if mail:relabel(c.id, c.message_labels) then relabelled = relabelled + 1 end
      end
    end
    -- Ids that failed last time get another chance.
    for _, f in ipairs(state:failures()) do
      if not seen[f.id] then new[#new + 1] = f.id end
    end
    report = fetch(new)
    log.info(string.format("history since %s: %d new, %d relabelled, %d deleted",
      since, #new, relabelled, deleted))
  elseif err.too_old then
    log.warn("Gmail no longer keeps history from " .. since .. "; listing everything again")
  else
    error("history: " .. tostring(err))
  end
end

if not report then
  mode = "full"
  report = fetch(gmail.list{}, profile.messages_total)
end

-- Move the history mark on only when the whole run went through.
if not report.stopped then
  state:set("history_id", profile.history_id)
end
state:commit()
sidecar:close()

result = { mode = mode, email = profile.email, dest = dest, report = report }

if report.stopped then
  log.warn(string.format("backup: stopped early: %d messages fetched into %s this run; run again to go on",
    report.ok, dest))
  return
end

print(string.format(
  "%s backup of %s to %s: %d fetched, %d already there, %d skipped, %d failed, %d retried, %d quota units, %.1f s",
  mode, profile.email, dest, report.ok, report.already_done, report.skipped,
  report.failed, report.retried, report.units, report.seconds))
