## OSC 1.0 over UDP for talking to `mrt-bridge serve`, in plain GDScript (Godot 4).
##
## Encodes int32 ('i'), float32 ('f'), String ('s') and PackedByteArray blobs
## ('b'), and bundles; decodes the same plus T/F/N/I, 'h' and 'd'. One
## PacketPeerUDP both sends to the daemon and receives what it sends back
## (status replies, beat/bar ticks), because the daemon answers the address a
## query came from. Nothing here blocks: call poll() once a frame.
##
##     var osc := MrtOsc.new()
##     osc.open("127.0.0.1", 9000)
##     osc.send("/game/danger", [0.8])
##     for msg in osc.poll():
##         print(msg.address, msg.args)
class_name MrtOsc
extends RefCounted

## Timetag meaning "immediately".
const IMMEDIATELY := 1

var packets_sent := 0
var packets_received := 0
var malformed_packets := 0

var _udp := PacketPeerUDP.new()


## Opens the socket towards the daemon's OSC port. local_port 0 = any free port.
## Returns a Godot Error code (OK on success).
func open(host: String, port: int, local_port: int = 0) -> int:
	_udp.close()
	var err: int = _udp.bind(local_port)
	if err != OK:
		return err
	return _udp.set_dest_address(host, port)


func close() -> void:
	_udp.close()


func local_port() -> int:
	return _udp.get_local_port()


## Sends one message. args: int, float, String or PackedByteArray values.
func send(address: String, args: Array = []) -> int:
	return send_packet(encode_message(address, args))


func send_packet(packet: PackedByteArray) -> int:
	var err: int = _udp.put_packet(packet)
	if err == OK:
		packets_sent += 1
	return err


## Returns every message received since the last call, as dictionaries
## {"address": String, "args": Array}. Bundles are flattened.
func poll() -> Array:
	var out := []
	while _udp.get_available_packet_count() > 0:
		var packet: PackedByteArray = _udp.get_packet()
		packets_received += 1
		var msgs = decode_packet(packet)
		if msgs == null:
			malformed_packets += 1
		else:
			for m in msgs:
				out.append(m)
	return out


# ------------------------------------------------------------------ encoding

static func _new_buffer() -> StreamPeerBuffer:
	var b := StreamPeerBuffer.new()
	b.big_endian = true
	return b


static func _put_padded(b: StreamPeerBuffer, bytes: PackedByteArray) -> void:
	b.put_data(bytes)
	var pad: int = (4 - (bytes.size() % 4)) % 4
	for i in range(pad):
		b.put_u8(0)


static func _put_string(b: StreamPeerBuffer, s: String) -> void:
	var bytes: PackedByteArray = s.to_utf8_buffer()
	bytes.append(0)
	_put_padded(b, bytes)


## Type tag for one argument, or "" if the type cannot be sent.
static func type_tag(value) -> String:
	match typeof(value):
		TYPE_INT:
			return "i"
		TYPE_FLOAT:
			return "f"
		TYPE_STRING:
			return "s"
		TYPE_PACKED_BYTE_ARRAY:
			return "b"
	return ""


## One OSC message as bytes. Unsupported argument types are an error
## (push_error) and give an empty array.
static func encode_message(address: String, args: Array = []) -> PackedByteArray:
	if not address.begins_with("/"):
		push_error("MrtOsc: address must start with '/': " + address)
		return PackedByteArray()
	var tags := ","
	for a in args:
		var t: String = type_tag(a)
		if t == "":
			push_error("MrtOsc: unsupported argument type %d for %s" % [typeof(a), address])
			return PackedByteArray()
		tags += t
	var b := _new_buffer()
	_put_string(b, address)
	_put_string(b, tags)
	for a in args:
		match typeof(a):
			TYPE_INT:
				b.put_32(a)
			TYPE_FLOAT:
				b.put_float(a)
			TYPE_STRING:
				_put_string(b, a)
			TYPE_PACKED_BYTE_ARRAY:
				b.put_32(a.size())
				_put_padded(b, a)
	return b.data_array


## A bundle of already encoded elements (messages or bundles).
static func encode_bundle(elements: Array, timetag: int = IMMEDIATELY) -> PackedByteArray:
	var b := _new_buffer()
	_put_string(b, "#bundle")
	b.put_64(timetag)
	for e in elements:
		b.put_32(e.size())
		b.put_data(e)
	return b.data_array


# ------------------------------------------------------------------ decoding

## Decodes a packet into an Array of {"address", "args"}; null if malformed.
static func decode_packet(packet: PackedByteArray):
	var out := []
	if not _decode_into(packet, out, 0):
		return null
	return out


static func _read_string(b: StreamPeerBuffer, data: PackedByteArray):
	var start: int = b.get_position()
	var end: int = start
	while end < data.size() and data[end] != 0:
		end += 1
	if end >= data.size():
		return null
	var s: String = b.get_utf8_string(end - start)
	var padded: int = ((end - start) + 4) & ~3
	if start + padded > data.size():
		return null
	b.seek(start + padded)
	return s


static func _decode_into(data: PackedByteArray, out: Array, depth: int) -> bool:
	if depth > 8 or data.size() < 4 or data.size() % 4 != 0:
		return false
	var b := _new_buffer()
	b.data_array = data
	if data[0] == 35:  # '#'
		var tag = _read_string(b, data)
		if tag != "#bundle" or data.size() - b.get_position() < 8:
			return false
		b.get_64()
		while b.get_position() < data.size():
			if data.size() - b.get_position() < 4:
				return false
			var size: int = b.get_32()
			if size < 0 or size > data.size() - b.get_position():
				return false
			var part = b.get_data(size)
			if part[0] != OK or not _decode_into(part[1], out, depth + 1):
				return false
		return true
	var address = _read_string(b, data)
	if address == null or not address.begins_with("/"):
		return false
	var args := []
	if b.get_position() >= data.size():
		out.append({"address": address, "args": args})
		return true
	var tags = _read_string(b, data)
	if tags == null or not tags.begins_with(","):
		return false
	for i in range(1, tags.length()):
		var t: String = tags[i]
		var left: int = data.size() - b.get_position()
		if (t == "i" or t == "f" or t == "b") and left < 4:
			return false
		if (t == "h" or t == "d") and left < 8:
			return false
		if t == "i":
			args.append(b.get_32())
		elif t == "f":
			args.append(b.get_float())
		elif t == "h":
			args.append(b.get_64())
		elif t == "d":
			args.append(b.get_double())
		elif t == "s" or t == "S":
			var s = _read_string(b, data)
			if s == null:
				return false
			args.append(s)
		elif t == "b":
			var n: int = b.get_32()
			if n < 0 or n > data.size() - b.get_position():
				return false
			var blob = b.get_data(n)
			args.append(blob[1])
			b.seek(b.get_position() + ((4 - n % 4) % 4))
		elif t == "T":
			args.append(true)
		elif t == "F":
			args.append(false)
		elif t == "N" or t == "I":
			args.append(null)
		else:
			return false
	out.append({"address": address, "args": args})
	return true
