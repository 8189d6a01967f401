---@meta gmailscript
-- LuaLS stubs for the gmailscript Lua API: editors complete and check
-- scripts with them. Add this folder to "workspace.library" in .luarc.json.
-- Reference: docs/lua-api.md.
-- The script's own coroutines (coroutine.resume, coroutine.wrap) may call
-- gmail.*, retry and sleep, and so may gmail.batch's on_message and on_error;
-- its chunk, format and ids functions may not (see docs, Conventions).

---Script arguments: `gmailscript run script.lua -- a b` gives arg[1] == "a".
---arg[0] is the script path. They are also the script's `...`.
---@type string[]
arg = {}

---@alias ErrorClass "rate"|"server"|"network"|"auth"|"not_found"|"precondition"|"invalid"|"quota_daily"|"forbidden"|"malformed"

---An API error. Expected failures of a call come back as `nil, err`.
---tostring(err) gives "STATUS REASON: MESSAGE" (and the diagnosis).
---@class GmailError
---@field status integer HTTP status (0 when no answer arrived)
---@field reason string Google's reason, e.g. "rateLimitExceeded", "failedPrecondition"
---@field message string
---@field class ErrorClass
---@field retry_after? number seconds the server asked to wait
---@field diagnosis? string what usually causes it and what to do
---@field too_old? boolean history.list: the start is older than Gmail keeps (do a full sync)
---@field concurrent boolean a rate error for too many calls in flight (fewer at once helps)

---A message as fetched. Which fields are present depends on the format:
---minimal has id, thread_id, labels, snippet, size, date, history_id;
---metadata adds headers; full adds the body parts; raw adds the RFC 822 text.
---@class Message
---@field id string
---@field thread_id string
---@field labels string[] label ids, e.g. {"INBOX", "UNREAD", "Label_3"}
---@field snippet string
---@field size integer sizeEstimate in bytes
---@field date number internalDate, seconds since the epoch (fractional)
---@field history_id string
---@field format "minimal"|"metadata"|"full"|"raw"
local Message = {}

---A header's value, RFC 2047 decoded; nil when absent. Case-insensitive.
---@param name string
---@return string|nil
function Message:header(name) end

---All headers in order, decoded.
---@return {name: string, value: string}[]
function Message:headers() end

---The best text of the body (text/plain, else HTML without tags); nil for
---minimal and metadata formats.
---@return string|nil
function Message:text() end

---The whole RFC 822 message (raw format only; nil otherwise).
---@return string|nil
function Message:raw() end

---True if the message carries this label (id or name).
---@param label string
---@return boolean
function Message:has_label(label) end

---@class ChunkStats
---@field sent integer parts in the last chunk
---@field ok integer
---@field concurrency_errors integer parts answered "Too many concurrent requests"
---@field rate_errors integer other rate errors
---@field server_errors integer
---@field network_error boolean the exchange broke
---@field size integer the adaptive size proposed for the next chunk

---@alias Decision "retry"|"skip"|"fail"|"abort"|"split"

---@class BatchOptions
---@field format? "minimal"|"metadata"|"full"|"raw"|fun(id: string): FetchRequest default "metadata"; an error a format function raises, or a request that is not valid, stops the run and is re-raised by gmail.batch
---@field headers? string[] metadata headers to ask for (default From, To, Subject, Date)
---@field chunk? integer|fun(stats: ChunkStats): integer calls per batch request, 1-100 (default adaptive from 50); an error a chunk function raises, or a size out of range, stops the run and is re-raised by gmail.batch
---@field max_chunk? integer upper bound for the adaptive size (default 50, or the fixed chunk; at most 100)
---@field parallel? integer batch requests in flight at once, 1-16 (default 1; more, smaller ones while quota pacing cuts chunks short)
---@field on_error? fun(err: GmailError, id: string, attempt: integer): Decision?, number? per-failure policy; the optional number is a delay in seconds for "retry" (a number from 0 to 86400, else gmail.batch raises); nil lets the default policy decide. It may call gmail.* (the batch waits for it). An error it raises stops the run and is re-raised by gmail.batch
---@field on_message? fun(msg: Message) called once per delivered message, in the order answered; it may call gmail.* (meanwhile the batch goes on fetching, up to about two chunks ahead); an error it raises stops the run and is re-raised by gmail.batch
---@field resume? State skip ids already done; record new ones
---@field max_attempts? integer hard cap on tries per id: a "retry" or "split" at this many tries becomes "fail" (default 10)
---@field backoff? RetryOptions wait before a retry when on_error gives no delay (default base "1s", max "64s"); its attempts, if given, also caps the tries per id unless max_attempts is given
---@field progress? boolean show a progress bar on a terminal (default true)
---@field total? integer expected count, 0-4294967295, for the progress bar when ids is an iterator (default #ids for an array)

---@class BatchReport
---@field ok integer delivered (modify: messages changed, counting only batchModify calls answered with success)
---@field already_done integer gmail.batch only: ids skipped because the resume state had them done (not in skipped)
---@field skipped integer
---@field failed integer
---@field retried integer re-sends of failed parts
---@field units integer quota units spent
---@field seconds number
---@field rate_errors integer
---@field not_done integer taken from ids (or waiting for a retry) but not finished because the run stopped
---@field stopped? string why the run stopped early: "stopped on ID: ..." (policy abort; exit code 3), "cancelled" (Ctrl-C: exit code 130 in run; in the REPL the entry goes on), "listing failed: ..." (gmail.list failed; exit code 3), "could not store ID: ..." (resume state, or an output following it, not written; exit code 3), "stopped: Gmail asks to wait until ..." (a wait longer than --max-wait; exit code 3)
---@field failures {id: string, error: GmailError, attempts: integer}[] modify: id reads "FIRST..LAST (N ids)", one entry per batchModify call
---@field skips {id: string, error: GmailError, attempts: integer}[]
---@field dry_run? boolean modify and trash only: true under --dry-run; nothing was changed

---@class ListOptions
---@field q? string Gmail search query, e.g. "older_than:1y -in:chats"
---@field labels? string[] label ids or names; all must match
---@field include_spam_trash? boolean
---@field limit? integer stop after this many ids (0-4294967295)
---@field page_size? integer ids per page (1-500, default 500)

---@class GetOptions
---@field format? "minimal"|"metadata"|"full"|"raw" default "full"
---@field headers? string[] with metadata: which headers

---@class FetchRequest
---@field method? "GET"|"POST"|"PUT"|"PATCH"|"DELETE"|string default "GET" (any case)
---@field path string below users/{user}/, e.g. "labels" or "messages/ID/attachments/AID"; no "?", no spaces
---@field query? table<string, string|number|boolean|(string|number|boolean)[]> query parameters; a list repeats the parameter
---@field body? table JSON body

---@class ModifyOptions
---@field add? string[] label ids or names to add
---@field remove? string[] label ids or names to remove

---@class HistoryChange
---@field history_id string
---@field type "added"|"deleted"|"labels_added"|"labels_removed"
---@field id string message id
---@field thread_id string
---@field labels string[] for added: the message's labels; for label changes: the labels added or removed
---@field message_labels? string[] for label changes: the message's labels after the change

---The iterator gmail.list returns: a callable userdata (type() is
---"userdata"). Each call gives id, thread_id; nil at the end. Works in
---`for id, thread_id in gmail.list{...} do`, and gmail.batch takes it
---directly (pages are fetched as the batch pulls ids). Used once: after it
---was given to a gmail.batch, calling it gives nil and giving it to another
---gmail.batch raises.
---@class IdIterator
---@overload fun(): string|nil, string|nil

---The iterator gmail.history returns: a callable userdata; each call gives
---the next change, nil at the end. A lasting error on a later page raises.
---@class HistoryIterator
---@overload fun(): HistoryChange|nil

gmail = {}

---In a `--users` run, the address of the mailbox this Lua state acts for;
---nil in a run of one mailbox (use gmail.profile().email there).
---@type string|nil
gmail.user = nil

---Message ids matching a query, fetched page by page as the loop (or the
---batch) asks. Transient errors are retried; a lasting one raises
---"gmail.list: ..." from the loop. An unknown label name raises at once.
---@param opts? ListOptions
---@return IdIterator iterator giving id, thread_id per call
function gmail.list(opts) end

---One message.
---@param id string
---@param opts? GetOptions
---@return Message|nil
---@return GmailError|nil
function gmail.get(id, opts) end

---Any users/{user}/... call; returns the decoded JSON answer (JSON null
---becomes json.null). With --dry-run, a call other than GET is not sent and
---returns an empty table.
---@param req FetchRequest
---@return table|nil
---@return GmailError|nil
function gmail.fetch(req) end

---Fetch many messages through batches: paced to the quota, failed parts
---retried per `on_error`, each message handed to `on_message` once.
---Raises for wrong arguments or options, for a callback that raised
---(on_message, on_error, chunk, format) or an ids function that raised or
---gave something other than a string or nil (the batch stops, commits, then
---raises that error; pcall catches it, and nothing of that batch counts
---toward the exit code), and when the state cannot be written at the end
---(a closed resume State included). A gmail.list that fails stops the batch
---with report.stopped = "listing failed: ..." (exit code 3) instead.
---@param ids string[]|IdIterator|fun(): string|nil an array, gmail.list{...}, or a function giving one id per call (an error it raises is re-raised by gmail.batch)
---@param opts? BatchOptions
---@return BatchReport
function gmail.batch(ids, opts) end

---Changes since a history id (from gmail.profile().history_id or a store).
---@param start_history_id string|integer
---@return HistoryIterator|nil iterator over changes, oldest first
---@return GmailError|nil err.too_old when Gmail no longer keeps that history
function gmail.history(start_history_id) end

---@class WatchOptions
---@field every? number|string seconds between polls, or "30s", "2m" (default 30 s, at least 0.1 s)
---@field state? State where the mark is kept (key "watch.mark"); without one a restart starts from now
---@field start? string|integer history id to start after (default: the state's mark, else now)

---@class WatchResync
---@field type "resync"
---@field from string the history id Gmail no longer keeps
---@field history_id string changes from here on are told

---The mailbox's changes for ever, for `for c in gmail.watch{...} do`: the
---changes of gmail.history, and one WatchResync when the history is too
---old. The mark moves past a change when the loop body for it returned
---(the next turn, or a break), committed to `state`. Transient failures
---are retried for ever; Ctrl-C/SIGTERM ends the loop after the body in
---progress (exit 0).
---@param opts? WatchOptions
---@return fun(): HistoryChange|WatchResync|nil
function gmail.watch(opts) end

---@return {id: string, name: string, type: "system"|"user"}[]|nil
---@return GmailError|nil
function gmail.labels() end

---@return {email: string, messages_total: integer, threads_total: integer, history_id: string}|nil
---@return GmailError|nil
function gmail.profile() end

---Add and remove labels on many messages (batchModify, 1,000 ids a call).
---At least one of add and remove is required; names are resolved against
---gmail.labels() (labels are not created). Each failures/skips entry is one
---call, its id "FIRST..LAST (N ids)". With --dry-run, prints what would
---change and changes nothing.
---@param ids string[]
---@param opts ModifyOptions
---@return BatchReport
function gmail.modify(ids, opts) end

---Move messages to the trash. With --dry-run, prints and changes nothing.
---@param ids string[]
---@return BatchReport
function gmail.trash(ids) end

---@class ImportItem
---@field raw string the message's RFC 822 bytes, sent as they are
---@field labels? string[] label names or system ids, e.g. {"INBOX", "Work/2024"}
---@field key? string stable source key for resume (default: "sha256:" .. digest of raw)

---@class ImportResult
---@field key string
---@field id string Gmail's id of the message
---@field thread_id string
---@field labels string[] label ids

---@class ImportOptions
---@field resume? State keys done are skipped; keys imported are recorded
---@field create_labels? boolean create missing user labels (default true)
---@field never_mark_spam? boolean import only (default true)
---@field internal_date? "header"|"received" the date Gmail gives it (default "header")
---@field mode? "import"|"insert" (default "import")
---@field on_error? fun(err: GmailError, key: string, attempt: integer): ("retry"|"skip"|"fail"|"abort"|"split"|nil), number?
---@field on_message? fun(result: ImportResult)
---@field parallel? integer uploads in flight, 1..16 (default 4)
---@field progress? boolean (default true)
---@field total? integer the progress bar's length for an iterator
---@field user? string import into this mailbox (an address) with the run's credentials: a service account acts for it as subject

---@class ImportReport: BatchReport
---@field already_done integer keys done before this run (recovered included)
---@field recovered integer keys left pending by a killed run, found in Gmail by Message-ID
---@field labels_created string[] names of the labels made
---@field labels_renamed table<string, string> refused name -> the name made, e.g. "Muted" -> "Muted (restored)"
---@field labels_left_off string[] names with nothing to set ("Opened", "Draft", ...), or missing with create_labels = false

---Put messages into the mailbox as their bytes, with their labels, each once
---(messages.import, 25 quota units each, one upload per message).
---With --dry-run, prints what would be imported and which labels made.
---@param items ImportItem[]|fun(): ImportItem|nil
---@param opts? ImportOptions
---@return ImportReport
function gmail.import(items, opts) end

---The built-in policy gmail.batch uses when a script gives no on_error;
---gmail.modify and gmail.trash always use it. Read-only: setting a field,
---or replacing it, raises.
gmail.default_policy = {}
---rate, server, network: "retry"; not_found: "skip"; precondition, auth,
---quota_daily: "abort"; invalid, forbidden, malformed (and an unknown or
---missing class): "fail".
---@param err GmailError
---@param id string
---@param attempt integer
---@return Decision
function gmail.default_policy.on_error(err, id, attempt) end

---@class RetryOptions
---@field attempts? integer tries in all (default 6)
---@field base? string|number first backoff, e.g. "1s", "250ms" or seconds, up to a day (default "1s")
---@field max? string|number cap, e.g. "64s", up to a day (default "64s")
---@field jitter? "full"|"none" default "full"

---Call fn until it succeeds: an error it raises, or a `nil, err` whose
---err.class is rate, server or network, is retried with backoff. Returns
---fn's results (a `nil, err` of another class is returned as it is). When
---the tries run out it raises: the last error fn raised, or
---"retry: gave up after N tries: " .. tostring(err) for a returned nil, err.
---@generic T
---@param fn fun(): T
---@param opts? RetryOptions
---@return T
function retry(fn, opts) end

---@class Output
local Output = {}
---Write one message (or, for jsonl, any table). Raw formats (mbox,
---maildir, eml) need messages fetched with format "raw". Raises after close.
---@param msg Message|table
function Output:write(msg) end
---Messages written through this Output so far (also after close).
---@return integer
function Output:count() end
---Bring a stored message's labels up to date. maildir: renames the file
---so its flags S and F follow UNREAD and STARRED; true if it changed.
---jsonl, mbox and eml keep no labels outside the message: false.
---@param id string
---@param labels string[] label ids, as in msg.labels
---@return boolean changed
function Output:relabel(id, labels) end
---Flush to disk and release the output: the file lock (jsonl, mbox) is let
---go, so the same path can be opened again at once, and a State it followed
---no longer records its length (commit before closing to keep later writes).
---Later write and relabel raise "output.KIND:METHOD: this output is closed";
---count() still answers; tostring gives "KIND output (closed, N written)".
---Closing twice is harmless.
function Output:close() end

---@class AppendOptions
---@field resume? State follow this state: the length is recorded at each commit, and cut back to it on reopening
---@field overwrite? boolean start the file over (cannot go with resume)

output = {}
---One JSON value per line; a message is written as its Gmail JSON. Without
---resume or overwrite, a file that already has content is refused.
---@param path string
---@param opts? AppendOptions
---@return Output
function output.jsonl(path, opts) end
---An mbox file as Google Takeout writes it (X-Gmail-Labels, X-GM-THRID).
---Options and an existing file as for output.jsonl. Fetches the label list.
---@param path string
---@param opts? AppendOptions
---@return Output
function output.mbox(path, opts) end
---A Maildir (tmp/, new/, cur/): one file per message, written atomically,
---flags S and F from UNREAD and STARRED.
---@param dir string
---@return Output
function output.maildir(dir) end
---One .eml file per message in a dated tree: dir/YYYY/MM/ID.eml.
---@param dir string
---@return Output
function output.eml(dir) end

---@class State
local State = {}
---@param id string
---@return boolean
function State:is_done(id) end
---@param id string
function State:mark_done(id) end
---@return integer
function State:count() end
---@param key string
---@return string|nil
function State:get(key) end
---@param key string
---@param value string|number|boolean|nil kept as a string; nil deletes
function State:set(key, value) end
---The failures recorded by gmail.batch{resume = state} and not cleared
---since. error is a plain table {status, reason, message, class}.
---@return {id: string, error: {status: integer, reason: string, message: string, class: ErrorClass}, attempts: integer}[]
function State:failures() end
---Write everything to disk now: outputs opened with {resume = state} are
---flushed and their lengths recorded, then the state is committed
---(gmail.batch does this about every 50 messages and at its end).
function State:commit() end
---Commit, then release the file: store.open(same path) works again at once.
---The other methods of a closed State raise "state:METHOD: the state PATH is
---closed" (path() and tostring still answer); closing twice is harmless.
function State:close() end
---The path given to store.open.
---@return string
function State:path() end

store = {}

---Readers for gmail.import: each returns an iterator of {raw, labels, key}.
---Messages come back with CRLF line ends unless crlf = false.
input = {}

---The label sidecar backup.lua writes beside a Maildir.
input.LABELS_FILE = ".gmailscript-labels.jsonl"

---The messages of a Maildir (cur/ and new/); labels from the sidecar, else the flags.
---@param path string
---@param opts? {crlf?: boolean}
---@return fun(): ImportItem|nil
function input.maildir(path, opts) end

---The messages of an mbox file; labels from Takeout's X-Gmail-Labels.
---@param path string
---@param opts? {crlf?: boolean}
---@return fun(): ImportItem|nil
function input.mbox(path, opts) end

---Every *.eml file below dir; key is the path below dir.
---@param dir string
---@param opts? {crlf?: boolean}
---@return fun(): ImportItem|nil
function input.eml(dir, opts) end
---Open (or create) a state file: an SQLite database. A file that is not a
---gmailscript state file is reported, never overwritten. A file another
---State holds (this script's too, until state:close() or the script's end)
---raises "in use".
---@param path string
---@return State
function store.open(path) end

json = {}
---Encode as JSON: a table whose keys are exactly 1..n (n > 0) becomes an
---array; any other table an object whose number keys become strings, so no
---key is dropped ({1, 2, nil, 4} gives {"1":1,"2":2,"4":4}); {} gives {}.
---A Message becomes its Gmail JSON at any depth. Raises "json.encode: ..."
---for what has no JSON form (NaN, infinity, a function, other userdata, a
---table as a key) and for nesting deeper than 100 levels. Non-UTF-8 bytes
---become U+FFFD.
---@param value any
---@param opts? {pretty?: boolean}
---@return string
function json.encode(value, opts) end
---Decode JSON text: objects and arrays become tables, null becomes json.null.
---On invalid JSON: nil and a message string ("json.decode: ...").
---@param text string
---@return any|nil value
---@return string|nil message
function json.decode(text) end
---The JSON null value (decode and gmail.fetch give it for null). A distinct
---value, not nil, and truthy: test with `v == json.null`.
---@type lightuserdata
json.null = nil

log = {}
---@param ... any
function log.debug(...) end
---@param ... any
function log.info(...) end
---@param ... any
function log.warn(...) end
---@param ... any
function log.error(...) end

time = {}
---Seconds since the epoch (fractional).
---@return number
function time.now() end
---Pause (engine work goes on underneath). seconds: a number from 0 to
---86400; anything else (a string too) raises.
---@param seconds number
function time.sleep(seconds) end
---Same as time.sleep.
---@param seconds number
function sleep(seconds) end

---True when the run was started with --dry-run.
---@type boolean
DRY_RUN = false
