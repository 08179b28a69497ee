## Game state -> music for Godot 4. Add this node to your scene (or as an
## autoload named MrtGameState) and call, from anywhere:
##
##     $MrtGameState.set_rtpc("danger", enemies_near / 10.0)   # continuous 0..1
##     $MrtGameState.set_state("combat")                       # global state
##     $MrtGameState.trigger("stinger")                        # one-shot
##
## What each name does musically lives in the daemon's mapping config
## (examples/adaptive_soundtrack.toml). Values are sent on change, rate-limited
## per RTPC; replies (status, beat/bar ticks) arrive as signals, on the main
## thread, from _process().
class_name MrtGameState
extends Node

## Every beat of the daemon's tempo: bar and beat in bar, 0-based.
signal beat(bar_index: int, beat_in_bar: int)
## Every downbeat (just before that beat's `beat`).
signal bar(bar_index: int)
## A /status/reply: the parsed JSON document (engine, control, game, osc).
signal status_received(status: Dictionary)

const MrtOscScript = preload("res://addons/mrt_bridge/mrt_osc.gd")
const PublisherScript = preload("res://addons/mrt_bridge/mrt_publisher.gd")
const Addresses = preload("res://addons/mrt_bridge/mrt_addresses.gd")

## Host of `mrt-bridge serve`.
@export var host := "127.0.0.1"
## --osc-port of `mrt-bridge serve`.
@export var osc_port := 9000
## Most messages per second for one RTPC (the latest value wins).
@export_range(1.0, 120.0) var max_rate_per_rtpc := 30.0
## State sent once at start (empty: none).
@export var initial_state := "explore"
## Receive beat/bar ticks and a status push every second.
@export var subscribe_to_ticks := true

## The last status document received (empty until one arrives).
var last_status := {}

var _osc
var _publisher
var _next_subscribe_ms := 0


func _ready() -> void:
	_osc = MrtOscScript.new()
	var err: int = _osc.open(host, osc_port)
	if err != OK:
		push_error("MrtGameState: cannot open UDP socket (error %d)" % err)
		return
	_publisher = PublisherScript.new(_osc)
	_publisher.min_interval = 1.0 / maxf(1.0, max_rate_per_rtpc)
	if initial_state != "":
		_publisher.set_state(initial_state)


func _exit_tree() -> void:
	if _osc != null:
		if subscribe_to_ticks:
			_osc.send(Addresses.UNSUBSCRIBE)
		_osc.close()


func set_rtpc(rtpc_name: String, value: float) -> void:
	if _publisher != null:
		_publisher.set_rtpc(rtpc_name, value)


func set_state(state_name: String) -> void:
	if _publisher != null:
		_publisher.set_state(state_name)


func trigger(trigger_name: String) -> void:
	if _publisher != null:
		_publisher.trigger(trigger_name)


## Asks for a status reply (arrives as status_received).
func request_status() -> void:
	if _osc != null:
		_osc.send(Addresses.STATUS)


## Sends any other address of docs/osc-api.md, e.g. send("/tempo", [96.0, 3]).
func send(address: String, args: Array = []) -> void:
	if _osc != null:
		_osc.send(address, args)


func _process(_delta: float) -> void:
	if _osc == null:
		return
	var now_ms := Time.get_ticks_msec()
	if subscribe_to_ticks and now_ms >= _next_subscribe_ms:
		_osc.send(Addresses.SUBSCRIBE)  # idempotent; survives a daemon restart
		_next_subscribe_ms = now_ms + 5000
	_publisher.publish(now_ms / 1000.0)
	for msg in _osc.poll():
		var address: String = msg["address"]
		var args: Array = msg["args"]
		if address == Addresses.TICK_BEAT and args.size() >= 3:
			beat.emit(args[1], args[2])
		elif address == Addresses.TICK_BAR and args.size() >= 1:
			bar.emit(args[0])
		elif address == Addresses.STATUS_REPLY and args.size() >= 6:
			var doc = JSON.parse_string(args[5])
			if doc is Dictionary:
				last_status = doc
				status_received.emit(doc)
