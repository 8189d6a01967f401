---@meta gmailscript
-- LuaLS stubs for the gmailscript Lua API: editors complete and check
-- scripts with them. Add this folder to "workspace.library" in .luarc.json.
-- Reference: docs/lua-api.md.

---Script arguments: `gmailscript run script.lua -- a b` gives arg[1] == "a".
---arg[0] is the script path.
---@type string[]
arg = {}

---@alias ErrorClass "rate"|"server"|"network"|"auth"|"not_found"|"precondition"|"invalid"|"quota_daily"|"forbidden"

---An API error. Expected failures of a call come back as `nil, err`.
---@class GmailError
---@field status integer HTTP status (0 when no answer arrived)
---@field reason string Google's reason, e.g. "rateLimitExceeded", "failedPrecondition"
---@field message string
---@field class ErrorClass
---@field retry_after? number seconds the server asked to wait
---@field diagnosis? string what usually causes it and what to do
---@field too_old? boolean history.list: the start is older than Gmail keeps (do a full sync)

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
---@field format? "minimal"|"metadata"|"full"|"raw"|fun(id: string): FetchRequest default "metadata"
---@field headers? string[] metadata headers to ask for (default From, To, Subject, Date)
---@field chunk? integer|fun(stats: ChunkStats): integer calls per batch (default adaptive from 50)
---@field max_chunk? integer upper bound for the adaptive size (default 50, at most 100)
---@field parallel? integer batches in flight at once (default 1)
---@field on_error? fun(err: GmailError, id: string, attempt: integer): Decision, number? per-failure policy; the optional number is a delay in seconds for "retry"
---@field on_message? fun(msg: Message) called once per delivered message
---@field resume? State skip ids already done; record new ones
---@field max_attempts? integer hard cap on tries per id (default 10)
---@field backoff? RetryOptions backoff for retries (default base "1s", max "64s")
---@field progress? boolean show a progress bar on a terminal (default true)
---@field total? integer expected count, for the progress bar when ids is an iterator

---@class BatchReport
---@field ok integer delivered
---@field skipped integer
---@field failed integer
---@field retried integer re-sends of failed parts
---@field units integer quota units spent
---@field seconds number
---@field rate_errors integer
---@field not_done integer begun but not finished because the run stopped
---@field stopped? string why the run stopped early (abort, cancel, sink error)
---@field failures {id: string, error: GmailError, attempts: integer}[]
---@field skips {id: string, error: GmailError, attempts: integer}[]
---@field dry_run? boolean mutations only: nothing was changed

---@class ListOptions
---@field q? string Gmail search query, e.g. "older_than:1y -in:chats"
---@field labels? string[] label ids or names; all must match
---@field include_spam_trash? boolean
---@field limit? integer stop after this many ids
---@field page_size? integer ids per page (1-500, default 500)

---@class GetOptions
---@field format? "minimal"|"metadata"|"full"|"raw" default "full"
---@field headers? string[] with metadata: which headers

---@class FetchRequest
---@field method? "GET"|"POST"|"PUT"|"PATCH"|"DELETE" default "GET"
---@field path string below users/{user}/, e.g. "labels" or "messages/ID/attachments/AID"
---@field query? table<string, string|string[]>
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

gmail = {}

---Message ids matching a query, fetched page by page as the loop asks.
---Transient errors are retried; a lasting one raises.
---@param opts? ListOptions
---@return fun(): string|nil, string|nil iterator yielding id, thread_id
function gmail.list(opts) end

---One message.
---@param id string
---@param opts? GetOptions
---@return Message|nil
---@return GmailError|nil
function gmail.get(id, opts) end

---Any users/{user}/... call; returns the decoded JSON answer.
---@param req FetchRequest
---@return table|nil
---@return GmailError|nil
function gmail.fetch(req) end

---Fetch many messages through batches: paced to the quota, failed parts
---retried per `on_error`, each message handed to `on_message` once.
---@param ids string[]|fun(): string|nil an array or an iterator (e.g. gmail.list{...})
---@param opts? BatchOptions
---@return BatchReport
function gmail.batch(ids, opts) end

---Changes since a history id (from gmail.profile().history_id or a store).
---@param start_history_id string
---@return (fun(): HistoryChange|nil)|nil iterator over changes, oldest first
---@return GmailError|nil err.too_old when Gmail no longer keeps that history
function gmail.history(start_history_id) end

---@return {id: string, name: string, type: "system"|"user"}[]|nil
---@return GmailError|nil
function gmail.labels() end

---@return {email: string, messages_total: integer, threads_total: integer, history_id: string}|nil
---@return GmailError|nil
function gmail.profile() end

---Add and remove labels on many messages (batchModify, 1,000 ids a call).
---With --dry-run, prints what would change and changes nothing.
---@param ids string[]
---@param opts ModifyOptions
---@return BatchReport
function gmail.modify(ids, opts) end

---Move messages to the trash. With --dry-run, prints and changes nothing.
---@param ids string[]
---@return BatchReport
function gmail.trash(ids) end

---@class RetryOptions
---@field attempts? integer tries in all (default 6)
---@field base? string|number first backoff, e.g. "1s", "250ms" or seconds (default "1s")
---@field max? string|number cap, e.g. "64s" (default "64s")
---@field jitter? "full"|"none" default "full"

---Call fn until it succeeds: an error it raises, or a `nil, err` whose
---err.class is rate, server or network, is retried with backoff. Returns
---fn's results; raises the last error when the tries run out.
---@generic T
---@param fn fun(): T
---@param opts? RetryOptions
---@return T
function retry(fn, opts) end

---@class Output
local Output = {}
---Write one message (or, for jsonl, any table). Raw formats (mbox,
---maildir, eml) need messages fetched with format "raw".
---@param msg Message|table
function Output:write(msg) end
---Messages written so far.
---@return integer
function Output:count() end
---Flush and close.
function Output:close() end

output = {}
---One JSON object per line; a message is written as its Gmail JSON.
---@param path string
---@param opts? {resume?: State}
---@return Output
function output.jsonl(path, opts) end
---An mbox file as Google Takeout writes it (X-Gmail-Labels, X-GM-THRID).
---@param path string
---@param opts? {resume?: State}
---@return Output
function output.mbox(path, opts) end
---A Maildir (tmp/, new/, cur/): one file per message, written atomically.
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
---@param value string|number|nil nil deletes
function State:set(key, value) end
---The last failures recorded by gmail.batch{resume = state}.
---@return {id: string, error: GmailError, attempts: integer}[]
function State:failures() end
---Write everything to disk now (batch does this after every chunk).
function State:commit() end
function State:close() end

store = {}
---Open (or create) a state file: an SQLite database. A file that is not a
---gmailscript state file is reported, never overwritten.
---@param path string
---@return State
function store.open(path) end

json = {}
---@param value any
---@param opts? {pretty?: boolean}
---@return string
function json.encode(value, opts) end
---@param text string
---@return any
function json.decode(text) end
---The JSON null value (decode gives it for null).
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
---Pause (engine work goes on underneath).
---@param seconds number
function time.sleep(seconds) end
---Same as time.sleep.
---@param seconds number
function sleep(seconds) end

---True when the run was started with --dry-run.
---@type boolean
DRY_RUN = false
