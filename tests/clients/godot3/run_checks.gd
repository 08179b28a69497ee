# TEST RUNNER (Godot 3, headless) for the Godot 4 example's networking classes,
# after tests/clients/godot3/port_to_godot3.py has ported them into res://port/.
# Driven by tests/test_examples_godot.py; prints one JSON object per line.
#
#   godot3-server --no-window --path DIR --script res://run_checks.gd encode
#   godot3-server --no-window --path DIR --script res://run_checks.gd decode HEX...
#   godot3-server --no-window --path DIR --script res://run_checks.gd publisher
#   godot3-server --no-window --path DIR --script res://run_checks.gd live OSC_PORT PCM_PORT SECONDS
extends SceneTree

const MrtOsc = preload("res://port/mrt_osc.gd")
const Publisher = preload("res://port/mrt_publisher.gd")
const PcmStream = preload("res://port/mrt_pcm_stream.gd")
const Addresses = preload("res://port/mrt_addresses.gd")


func _init():
	var args = Array(OS.get_cmdline_args())
	var i = args.find("res://run_checks.gd")
	var mode = args[i + 1]
	if mode == "encode":
		_encode()
	elif mode == "decode":
		for k in range(i + 2, args.size()):
			_decode(args[k])
	elif mode == "publisher":
		_publisher()
	elif mode == "live":
		_live(int(args[i + 2]), int(args[i + 3]), float(args[i + 4]))
	else:
		printerr("unknown mode ", mode)
	quit()


func _emit(d):
	print("JSON:" + to_json(d))


func _encode():
	var vectors = [
		["float", MrtOsc.encode_message("/game/danger", [0.75])],
		["int", MrtOsc.encode_message("/seed", [123456789])],
		["negative_int", MrtOsc.encode_message("/x", [-2])],
		["string", MrtOsc.encode_message("/state", ["combat"])],
		["string_pad4", MrtOsc.encode_message("/abc", ["abcd"])],
		["utf8", MrtOsc.encode_message("/prompt", ["caf\u00e9 jazz"])],
		["blob", MrtOsc.encode_message("/blob", [PoolByteArray([1, 2, 3, 4, 5])])],
		["empty_blob", MrtOsc.encode_message("/blob", [PoolByteArray()])],
		["mixed", MrtOsc.encode_message("/style/prompt/2", ["calm ambient", 0.5])],
		["no_args", MrtOsc.encode_message("/status")],
		["bundle", MrtOsc.encode_bundle([MrtOsc.encode_message("/game/danger", [0.25]),
				MrtOsc.encode_message("/state", ["explore"]), MrtOsc.encode_message("/seed", [7])])],
		["bad_address", MrtOsc.encode_message("no_slash", [1])],
		["bad_type", MrtOsc.encode_message("/x", [Vector2(1, 2)])],
	]
	for v in vectors:
		_emit({"name": v[0], "hex": v[1].hex_encode()})


func _hex_to_bytes(h):
	var out = PoolByteArray()
	for k in range(0, h.length(), 2):
		out.append(("0x" + h.substr(k, 2)).hex_to_int())
	return out


func _decode(h):
	var msgs = MrtOsc.decode_packet(_hex_to_bytes(h))
	if msgs == null:
		_emit({"ok": false, "messages": []})
		return
	var out = []
	for m in msgs:
		var a = []
		for x in m["args"]:
			if typeof(x) == TYPE_RAW_ARRAY:
				a.append("hex:" + x.hex_encode())
			else:
				a.append(x)
		out.append({"address": m["address"], "args": a})
	_emit({"ok": true, "messages": out})


class Recorder:
	var sent = []
	var now = 0.0
	func send(address, args):
		sent.append({"t": now, "address": address, "value": args[0]})
		return OK


func _publisher():
	var rec = Recorder.new()
	var p = Publisher.new(rec)
	p.min_interval = 0.1
	p.epsilon = 0.001
	p.refresh_interval = 1.0
	for frame in range(100):
		rec.now = frame * 0.01
		p.set_rtpc("danger", frame / 100.0)
		p.set_rtpc("speed", 2.0)
		p.set_rtpc("bad", NAN)
		if frame == 0:
			p.set_state("explore")
		if frame == 50:
			p.set_state("combat")
			p.trigger("boss_spotted")
		p.publish(rec.now)
	for frame in range(1, 16):
		rec.now = 1.0 + frame * 0.1
		p.publish(rec.now)
	_emit({"sent": rec.sent})


func _live(osc_port, pcm_port, seconds):
	var osc = MrtOsc.new()
	var err = osc.open("127.0.0.1", osc_port)
	var pub = Publisher.new(osc)
	var pcm = PcmStream.new()
	pcm.connect_to("127.0.0.1", pcm_port)
	var start = OS.get_ticks_msec()
	var status_json = ""
	var status_args = []
	var status_replies = 0
	var states_seen = []
	var triggers_seen = []
	var ticks = []
	var sequences = []
	var ages_ms = []
	var frames_read = 0
	var next_status = 1.0
	var last_packets = 0
	# Names from examples/adaptive_soundtrack.toml.
	pub.set_state("combat")
	pub.trigger("stinger")
	osc.send(Addresses.SUBSCRIBE)
	while true:
		var t = (OS.get_ticks_msec() - start) / 1000.0
		if t >= seconds:
			break
		pub.set_rtpc("danger", min(0.65, 0.2 + 0.45 * t))
		pub.publish(t)
		if t >= next_status:
			osc.send(Addresses.STATUS)
			next_status = t + 0.5
		for m in osc.poll():
			if m["address"] == Addresses.STATUS_REPLY:
				status_replies += 1
				status_args = m["args"]
				status_json = m["args"][5]
				var doc = parse_json(status_json)
				if typeof(doc) == TYPE_DICTIONARY and doc.has("game"):
					if not doc["game"]["state"] in states_seen:
						states_seen.append(doc["game"]["state"])
					for a in doc["game"]["active_triggers"]:
						if not a in triggers_seen:
							triggers_seen.append(a)
			elif m["address"] == Addresses.TICK_BEAT or m["address"] == Addresses.TICK_BAR:
				if ticks.size() < 64:
					ticks.append({"address": m["address"], "args": m["args"], "t": t})
		var got = pcm.poll()
		frames_read += got.size()
		if pcm.packets != last_packets:
			# poll() may return several packets; record the newest one's sequence
			# and age (sequence continuity is checked by the reader's own counters).
			sequences.append(pcm.last_sequence)
			var now_ns = OS.get_unix_time() * 1000000000
			ages_ms.append((now_ns - pcm.last_produced_ns) / 1000000.0)
			last_packets = pcm.packets
		OS.delay_msec(5)
	osc.send(Addresses.UNSUBSCRIBE)
	_emit({
		"open_error": err,
		"status_args": status_args.slice(0, 4) if status_args.size() > 4 else status_args,
		"status_json": status_json,
		"status_replies": status_replies,
		"states_seen": states_seen,
		"triggers_seen": triggers_seen,
		"ticks": ticks,
		"osc_sent": osc.packets_sent,
		"osc_malformed": osc.malformed_packets,
		"publisher_sent": pub.messages_sent,
		"pcm_connects": pcm.connects,
		"pcm_packets": pcm.packets,
		"pcm_frames": pcm.frames,
		"pcm_frames_returned": frames_read,
		"pcm_gaps": pcm.sequence_gaps,
		"pcm_lost": pcm.lost_packets,
		"pcm_last_error": pcm.last_error,
		"sequences": sequences,
	})
	osc.close()
	pcm.close()
