-- Watch the mailbox and file new mail by rules, until stopped.
--
--   gmailscript run scripts/autolabel.lua --account me              # runs until Ctrl-C / SIGTERM
--   gmailscript run scripts/autolabel.lua --account me --dry-run    # prints what each new message would get
--   gmailscript run scripts/autolabel.lua --account me -- my-rules.lua autolabel.state 1m
--   gmailscript run scripts/autolabel.lua --sim --sim-deliver-every 2s -- "" autolabel.state 1s
--
-- Rules are a Lua table: the RULES below, or a file given as the first
-- argument that returns such a table. Each rule matches on `from`, `to`,
-- `subject` (Lua patterns, matched case-insensitively against the header)
-- and/or `query` (a Gmail search, checked against the new message); all
-- that are given must match. A match applies its actions: `add` and
-- `remove` (label names, created when missing), `archive`, `star`,
-- `read`, `trash`. Every matching rule applies, in order.
--
-- The watch's mark lives in the state file (the second argument, default
-- autolabel.state): a restart goes on where it stopped, and each new
-- message is handled once. When Gmail no longer keeps history that old,
-- the last two days' inbox mail is filed again (rules are safe to apply
-- twice). docs/watch.md shows how to run this as a service.

local RULES = {
  { from = "@billing%.example%.com", add = { "Receipts" }, archive = true },
  { subject = "invoice", add = { "Receipts" } },
  { from = "noreply@github%.com", add = { "GitHub" }, read = true },
  { query = "has:attachment larger:5M", add = { "Big" } },
}

-- Arguments: rules file ("" for the RULES above), state file, poll interval.
local rules_file, state_file = arg[1], arg[2] or "autolabel.state"
if rules_file and rules_file ~= "" then
  local chunk = assert(loadfile(rules_file))
  RULES = chunk()
  if type(RULES) ~= "table" then
    error(rules_file .. ": must return a table of rules, got " .. type(RULES))
  end
end

local KNOWN = { from = true, to = true, subject = true, query = true, add = true, remove = true,
  archive = true, star = true, read = true, trash = true, name = true }
for i, r in ipairs(RULES) do
  for k in pairs(r) do
    if not KNOWN[k] then
      error(string.format("rule %d: unknown field %q (known: from, to, subject, query, add, remove, archive, star, read, trash, name)", i, k))
    end
  end
  if not (r.from or r.to or r.subject or r.query) then
    error(string.format("rule %d: give at least one of from, to, subject, query", i))
  end
end

-- Label names to ids, creating the missing ones (not under --dry-run).
local ids = {}
for _, l in ipairs(assert(gmail.labels())) do ids[l.name:lower()] = l.id end
local function label_id(name)
  local id = ids[name:lower()]
  if id then return id end
  if DRY_RUN then return name end
  local made, err = gmail.fetch{ method = "POST", path = "labels",
    body = { name = name, labelListVisibility = "labelShow", messageListVisibility = "show" } }
  if not made then error("cannot create label " .. name .. ": " .. tostring(err)) end
  log.info("created label " .. name)
  ids[name:lower()] = made.id
  return made.id
end

local function matches(rule, m)
  local function hdr(field, pattern)
    return pattern == nil or ((m:header(field) or ""):lower():find(pattern:lower()) ~= nil)
  end
  if not (hdr("From", rule.from) and hdr("To", rule.to) and hdr("Subject", rule.subject)) then
    return false
  end
  if rule.query then
    -- One search limited to this message: Gmail decides what the query means.
    local msgid = m:header("Message-ID")
    if not msgid then return false end
    local it = gmail.list{ q = "(" .. rule.query .. ") rfc822msgid:" .. msgid:gsub("[<>]", ""),
      include_spam_trash = true, limit = 5 }
    for id in it do if id == m.id then return true end end
    return false
  end
  return true
end

local function file(id)
  local m, err = gmail.get(id, { format = "metadata",
    headers = { "From", "To", "Subject", "Message-ID" } })
  if not m then
    if err.class == "not_found" then return end -- gone already
    error("cannot read " .. id .. ": " .. tostring(err))
  end
  local add, remove, trash, names = {}, {}, false, {}
  for i, r in ipairs(RULES) do
    if matches(r, m) then
      names[#names + 1] = r.name or ("rule " .. i)
      for _, l in ipairs(r.add or {}) do add[#add + 1] = l end
      for _, l in ipairs(r.remove or {}) do remove[#remove + 1] = l end
      if r.archive then remove[#remove + 1] = "INBOX" end
      if r.read then remove[#remove + 1] = "UNREAD" end
      if r.star then add[#add + 1] = "STARRED" end
      trash = trash or r.trash == true
    end
  end
  if #names == 0 then return end
  local what = string.format("%s %q from %s: %s%s%s", id, m:header("Subject") or "",
    m:header("From") or "?",
    #add > 0 and ("+" .. table.concat(add, " +") .. " ") or "",
    #remove > 0 and ("-" .. table.concat(remove, " -") .. " ") or "",
    trash and "trash" or "")
  if DRY_RUN then
    print("would file " .. what .. " (" .. table.concat(names, ", ") .. ")")
    return
  end
  if #add > 0 or #remove > 0 then
    local a, r = {}, {}
    for _, l in ipairs(add) do a[#a + 1] = label_id(l) end
    for _, l in ipairs(remove) do r[#r + 1] = label_id(l) end
    local rep = gmail.modify({ id }, { add = a, remove = r })
    if rep.failed > 0 then error("cannot file " .. id .. ": " .. tostring(rep.failures[1].error)) end
  end
  if trash then
    local rep = gmail.trash({ id })
    if rep.failed > 0 then error("cannot trash " .. id .. ": " .. tostring(rep.failures[1].error)) end
  end
  print("filed " .. what)
end

local function own(c) -- drafts and mail the user sent are not filed
  for _, l in ipairs(c.labels) do if l == "DRAFT" or l == "SENT" then return true end end
  return false
end

local st = store.open(state_file)
local filed = 0
for c in gmail.watch{ every = arg[3] or "30s", state = st } do
  if c.type == "added" and not own(c) then
    file(c.id)
    filed = filed + 1
  elseif c.type == "resync" then
    log.warn("history from " .. c.from .. " is no longer kept: filing the last two days' inbox mail again")
    for id in gmail.list{ q = "in:inbox newer_than:2d" } do file(id) end
  end
end
print(string.format("stopped after %d new message(s)", filed))
