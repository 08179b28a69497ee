## Publishes game state to `mrt-bridge serve` in game-audio terms (Godot 4):
## RTPCs (continuous parameters), states and triggers. No Node: MrtGameState
## wraps it and calls publish() every frame.
##
## RTPCs are sent when they change by more than epsilon, at most once per
## min_interval seconds each (the latest value wins), and re-sent every
## refresh_interval seconds so a restarted daemon catches up. States and
## triggers go out in order, never dropped or merged.
extends RefCounted

const Addresses = preload("res://addons/mrt_bridge/mrt_addresses.gd")

var min_interval := 1.0 / 30.0
var epsilon := 0.0001
var refresh_interval := 2.0
var messages_sent := 0

var _osc
var _names := []        # RTPC names in first-set order
var _values := {}       # name -> latest value
var _sent := {}         # name -> value last sent
var _sent_at := {}      # name -> time last sent (seconds)
var _events := []       # [address, name] pairs waiting for publish()


## osc: an MrtOsc (anything with send(address, args)).
func _init(osc) -> void:
	_osc = osc


## Sets an RTPC such as "danger" (sent as /game/danger). NaN and infinities
## are ignored.
func set_rtpc(rtpc_name: String, value: float) -> void:
	if is_nan(value) or is_inf(value):
		return
	if not _values.has(rtpc_name):
		_names.append(rtpc_name)
	_values[rtpc_name] = value


## Switches the global music state, e.g. "explore" or "combat".
func set_state(state_name: String) -> void:
	_events.append([Addresses.STATE, state_name])


## Fires a one-shot stinger, e.g. "boss_spotted".
func trigger(trigger_name: String) -> void:
	_events.append([Addresses.TRIGGER, trigger_name])


## Sends what is due; now is a monotonic time in seconds. Returns messages sent.
func publish(now: float) -> int:
	var count := 0
	for e in _events:
		_osc.send(e[0], [e[1]])
		count += 1
	_events.clear()
	for rtpc_name in _names:
		var value: float = _values[rtpc_name]
		var never: bool = not _sent.has(rtpc_name)
		var last_at: float = -1.0e9 if never else _sent_at[rtpc_name]
		var changed: bool = never or abs(value - _sent[rtpc_name]) > epsilon
		var due: bool = now - last_at >= min_interval
		var stale: bool = refresh_interval > 0.0 and now - last_at >= refresh_interval
		if (changed and due) or stale:
			_osc.send(Addresses.rtpc(rtpc_name), [value])
			_sent[rtpc_name] = value
			_sent_at[rtpc_name] = now
			count += 1
	messages_sent += count
	return count
