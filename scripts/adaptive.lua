-- A custom chunk rule and error policy, for accounts that hit
-- "Too many concurrent requests" or want gentler retries.
--
--   gmailscript run scripts/adaptive.lua --sim --sim-faults 503:0.05,429:0.05
--
-- Leaves `result` (report, slow_downs) for `gmailscript repl -i`.

local limit = tonumber(arg[1] or "2000")
local slow_downs = 0

local report = gmail.batch(gmail.list{ limit = limit }, {
  format = "minimal",

  -- Chunk size from the last chunk's figures: halve on concurrency errors,
  -- creep up by 5 after a clean chunk, never past 100.
  chunk = function(stats)
    if stats.sent == 0 then return 25 end
    if stats.concurrency_errors > 0 or stats.network_error then
      slow_downs = slow_downs + 1
      return math.max(5, stats.sent // 2)
    end
    if stats.ok == stats.sent then
      return math.min(100, stats.sent + 5)
    end
    return stats.sent
  end,

  on_error = function(err, id, attempt)
    if err.class == "rate" then
      -- Our own schedule: 2, 4, 8... seconds, at most 30, or what Gmail asked.
      return "retry", math.max(err.retry_after or 0, math.min(30, 2 ^ attempt))
    elseif err.class == "server" or err.class == "network" then
      if attempt < 6 then return "retry" end
      return "fail"
    elseif err.status == 404 then
      return "skip"
    elseif err.class == "precondition" then
      log.error(err.diagnosis or err.message)
      return "abort"
    end
    return "fail"
  end,
})

result = { report = report, slow_downs = slow_downs }

if report.stopped then
  log.warn(string.format("adaptive: the run stopped early, after %d messages", report.ok))
  return
end

print(string.format("%d fetched, %d retried, %d failed, %d skipped; slowed down %d times; %.1f s",
  report.ok, report.retried, report.failed, report.skipped, slow_downs, report.seconds))
