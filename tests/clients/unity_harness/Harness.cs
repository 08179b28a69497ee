// Console test harness for the Unity example's plain-C# core
// (examples/unity/Assets/MrtBridge/Core). Built with mono's mcs and driven by
// tests/test_examples_unity.py. Every mode prints JSON, one object per line,
// for the Python test to check against independent implementations
// (python-osc) and against the real daemon.
//
//   Harness.exe encode              OSC test vectors as hex
//   Harness.exe decode HEX...       decode packets (made by python-osc) to JSON
//   Harness.exe publisher           GameStatePublisher on a scripted clock
//   Harness.exe jitter              JitterBuffer scenarios (rate conversion, underrun, trim)
//   Harness.exe live OSC_PORT PCM_PORT SECONDS [host]
//                                   drive the running daemon: game state, /status, PCM stream

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Threading;
using MrtBridge.Audio;
using MrtBridge.Osc;

static class Harness
{
    static int Main(string[] args)
    {
        Thread.CurrentThread.CurrentCulture = CultureInfo.InvariantCulture;
        if (args.Length == 0) { Console.Error.WriteLine("usage: Harness.exe encode|decode|publisher|jitter|live ..."); return 2; }
        switch (args[0])
        {
            case "encode": return Encode();
            case "decode": return Decode(args);
            case "publisher": return Publisher();
            case "jitter": return Jitter();
            case "live": return Live(args);
            default: Console.Error.WriteLine("unknown mode " + args[0]); return 2;
        }
    }

    // ---------------------------------------------------------------- JSON out
    static string J(object v)
    {
        if (v == null) return "null";
        if (v is string) return Quote((string)v);
        if (v is bool) return (bool)v ? "true" : "false";
        if (v is float)
        {
            float f = (float)v;
            if (float.IsNaN(f) || float.IsInfinity(f)) return Quote(f.ToString(CultureInfo.InvariantCulture));
            return f.ToString("R", CultureInfo.InvariantCulture);
        }
        if (v is double) return ((double)v).ToString("R", CultureInfo.InvariantCulture);
        if (v is int || v is long) return Convert.ToString(v, CultureInfo.InvariantCulture);
        if (v is byte[]) return Quote("hex:" + Hex((byte[])v));
        var dict = v as IDictionary<string, object>;
        if (dict != null)
        {
            var sb = new StringBuilder("{");
            foreach (var kv in dict)
            {
                if (sb.Length > 1) sb.Append(", ");
                sb.Append(Quote(kv.Key)).Append(": ").Append(J(kv.Value));
            }
            return sb.Append('}').ToString();
        }
        var list = v as System.Collections.IEnumerable;
        if (list != null)
        {
            var sb = new StringBuilder("[");
            bool first = true;
            foreach (object o in list) { if (!first) sb.Append(", "); sb.Append(J(o)); first = false; }
            return sb.Append(']').ToString();
        }
        return Quote(v.ToString());
    }

    static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (char c in s)
        {
            if (c == '"' || c == '\\') sb.Append('\\').Append(c);
            else if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4"));
            else sb.Append(c);
        }
        return sb.Append('"').ToString();
    }

    static string Hex(byte[] b)
    {
        var sb = new StringBuilder(b.Length * 2);
        foreach (byte x in b) sb.Append(x.ToString("x2"));
        return sb.ToString();
    }

    static byte[] FromHex(string h)
    {
        var b = new byte[h.Length / 2];
        for (int i = 0; i < b.Length; i++) b[i] = byte.Parse(h.Substring(2 * i, 2), NumberStyles.HexNumber);
        return b;
    }

    static void Emit(Dictionary<string, object> o) { Console.WriteLine(J(o)); }

    static Dictionary<string, object> Obj(params object[] kv)
    {
        var d = new Dictionary<string, object>();
        for (int i = 0; i < kv.Length; i += 2) d[(string)kv[i]] = kv[i + 1];
        return d;
    }

    // ------------------------------------------------------------- OSC vectors
    static int Encode()
    {
        Emit(Obj("name", "float", "hex", Hex(OscEncoder.Message("/game/danger", 0.75f))));
        Emit(Obj("name", "int", "hex", Hex(OscEncoder.Message("/seed", 123456789))));
        Emit(Obj("name", "negative_int", "hex", Hex(OscEncoder.Message("/x", -2))));
        Emit(Obj("name", "string", "hex", Hex(OscEncoder.Message("/game/state", "combat"))));
        Emit(Obj("name", "string_pad4", "hex", Hex(OscEncoder.Message("/abc", "abcd"))));
        Emit(Obj("name", "utf8", "hex", Hex(OscEncoder.Message("/prompt", "caf\u00e9 jazz"))));
        Emit(Obj("name", "blob", "hex", Hex(OscEncoder.Message("/blob", new byte[] { 1, 2, 3, 4, 5 }))));
        Emit(Obj("name", "empty_blob", "hex", Hex(OscEncoder.Message("/blob", new byte[0]))));
        Emit(Obj("name", "mixed", "hex", Hex(OscEncoder.Message("/style/prompt", 2, "calm ambient", 0.5f))));
        Emit(Obj("name", "no_args", "hex", Hex(OscEncoder.Message("/status"))));
        var w = new OscWriter();
        w.WriteMessage("/game/speed", 3.5f);
        Emit(Obj("name", "writer_float", "hex", Hex(w.ToArray())));
        Emit(Obj("name", "bundle", "hex", Hex(OscEncoder.Bundle(OscEncoder.Immediately,
            new OscMessage("/game/danger", 0.25f), new OscMessage("/game/state", "explore"), new OscMessage("/seed", 7)))));
        return 0;
    }

    static int Decode(string[] args)
    {
        var outList = new List<OscMessage>();
        for (int i = 1; i < args.Length; i++)
        {
            outList.Clear();
            bool ok = OscDecoder.TryDecode(FromHex(args[i]), args[i].Length / 2, outList);
            var msgs = new List<object>();
            foreach (OscMessage m in outList) msgs.Add(Obj("address", m.Address, "args", m.Args));
            Emit(Obj("ok", ok, "messages", msgs));
        }
        return 0;
    }

    // ------------------------------------------------------------- publisher
    static int Publisher()
    {
        var log = new List<object>();
        double now = 0;
        var p = new GameStatePublisher(
            (a, v) => log.Add(Obj("t", now, "address", a, "value", v)),
            (a, s) => log.Add(Obj("t", now, "address", a, "value", s)))
        { MinInterval = 0.1, Epsilon = 0.001f, RefreshInterval = 1.0 };

        // 1 s at 100 fps: danger ramps every frame, speed is constant, biome
        // changes twice, and a trigger fires once.
        for (int frame = 0; frame < 100; frame++)
        {
            now = frame * 0.01;
            p.SetRtpc("danger", frame / 100f);
            p.SetRtpc("speed", 2f);
            p.SetRtpc("bad", float.NaN);
            if (frame == 0) p.SetState("explore");
            if (frame == 50) { p.SetState("combat"); p.Trigger("boss_spotted"); }
            p.Publish(now);
        }
        // Then 1.5 s of silence at 10 fps: only the refresh re-sends.
        for (int frame = 1; frame <= 15; frame++) { now = 1.0 + frame * 0.1; p.Publish(now); }
        Emit(Obj("sent", log));
        return 0;
    }

    // ---------------------------------------------------------------- jitter
    static int Jitter()
    {
        // A 48 kHz 1 kHz sine through the buffer, read at 44.1 kHz in 512-frame
        // blocks: after the prebuffer, output must be continuous and at 1 kHz.
        var jb = new JitterBuffer(targetMs: 40, maxMs: 200, capacityMs: 500);
        var src = new float[1920 * 2];
        long n = 0;
        var outBuf = new float[512 * 2];
        var mono = new List<float>();
        int blocks = 0;
        double produced = 0;  // frames due at 48 kHz for the output time so far
        jb.Write(Sine(src, ref n), 0, 1920);
        jb.Write(Sine(src, ref n), 0, 1920);   // 80 ms prebuffered > target 40 ms
        for (blocks = 0; blocks < 200; blocks++)
        {
            jb.Read(outBuf, 2, 44100);
            for (int i = 0; i < 512; i++) mono.Add(outBuf[2 * i]);
            produced += 512 * 48000.0 / 44100.0;
            while (n < produced + 3840) jb.Write(Sine(src, ref n), 0, 1920);
        }
        // Zero crossings (rising) per second of the output after 10 blocks.
        int rising = 0; int start = 10 * 512;
        for (int i = start + 1; i < mono.Count; i++) if (mono[i - 1] < 0 && mono[i] >= 0) rising++;
        double seconds = (mono.Count - start) / 44100.0;
        float maxStep = 0;
        for (int i = start + 1; i < mono.Count; i++) maxStep = Math.Max(maxStep, Math.Abs(mono[i] - mono[i - 1]));
        Emit(Obj("case", "resample_44100", "underruns", jb.Underruns, "dropped", jb.DroppedFrames,
                 "frequency_hz", rising / seconds, "max_step", maxStep));

        // Underrun: stop writing; the reader must emit silence, count one
        // underrun, and restart only after TargetFrames are buffered again.
        var ub = new JitterBuffer(targetMs: 40, maxMs: 200, capacityMs: 500);
        n = 0;
        ub.Write(Sine(src, ref n), 0, 1920);
        ub.Write(Sine(src, ref n), 0, 1920);
        var b48 = new float[1024 * 2];
        for (int i = 0; i < 5; i++) ub.Read(b48, 2, 48000);
        long underAfterDry = ub.Underruns;
        bool silentWhileDry = true;
        foreach (float f in b48) if (f != 0f) silentWhileDry = false;
        ub.Write(Sine(src, ref n), 0, 960);   // 20 ms < 40 ms target: still silent
        ub.Read(b48, 2, 48000);
        bool silentBelowTarget = true;
        foreach (float f in b48) if (f != 0f) silentBelowTarget = false;
        ub.Write(Sine(src, ref n), 0, 1920);
        ub.Read(b48, 2, 48000);
        bool playingAgain = false;
        foreach (float f in b48) if (f != 0f) playingAgain = true;
        Emit(Obj("case", "underrun", "underruns_after_dry", underAfterDry, "silent_while_dry", silentWhileDry,
                 "silent_below_target", silentBelowTarget, "playing_again", playingAgain, "underruns", ub.Underruns));

        // Trim: 400 ms arrive at once (a hitch); the next read skips back to the target.
        var tb = new JitterBuffer(targetMs: 40, maxMs: 100, capacityMs: 500);
        n = 0;
        for (int i = 0; i < 10; i++) tb.Write(Sine(src, ref n), 0, 1920);
        int before = tb.BufferedFrames;
        tb.Read(new float[256 * 2], 2, 48000);
        Emit(Obj("case", "trim", "buffered_before", before, "buffered_after", tb.BufferedFrames,
                 "dropped", tb.DroppedFrames, "target", tb.TargetFrames));

        // Overflow: the ring is full, extra frames are refused and counted.
        var ob = new JitterBuffer(targetMs: 40, maxMs: 100, capacityMs: 100);
        n = 0;
        int stored = 0;
        for (int i = 0; i < 4; i++) stored += ob.Write(Sine(src, ref n), 0, 1920);
        Emit(Obj("case", "overflow", "stored", stored, "overflow", ob.OverflowFrames));
        return 0;
    }

    static float[] Sine(float[] buf, ref long n)
    {
        for (int i = 0; i < buf.Length / 2; i++, n++)
        {
            float v = 0.5f * (float)Math.Sin(2 * Math.PI * 1000.0 * n / 48000.0);
            buf[2 * i] = v;
            buf[2 * i + 1] = -v;
        }
        return buf;
    }

    // ------------------------------------------------------------------ live
    static int Live(string[] args)
    {
        int oscPort = int.Parse(args[1]);
        int pcmPort = int.Parse(args[2]);
        double seconds = double.Parse(args[3], CultureInfo.InvariantCulture);
        string host = args.Length > 4 ? args[4] : "127.0.0.1";
        return LiveRun(host, oscPort, pcmPort, seconds);
    }

    static long UnixNanos()
    {
        return (DateTime.UtcNow.Ticks - new DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc).Ticks) * 100;
    }

    static int LiveRun(string host, int oscPort, int pcmPort, double seconds)
    {
        var clock = Stopwatch.StartNew();
        using (var osc = new OscUdpClient(host, oscPort))
        {
            var pub = new GameStatePublisher(osc);

            // PCM: a network thread fills the jitter buffer; this thread plays
            // the audio callback's part at real time, 1024 frames at 48 kHz.
            var jb = new JitterBuffer(targetMs: 120, maxMs: 400, capacityMs: 1000);
            var sequences = new List<long>();
            var seqLock = new object();
            var packetAgesMs = new List<double>();
            using (var pcm = new PcmStreamClient(host, pcmPort, jb))
            {
                // Age of each packet on arrival: local Unix time minus the daemon's produced_ns.
                pcm.OnPacket = h =>
                {
                    double ageMs = (UnixNanos() - h.ProducedNs) / 1e6;
                    lock (seqLock) { sequences.Add(h.Sequence); packetAgesMs.Add(ageMs); }
                };
                LiveBody(osc, pub, pcm, jb, clock, seconds, sequences, packetAgesMs, seqLock);
            }
        }
        return 0;
    }

    static void LiveBody(OscUdpClient osc, GameStatePublisher pub, PcmStreamClient pcm, JitterBuffer jb,
                         Stopwatch clock, double seconds, List<long> sequences, List<double> packetAgesMs,
                         object seqLock)
    {
        // Game state, the way MrtBridgeGameState sends it.
        // Names from examples/adaptive_soundtrack.toml.
        pub.SetState("combat");
        pub.Trigger("stinger");
        pub.SetRtpc("danger", 0.3f);
        pub.Publish(clock.Elapsed.TotalSeconds);
        osc.Send(MrtAddresses.Subscribe);

        var block = new float[1024 * 2];
        double blockSeconds = 1024.0 / 48000.0;
        double nextBlock = clock.Elapsed.TotalSeconds;
        double statusAt = 1.0;  // ask after the frame loop has applied the values
        MrtStatus status = null;
        int statusRequests = 0, statusReplies = 0;
        var statesSeen = new List<string>();
        var triggersSeen = new List<string>();
        var ticks = new List<object>();
        double end = seconds;
        while (clock.Elapsed.TotalSeconds < end)
        {
            double t = clock.Elapsed.TotalSeconds;
            // danger ramps 0.3 -> 0.8 over the first second, set every loop
            // (as a game would every frame); the publisher rate-limits it.
            pub.SetRtpc("danger", (float)Math.Min(0.8, 0.3 + 0.5 * t));
            pub.Publish(t);
            if (t >= statusAt)
            {
                osc.Send(MrtAddresses.Status);
                statusRequests++;
                statusAt = t + 0.5;
            }
            OscMessage m;
            while (osc.TryReceive(out m))
            {
                bool isBar;
                int bar, beatInBar;
                if (m.Address == MrtAddresses.StatusReply)
                {
                    status = MrtStatus.Parse(m);
                    statusReplies++;
                    string st = status.GameState;
                    if (st != null && !statesSeen.Contains(st)) statesSeen.Add(st);
                    var active = MiniJson.Path(status.Document, "game", "active_triggers") as List<object>;
                    if (active != null)
                        foreach (object a in active)
                            if (a is string && !triggersSeen.Contains((string)a)) triggersSeen.Add((string)a);
                }
                else if (MrtAddresses.TryParseTick(m, out isBar, out bar, out beatInBar) && ticks.Count < 64)
                    ticks.Add(Obj("address", m.Address, "bar", bar, "beat_in_bar", beatInBar, "args", m.Args, "t", t));
            }
            while (nextBlock <= t)
            {
                jb.Read(block, 2, 48000);
                nextBlock += blockSeconds;
            }
            Thread.Sleep(5);
        }
        osc.Send(MrtAddresses.Unsubscribe);

        List<long> seqCopy;
        lock (seqLock) seqCopy = new List<long>(sequences);
        float danger = float.NaN, dangerValue = float.NaN;
        if (status != null) status.TryGetRtpc("danger", out danger, out dangerValue);
        double[] ages;
        lock (seqLock) ages = packetAgesMs.ToArray();
        Array.Sort(ages);
        Emit(Obj(
            "status", status == null ? null : (object)Obj(
                "frame", status.Frame, "step_ms_p50", status.StepMsP50, "step_ms_p99", status.StepMsP99,
                "underruns", status.Underruns, "ring_fill", status.RingFill,
                "game_state", status.GameState, "danger_target", danger, "danger_value", dangerValue,
                "json", status.Json,
                "json_parsed", status.Document != null),
            "status_requests", statusRequests,
            "status_replies", statusReplies,
            "states_seen", statesSeen,
            "triggers_seen", triggersSeen,
            "publisher_sent", pub.MessagesSent,
            "packet_age_ms_p50", ages.Length > 0 ? ages[ages.Length / 2] : -1.0,
            "packet_age_ms_max", ages.Length > 0 ? ages[ages.Length - 1] : -1.0,
            "ticks", ticks,
            "osc_sent", osc.PacketsSent,
            "osc_send_errors", osc.SendErrors,
            "pcm_connects", pcm.Connects,
            "pcm_packets", pcm.Packets,
            "pcm_frames", pcm.Frames,
            "pcm_gaps", pcm.SequenceGaps,
            "pcm_lost", pcm.LostPackets,
            "pcm_last_error", pcm.LastError,
            "sequences", seqCopy,
            "jitter_underruns", jb.Underruns,
            "jitter_dropped", jb.DroppedFrames,
            "jitter_buffered_ms", jb.BufferedMs,
            "seconds", clock.Elapsed.TotalSeconds));
    }
}
