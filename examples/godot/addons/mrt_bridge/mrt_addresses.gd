## The daemon's OSC address space as the Godot example uses it. The full
## table, with argument types and ranges, is docs/osc-api.md; keep this file in
## step with it (tests/test_examples_godot.py runs it against the real daemon).
extends RefCounted

## /game/NAME f: an RTPC from [rtpc.NAME] of the mapping config.
const RTPC_PREFIX := "/game/"
## /state s: go to a state from [states.NAME].
const STATE := "/state"
## /trigger s: fire a stinger from [triggers.NAME].
const TRIGGER := "/trigger"
## /tempo f [i]: declare the game's tempo (bpm, beats per bar).
const TEMPO := "/tempo"
## /status [i port]: the daemon replies STATUS_REPLY to the sender.
const STATUS := "/status"
const STATUS_REPLY := "/status/reply"
## /subscribe, /unsubscribe [i port]: beat/bar ticks (and periodic status) to the sender.
const SUBSCRIBE := "/subscribe"
const UNSUBSCRIBE := "/unsubscribe"
const TICK_BEAT := "/tick/beat"
const TICK_BAR := "/tick/bar"


static func rtpc(rtpc_name: String) -> String:
	return RTPC_PREFIX + rtpc_name
