"""The Unity example's C# code, compiled with a real C# compiler and run against the real daemon.

examples/unity/Assets/MrtBridge/Core is plain C# (no UnityEngine); it is built
with mono's ``mcs`` together with the console harness tests/clients/unity_harness
and run with ``mono``. The thin Unity layer (Assets/MrtBridge/Unity) is
type-checked against a compile-only stub of the UnityEngine types it uses.

Needs ``apt-get install mono-mcs mono-runtime``; skipped (with the reason) without them,
a failure under ``CI=true``.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.ci import missing
from tests.clients.daemon import running_daemon

REPO = Path(__file__).resolve().parents[1]
UNITY = REPO / "examples" / "unity" / "Assets" / "MrtBridge"
CLIENTS = REPO / "tests" / "clients"

MCS = shutil.which("mcs")
MONO = shutil.which("mono")


@pytest.fixture(autouse=True)
def _needs_mono() -> None:
    """Skipped without mono locally; a failure under CI=true."""
    if MCS is None or MONO is None:
        missing("needs mono's C# compiler and runtime: apt-get install mono-mcs mono-runtime")


def _mcs(out: Path, sources: list[Path], *extra: str) -> None:
    cmd = [
        MCS,
        "-langversion:7.2",
        "-warnaserror+",
        "-nologo",
        f"-out:{out}",
        *extra,
        *map(str, sources),
    ]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"mcs failed:\n{res.stdout}\n{res.stderr}"


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unity") / "Harness.exe"
    _mcs(out, sorted((UNITY / "Core").glob("*.cs")) + [CLIENTS / "unity_harness" / "Harness.cs"])
    return out


def run_harness(exe: Path, *args: str, timeout: float = 60) -> list[dict]:
    res = subprocess.run(
        [MONO, str(exe), *args], check=False, capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, (
        f"harness {args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    )
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


def test_core_has_no_unity_dependency() -> None:
    for src in (UNITY / "Core").glob("*.cs"):
        assert "UnityEngine" not in src.read_text().replace("no UnityEngine", ""), src


def test_unity_layer_compiles_against_the_stub(tmp_path) -> None:
    stub = tmp_path / "UnityEngineStub.dll"
    core = tmp_path / "MrtBridge.Core.dll"
    _mcs(stub, [CLIENTS / "unity_stub" / "UnityEngineStub.cs"], "-target:library")
    _mcs(core, sorted((UNITY / "Core").glob("*.cs")), "-target:library")
    _mcs(
        tmp_path / "MrtBridge.Unity.dll",
        sorted((UNITY / "Unity").glob("*.cs")),
        "-target:library",
        f"-r:{stub}",
        f"-r:{core}",
    )


def test_encoder_output_decodes_with_python_osc(harness) -> None:
    vectors = {v["name"]: bytes.fromhex(v["hex"]) for v in run_harness(harness, "encode")}

    def msg(name: str) -> tuple[str, list]:
        m = OscMessage(vectors[name])
        return m.address, list(m.params)

    assert msg("float") == ("/game/danger", [0.75])
    assert msg("int") == ("/seed", [123456789])
    assert msg("negative_int") == ("/x", [-2])
    assert msg("string") == ("/game/state", ["combat"])
    assert msg("string_pad4") == ("/abc", ["abcd"])
    assert msg("utf8") == ("/prompt", ["café jazz"])
    assert msg("blob") == ("/blob", [b"\x01\x02\x03\x04\x05"])
    assert msg("empty_blob") == ("/blob", [b""])
    assert msg("mixed") == ("/style/prompt", [2, "calm ambient", 0.5])
    assert msg("no_args") == ("/status", [])
    assert msg("writer_float") == ("/game/speed", [3.5])
    # Byte-exact against python-osc's own encoder for the same messages.
    for name, (addr, args) in {
        "float": ("/game/danger", [0.75]),
        "mixed": ("/style/prompt", [2, "calm ambient", 0.5]),
        "blob": ("/blob", [b"\x01\x02\x03\x04\x05"]),
    }.items():
        b = OscMessageBuilder(addr)
        for a in args:
            b.add_arg(a, {int: "i", float: "f", str: "s", bytes: "b"}[type(a)])
        assert vectors[name] == b.build().dgram, name

    bundle = OscBundle(vectors["bundle"])
    assert bundle.num_contents == 3
    contents = [(m.address, list(m.params)) for m in bundle]
    assert contents == [("/game/danger", [0.25]), ("/game/state", ["explore"]), ("/seed", [7])]


def test_decoder_reads_python_osc_packets(harness) -> None:
    m = OscMessageBuilder("/status/reply")
    for v, t in (
        (333, "i"),
        (7.25, "f"),
        ('{"game":{"state":"combat"}}', "s"),
        (b"\x09\x08\x07", "b"),
        (True, "T"),
        (2.5, "d"),
        (2**40, "h"),
    ):
        m.add_arg(v, t)
    msg = m.build()
    bb = OscBundleBuilder(IMMEDIATELY)
    bb.add_content(_msg("/tick/bar", [4]))
    bb.add_content(_msg("/tick/beat", [16, 4, 0]))
    bundle = bb.build()
    bad = msg.dgram[:-3]  # truncated
    out = run_harness(harness, "decode", msg.dgram.hex(), bundle.dgram.hex(), bad.hex())
    assert out[0]["ok"] is True
    assert out[0]["messages"] == [
        {
            "address": "/status/reply",
            "args": [333, 7.25, '{"game":{"state":"combat"}}', "hex:090807", True, 2.5, 2**40],
        }
    ]
    assert out[1] == {
        "ok": True,
        "messages": [
            {"address": "/tick/bar", "args": [4]},
            {"address": "/tick/beat", "args": [16, 4, 0]},
        ],
    }
    assert out[2] == {"ok": False, "messages": []}


def _msg(address: str, ints: list[int]):
    b = OscMessageBuilder(address)
    for i in ints:
        b.add_arg(i, "i")
    return b.build()


def test_publisher_rate_limits_and_keeps_events(harness) -> None:
    sent = run_harness(harness, "publisher")[0]["sent"]
    danger = [s for s in sent if s["address"] == "/game/danger"]
    speed = [s for s in sent if s["address"] == "/game/speed"]
    # danger changes every 10 ms for 1 s, min interval 100 ms: about 10 sends, never closer than 100 ms.
    assert 9 <= len([d for d in danger if d["t"] < 1.0]) <= 11
    assert all(b["t"] - a["t"] >= 0.1 - 1e-9 for a, b in itertools.pairwise(danger))
    # The last value always gets out (latest wins), then refreshes every 1 s.
    assert math.isclose(danger[-1]["value"], f32(0.99), rel_tol=1e-6)
    assert [round(s["t"], 6) for s in speed] == [0.0, 1.1, 2.1]
    # States and triggers in order, not rate-limited; NaN never sent.
    events = [(s["address"], s["value"]) for s in sent if s["address"] in ("/state", "/trigger")]
    assert events == [("/state", "explore"), ("/state", "combat"), ("/trigger", "boss_spotted")]
    assert not [s for s in sent if s["address"] == "/game/bad"]


def test_jitter_buffer(harness) -> None:
    cases = {c["case"]: c for c in run_harness(harness, "jitter")}
    r = cases["resample_44100"]
    assert r["underruns"] == 0 and r["dropped"] == 0
    assert abs(r["frequency_hz"] - 1000.0) < 5.0  # pitch kept through 48k -> 44.1k
    assert r["max_step"] < 0.5 * 2 * math.pi * 1000 / 44100 * 1.05  # no clicks
    u = cases["underrun"]
    assert u["underruns_after_dry"] == 1 and u["silent_while_dry"]
    assert u["silent_below_target"] and u["playing_again"] and u["underruns"] == 1
    t = cases["trim"]
    assert t["buffered_before"] == 19200 and t["buffered_after"] <= t["target"]
    assert t["dropped"] == 19200 - t["target"]
    o = cases["overflow"]
    assert o["stored"] == 4800 and o["overflow"] == 4 * 1920 - 4800


def test_harness_drives_the_real_daemon(harness) -> None:
    seconds = 6.0
    with running_daemon() as daemon:
        out = run_harness(
            harness,
            "live",
            str(daemon.osc_port),
            str(daemon.pcm_port),
            str(seconds),
            timeout=seconds + 60,
        )[0]
        log = daemon.log_text()
    # OSC: the status reply shows what the C# client sent, nothing was rejected.
    st = out["status"]
    assert st is not None, f"no /status/reply\n{log}"
    assert out["status_replies"] >= 2 and st["json_parsed"]
    status = json.loads(st["json"])
    assert status["game"]["state"] == "combat" and st["game_state"] == "combat"
    assert "combat" in out["states_seen"]
    assert math.isclose(st["danger_target"], f32(0.8), rel_tol=1e-6)
    assert math.isclose(status["game"]["rtpc"]["danger"]["target"], f32(0.8), rel_tol=1e-6)
    assert "stinger" in out["triggers_seen"], out["triggers_seen"]
    assert status["osc"]["rejected"] == 0, log
    assert st["frame"] > 0 and st["step_ms_p50"] > 0
    # Ticks at the config's 120 bpm: a beat every 0.5 s.
    beats = [t for t in out["ticks"] if t["address"] == "/tick/beat"]
    assert len(beats) >= 8, out["ticks"]
    assert all(b["args"][0] + 1 == c["args"][0] for b, c in itertools.pairwise(beats))
    # PCM: 40 ms packets at real time, consecutive sequence numbers, bounded latency.
    seqs = out["sequences"]
    assert out["pcm_connects"] == 1 and out["pcm_gaps"] == 0 and out["pcm_lost"] == 0
    assert all(b == (a + 1) % 2**32 for a, b in itertools.pairwise(seqs))
    assert out["pcm_frames"] == 1920 * out["pcm_packets"]
    assert out["pcm_packets"] >= 0.7 * (seconds - 1.0) * 25, out
    assert out["packet_age_ms_p50"] < 100, out
    assert out["jitter_underruns"] <= 1, out  # at most one, if a packet was late right at the start
