-- Argo CD health check for the four ModelSync kinds of modelsync.io (Model, ModelService,
-- ModelRegistry, ClusterModelRegistry): one logic, one file. Argo CD sets the global `obj`.
-- It reads the conditions the operator writes the way kstatus (Flux) reads them, so both agree:
--   Progressing  no status yet; status older than metadata.generation; Reconciling=True (a failure
--                being retried); Ready not True
--   Suspended    the modelsync.io/paused annotation is "true" (Paused=True): no registry is called
--   Degraded     Stalled=True: a failure only a change fixes (the reason and message say which)
--   Healthy      Ready=True for the current generation (with ObserveOnly, reason Differs says the
--                registry's entry differs from the spec, and in which fields)
-- (Argo CD itself reports an object being deleted as Progressing "Pending deletion".)
-- Argo CD runs argocd-cm health scripts with the base, table and package libraries only (no
-- string, math or os) unless useOpenLibs is set: only those are used here.
local terminal = {
  InvalidSpec = true, NameTaken = true, Unsupported = true, ExternalNotFound = true,
  RegistryMisconfigured = true, CredentialsInvalid = true, CredentialsRejected = true,
  RegistryInvalid = true, Absent = true,
}

local hs = {}

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local function describe(c)
  local text = tostring(c.type) .. "=" .. tostring(c.status)
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " " .. tostring(c.reason)
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. tostring(c.message)
  end
  return text
end

local generation = nil
local annotations = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
  annotations = obj.metadata.annotations
end

local function stale(observed)
  return generation ~= nil and observed ~= nil and observed < generation
end

local status = obj.status
local conditions = {}
if status ~= nil and status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type ~= nil then
      conditions[c.type] = c
    end
  end
end
local ready, synced = conditions["Ready"], conditions["Synced"]
local stalled, reconciling, paused = conditions["Stalled"], conditions["Reconciling"], conditions["Paused"]

if annotations ~= nil and annotations["modelsync.io/paused"] == "true" then
  if paused ~= nil and paused.status == "True" then
    return result("Suspended", describe(paused))
  end
  return result("Suspended", "Paused: modelsync.io/paused is true")
end
if status == nil or status.conditions == nil or #status.conditions == 0 then
  return result("Progressing", "Waiting for the operator to report status")
end
if stale(status.observedGeneration) or (ready ~= nil and stale(ready.observedGeneration)) then
  return result("Progressing", "Waiting for the operator to observe generation " .. tostring(generation))
end
if reconciling ~= nil and reconciling.status == "True" then
  return result("Progressing", describe(reconciling))
end
if stalled ~= nil and stalled.status == "True" then
  return result("Degraded", describe(stalled))
end
if ready == nil then
  return result("Progressing", "Waiting for the Ready condition")
end
if ready.status == "True" then
  return result("Healthy", describe(ready))
end
-- a status written before the operator set Stalled on every kind (registries had Ready only)
if stalled == nil then
  if synced ~= nil and synced.status == "False" and terminal[synced.reason] then
    return result("Degraded", describe(synced))
  end
  if ready.status == "False" and terminal[ready.reason] then
    return result("Degraded", describe(ready))
  end
end
if synced ~= nil and synced.status == "False" then
  return result("Progressing", describe(synced))
end
return result("Progressing", describe(ready))
