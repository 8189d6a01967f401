//! `coroutine.resume` and `coroutine.wrap` that let a script's own
//! coroutines call `gmail.*`, `retry` and `sleep`.
//!
//! An engine call is async: while its future is pending, mlua suspends the
//! Lua thread running it with a private marker value
//! ([`Lua::poll_pending`]), and the host's executor polls again when the
//! future wakes. Inside a coroutine the script made, Lua's own `resume`
//! would hand that marker to the script as if the coroutine had yielded it.
//! These versions pass the wait up instead: they yield the marker from the
//! thread that called them (up to the host's thread, whose executor waits),
//! then resume the inner coroutine where it was, until it yields or returns
//! something of its own. Plain coroutines behave exactly as in Lua.
//!
//! Where no outer thread can wait (a batch callback, which the engine calls
//! synchronously), passing the wait up raises Lua's "attempt to yield
//! across a C-call boundary", as a direct `gmail.*` call there does.

use mlua::{Function, Lua, Value};

const SHIM: &str = r#"
local pending, create, resume, status, yield, close = ...
local pack, unpack, error = table.pack, table.unpack, error

-- Resume co; while it only waits on the engine, wait with it.
local function step(co, ...)
  local r = pack(resume(co, ...))
  while r[1] and r.n == 2 and r[2] == pending and status(co) == "suspended" do
    yield(pending)
    r = pack(resume(co))
  end
  return r
end

local function co_resume(co, ...)
  local r = step(co, ...)
  return unpack(r, 1, r.n)
end

local function co_wrap(f)
  local co = create(f)
  return function(...)
    local r = step(co, ...)
    if r[1] then
      return unpack(r, 2, r.n)
    end
    -- As Lua's wrap: close the dead coroutine, and give a string error
    -- the caller's position.
    if status(co) == "dead" then
      close(co)
    end
    error(r[2], 2)
  end
end

return co_resume, co_wrap
"#;

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let co: mlua::Table = lua.globals().get("coroutine")?;
    // Named as the host's other glue, so tracebacks leave it out.
    let shim = lua.load(SHIM).set_name("=gmailscript").into_function()?;
    let (resume, wrap): (Function, Function) = shim.call((
        Value::LightUserData(Lua::poll_pending()),
        co.get::<Function>("create")?,
        co.get::<Function>("resume")?,
        co.get::<Function>("status")?,
        co.get::<Function>("yield")?,
        co.get::<Function>("close")?,
    ))?;
    co.set("resume", resume)?;
    co.set("wrap", wrap)?;
    Ok(())
}
