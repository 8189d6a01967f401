-- The default policy: what gmail.batch does with a failed part when a
-- script gives no `on_error`. It ships inside gmailscript as
-- `gmail.default_policy`; copy it into your script to change it.
--
--   gmail.batch(ids, { on_error = function(err, id, attempt)
--     if err.status == 404 then return "fail" end      -- stricter than default
--     return gmail.default_policy.on_error(err, id, attempt)
--   end })

local policy = {}

function policy.on_error(err, id, attempt)
  if err.class == "rate" or err.class == "server" or err.class == "network" then
    -- Transient: retried with full-jitter backoff from 1 s, capped at 64 s
    -- (a Retry-After from the server is honoured), up to max_attempts.
    return "retry"
  elseif err.class == "not_found" then
    -- Deleted between list and get: recorded as skipped.
    return "skip"
  elseif err.class == "precondition" or err.class == "auth" then
    -- Retrying cannot help (a service account without a subject, a user
    -- without Gmail, a token refused even after a refresh): stop, and
    -- err.diagnosis says what to do. The exit code is 3.
    return "abort"
  end
  -- Anything else is recorded as failed; the run goes on; exit code 1.
  return "fail"
end

return policy
