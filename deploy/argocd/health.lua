-- Argo CD health check for the four ModelSync kinds of modelsync.io (Model, ModelService,
-- ModelRegistry, ClusterModelRegistry): one logic, one file. Argo CD sets the global `obj`.
--   Progressing  no status yet; status or Ready older than metadata.generation; a failure the
--                operator retries (registry unavailable, dependency not ready, ...)
--   Degraded     Stalled=True; or Ready/Synced False for a reason only a change can fix
--   Healthy      Ready=True and Synced not False, for the current generation
-- Lua 5.1 (Argo CD's gopher-lua).
local terminal = {
  InvalidSpec = true, NameTaken = true, Unsupported = true, ExternalNotFound = true,
  RegistryMisconfigured = true, CredentialsInvalid = true, CredentialsRejected = true,
}

local hs = {}

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local function describe(c)
  local text = c.type .. "=" .. tostring(c.status)
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " " .. c.reason
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

local function stale(observed)
  return generation ~= nil and observed ~= nil and observed < generation
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  return result("Progressing", "Waiting for the operator to report status")
end

local conditions = {}
for _, c in ipairs(status.conditions) do
  if c.type ~= nil then
    conditions[c.type] = c
  end
end
local ready, synced, stalled = conditions["Ready"], conditions["Synced"], conditions["Stalled"]

if stale(status.observedGeneration) or (ready ~= nil and stale(ready.observedGeneration)) then
  return result("Progressing", string.format("Waiting for the operator to observe generation %d", generation))
end
if stalled ~= nil and stalled.status == "True" then
  return result("Degraded", describe(stalled))
end
if ready == nil then
  return result("Progressing", "Waiting for the Ready condition")
end
if ready.status == "True" and (synced == nil or synced.status ~= "False") then
  return result("Healthy", describe(ready))
end
if synced ~= nil and synced.status == "False" and terminal[synced.reason] then
  return result("Degraded", describe(synced))
end
if ready.status == "False" and terminal[ready.reason] then
  return result("Degraded", describe(ready))
end
if synced ~= nil and synced.status == "False" then
  return result("Progressing", describe(synced))
end
return result("Progressing", describe(ready))
