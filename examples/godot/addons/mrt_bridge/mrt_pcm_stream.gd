## Reads the daemon's PCM stream (`mrt-bridge serve --pcm-port N`, layout in
## docs/pcm-stream.md) over StreamPeerTCP without blocking. Call poll() once
## a frame; it returns the stereo frames that arrived as a PackedVector2Array
## and keeps counters (packets, sequence gaps, lost packets). Reconnects by
## itself when the daemon goes away. MrtBridgeAudio feeds the result into an
## AudioStreamGenerator.
extends RefCounted

const MAGIC := "MRTA"
const HEADER_SIZE := 40
const FORMAT_FLOAT32 := 1

var host := "127.0.0.1"
var port := 9100
var reconnect_interval_ms := 1000

var packets := 0
var frames := 0
var sequence_gaps := 0
var lost_packets := 0
var connects := 0
var last_sequence := -1
var last_frame_index := -1
## Unix-epoch nanoseconds at which the daemon published the newest packet.
var last_produced_ns := 0
var last_error := ""

var _tcp := StreamPeerTCP.new()
var _connecting := false
var _next_attempt_ms := 0
var _buf := StreamPeerBuffer.new()   # little-endian (the default)
var _header := {}                    # parsed header while waiting for its payload


func connect_to(daemon_host: String, pcm_port: int) -> void:
	host = daemon_host
	port = pcm_port
	_next_attempt_ms = 0


func is_connected_to_daemon() -> bool:
	return _tcp.get_status() == StreamPeerTCP.STATUS_CONNECTED


func close() -> void:
	_tcp.disconnect_from_host()
	_connecting = false


## Reads whatever has arrived; returns the new stereo frames (may be empty).
func poll() -> PackedVector2Array:
	var out := PackedVector2Array()
	_tcp.poll()
	var status: int = _tcp.get_status()
	if status == StreamPeerTCP.STATUS_NONE or status == StreamPeerTCP.STATUS_ERROR:
		if _connecting:
			last_error = "cannot connect to %s:%d" % [host, port]
			_connecting = false
		var now: int = Time.get_ticks_msec()
		if now >= _next_attempt_ms:
			_next_attempt_ms = now + reconnect_interval_ms
			_start_connect()
		return out
	if status == StreamPeerTCP.STATUS_CONNECTING:
		return out
	if _connecting:
		_connecting = false
		connects += 1
		last_sequence = -1
		_buf.clear()
		_header = {}
	var available: int = _tcp.get_available_bytes()
	if available > 0:
		var got = _tcp.get_partial_data(available)
		if got[0] != OK:
			last_error = "read error %d" % got[0]
			close()
			return out
		var pos: int = _buf.get_position()
		_buf.seek(_buf.get_size())
		_buf.put_data(got[1])
		_buf.seek(pos)
	while true:
		if _header.is_empty():
			if _buf.get_size() - _buf.get_position() < HEADER_SIZE:
				break
			_header = _parse_header()
			if _header.is_empty():
				close()
				_next_attempt_ms = Time.get_ticks_msec() + reconnect_interval_ms
				return out
		var need: int = _header["extra"] + _header["frame_count"] * _header["channels"] * 4
		if _buf.get_size() - _buf.get_position() < need:
			break
		_buf.seek(_buf.get_position() + _header["extra"])
		# Samples are read here, not in a helper: packed arrays are copied
		# when passed to a function, so appends there would be lost.
		var channels: int = _header["channels"]
		var count: int = _header["frame_count"]
		for i in range(count):
			var left: float = _buf.get_float()
			var right: float = left
			if channels > 1:
				right = _buf.get_float()
			for c in range(2, channels):
				_buf.get_float()
			out.append(Vector2(left, right))
		packets += 1
		frames += count
		_header = {}
	_compact()
	return out


func _start_connect() -> void:
	_tcp = StreamPeerTCP.new()
	var err: int = _tcp.connect_to_host(host, port)
	_connecting = err == OK
	if err != OK:
		last_error = "connect_to_host failed: %d" % err


func _parse_header() -> Dictionary:
	var magic: String = _buf.get_utf8_string(4)
	if magic != MAGIC:
		last_error = "not an mrt-bridge PCM stream (bad magic)"
		return {}
	_buf.get_u16()  # version
	var header_size: int = _buf.get_u16()
	var sequence: int = _buf.get_u32()
	_buf.get_u32()  # sample_rate (48000)
	var channels: int = _buf.get_u16()
	var sample_format: int = _buf.get_u16()
	var frame_count: int = _buf.get_u32()
	var frame_index: int = _buf.get_64()
	var produced_ns: int = _buf.get_64()
	if header_size < HEADER_SIZE or sample_format != FORMAT_FLOAT32 or channels < 1 or channels > 8:
		last_error = "unsupported PCM stream (header %d, format %d, %d channels)" % [
			header_size, sample_format, channels]
		return {}
	if last_sequence >= 0:
		var missing: int = (sequence - last_sequence - 1) & 0xffffffff
		if missing != 0:
			sequence_gaps += 1
			lost_packets += missing
	last_sequence = sequence
	last_frame_index = frame_index
	last_produced_ns = produced_ns
	return {"extra": header_size - HEADER_SIZE, "channels": channels, "frame_count": frame_count}


# Drops consumed bytes so the buffer does not grow without bound.
func _compact() -> void:
	var pos: int = _buf.get_position()
	if pos == 0:
		return
	var left: int = _buf.get_size() - pos
	if left == 0:
		_buf.clear()
		return
	var rest = _buf.get_data(left)
	_buf.clear()
	_buf.put_data(rest[1])
	_buf.seek(0)
