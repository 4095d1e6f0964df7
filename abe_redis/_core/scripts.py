"""Lua scripts for the steps that must be atomic on the server.

Each script touches one stream's slot only: the stream key, plus for
idempotent publishing a marker key that shares the stream's hash tag.
:func:`call` sends EVALSHA and falls back to EVAL when the script is not
cached yet (after a restart, or a SCRIPT FLUSH).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from .commands import Arg, Eval, EvalSha, NoScript
from .steps import Flow


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def call(script: Script, keys: tuple[str, ...], args: tuple[Arg, ...]) -> Flow[Any]:
    """Flow: run ``script`` with ``keys`` and ``args``; returns its raw reply."""
    cmd: EvalSha | Eval = EvalSha(script.sha, keys, args, script.source)
    resume = yield cmd
    value = cmd.parse_reply(resume.reply)
    if isinstance(value, NoScript):
        cmd = Eval(script.source, keys, args)
        resume = yield cmd
        value = cmd.parse_reply(resume.reply)
    return value


# KEYS: stream, marker. ARGV: window ms, maxlen or "", "1" when a missing
# stream must not be created (NOMKSTREAM), then field/value pairs.
# Returns {1, new id}, {0, id of the entry written earlier with this key},
# or {2} when the stream is missing and NOMKSTREAM was asked: nothing written.
IDEMPOTENT_XADD = Script(
    """
local prior = redis.call('GET', KEYS[2])
if prior then return {0, prior} end
local args = {KEYS[1]}
if ARGV[3] == '1' then args[#args + 1] = 'NOMKSTREAM' end
if ARGV[2] ~= '' then
  args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[2]
end
args[#args + 1] = '*'
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
local id = redis.call('XADD', unpack(args))
if not id then return {2} end
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return {1, id}
"""
)

# KEYS: stream. ARGV: group, consumer, ids... Resets the idle time of the ids
# that are still pending for this consumer (never takes one another
# consumer has claimed meanwhile). Returns how many were renewed.
RENEW_LEASES = Script(
    """
local mine = {KEYS[1], ARGV[1], ARGV[2], 0}
for i = 3, #ARGV do
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if row[1] and row[1][2] == ARGV[2] then mine[#mine + 1] = ARGV[i] end
end
if #mine == 4 then return 0 end
mine[#mine + 1] = 'JUSTID'
return #redis.call('XCLAIM', unpack(mine))
"""
)

# KEYS: stream. ARGV: group, this consumer, idle threshold ms, "delete" or
# "dry-run" (names them, deletes nothing). Deletes the
# other consumers idle at least that long that hold no pending entries
# (deleting one with pending entries would drop them). Returns their names.
DELETE_STALE_CONSUMERS = Script(
    """
local gone = {}
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
  if info['name'] ~= ARGV[2] and info['pending'] == 0
     and info['idle'] >= tonumber(ARGV[3]) then
    if ARGV[4] ~= 'dry-run' then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    end
    gone[#gone + 1] = info['name']
  end
end
return gone
"""
)
