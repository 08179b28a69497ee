## Plays the daemon's PCM stream (`mrt-bridge serve --pcm-port 9100`) inside
## Godot 4's own audio: an AudioStreamPlayer with an AudioStreamGenerator, so
## the music goes through your buses (volume, effects, ducking).
##
## Add it as a node (it is an AudioStreamPlayer), pick its bus, done. Each
## frame it moves what arrived over TCP into the generator's buffer. The
## generator is the jitter buffer: playback starts once `target_latency_ms`
## is queued, and audio beyond `max_latency_ms` is dropped (oldest first) so
## latency stays bounded. `underruns` counts frames the mixer found empty.
class_name MrtBridgeAudio
extends AudioStreamPlayer

const PcmStreamScript = preload("res://addons/mrt_bridge/mrt_pcm_stream.gd")
const SOURCE_RATE := 48000.0

## Host of `mrt-bridge serve`.
@export var host := "127.0.0.1"
## --pcm-port of `mrt-bridge serve`.
@export var pcm_port := 9100
## Audio queued before playback starts (ms): lower = less latency, more underruns.
@export_range(20, 500) var target_latency_ms := 120
## Queued audio above this is dropped to keep latency bounded (ms).
@export_range(40, 1000) var max_latency_ms := 300

var underruns := 0
var dropped_frames := 0

var _pcm
var _playback: AudioStreamGeneratorPlayback
var _pending := PackedVector2Array()   # received while waiting for the prebuffer


func _ready() -> void:
	var gen := AudioStreamGenerator.new()
	gen.mix_rate = SOURCE_RATE             # the mixer resamples if the device differs
	gen.buffer_length = max_latency_ms / 1000.0 + 0.1
	stream = gen
	_pcm = PcmStreamScript.new()
	_pcm.connect_to(host, pcm_port)


func _exit_tree() -> void:
	if _pcm != null:
		_pcm.close()


func is_connected_to_daemon() -> bool:
	return _pcm != null and _pcm.is_connected_to_daemon()


func lost_packets() -> int:
	return _pcm.lost_packets if _pcm != null else 0


## Audio currently queued for the mixer, in ms.
func buffered_ms() -> float:
	if _playback == null:
		return _pending.size() * 1000.0 / SOURCE_RATE
	var capacity: int = int(SOURCE_RATE * (stream as AudioStreamGenerator).buffer_length)
	var queued: int = capacity - _playback.get_frames_available()
	return queued * 1000.0 / SOURCE_RATE


func _process(_delta: float) -> void:
	if _pcm == null:
		return
	var frames: PackedVector2Array = _pcm.poll()
	if not playing:
		# Prebuffer: start only once target_latency_ms has arrived.
		_pending.append_array(frames)
		var target := int(SOURCE_RATE * target_latency_ms / 1000.0)
		if _pending.size() < target:
			return
		if _pending.size() > target:
			dropped_frames += _pending.size() - target
			_pending = _pending.slice(_pending.size() - target)
		play()
		_playback = get_stream_playback() as AudioStreamGeneratorPlayback
		frames = _pending
		_pending = PackedVector2Array()
	if _playback == null:
		return
	underruns = _playback.get_skips()
	var capacity: int = int(SOURCE_RATE * (stream as AudioStreamGenerator).buffer_length)
	var queued: int = capacity - _playback.get_frames_available()
	var max_frames := int(SOURCE_RATE * max_latency_ms / 1000.0)
	var room: int = max_frames - queued
	if frames.size() > room:
		# More than max_latency_ms would be queued: drop the oldest incoming audio.
		var drop: int = frames.size() - maxi(room, 0)
		dropped_frames += drop
		frames = frames.slice(drop)
	if frames.size() > 0:
		_playback.push_buffer(frames)
