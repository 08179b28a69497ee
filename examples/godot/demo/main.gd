## Demo: a danger slider and buttons for states and triggers, wired to the
## names in examples/adaptive_soundtrack.toml. Music plays through the
## MrtBridgeAudio node (Master bus); the label shows the daemon's status.
extends Control

@onready var game_state: MrtGameState = $MrtGameState
@onready var audio: MrtBridgeAudio = $MrtBridgeAudio
@onready var danger_slider: HSlider = $Panel/VBox/DangerRow/Danger
@onready var status_label: Label = $Panel/VBox/Status
@onready var beat_label: Label = $Panel/VBox/Beat


func _ready() -> void:
	danger_slider.value_changed.connect(func(v: float) -> void: game_state.set_rtpc("danger", v))
	$Panel/VBox/States/Explore.pressed.connect(func() -> void: game_state.set_state("explore"))
	$Panel/VBox/States/Combat.pressed.connect(func() -> void: game_state.set_state("combat"))
	$Panel/VBox/Triggers/Stinger.pressed.connect(func() -> void: game_state.trigger("stinger"))
	$Panel/VBox/Triggers/Hit.pressed.connect(func() -> void: game_state.trigger("hit"))
	game_state.beat.connect(_on_beat)
	game_state.status_received.connect(_on_status)
	game_state.set_rtpc("danger", danger_slider.value)


func _on_beat(bar: int, beat_in_bar: int) -> void:
	beat_label.text = "bar %d  beat %d" % [bar + 1, beat_in_bar + 1]


func _on_status(status: Dictionary) -> void:
	var game: Dictionary = status.get("game", {})
	var engine: Dictionary = status.get("engine", {})
	var stream_state := "connected" if audio.is_connected_to_daemon() else "waiting for daemon"
	status_label.text = "state: %s   frame: %s   daemon underruns: %s\n" % [
		game.get("state", "?"), engine.get("frames", "?"), engine.get("underruns", "?")]
	status_label.text += "stream: %s   buffered %.0f ms   underruns %d   dropped %d   lost %d" % [
		stream_state, audio.buffered_ms(), audio.underruns, audio.dropped_frames,
		audio.lost_packets()]
