// The daemon's OSC address space as the game examples use it. The full table,
// with argument types and ranges, is docs/osc-api.md; keep this file in step
// with it (tests/test_examples_unity.py runs these against the real daemon).

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace MrtBridge.Osc
{
    public static class MrtAddresses
    {
        /// <summary>/game/NAME f — an RTPC (continuous game parameter) from the mapping config.</summary>
        public const string RtpcPrefix = "/game/";
        /// <summary>/state s — go to a state preset ([states.NAME] in the mapping config).</summary>
        public const string State = "/state";
        /// <summary>/trigger s — fire a stinger ([triggers.NAME] in the mapping config).</summary>
        public const string Trigger = "/trigger";
        /// <summary>/tempo f [i] — declare the game's tempo (bpm, beats per bar).</summary>
        public const string Tempo = "/tempo";
        /// <summary>/status (no args) — the daemon answers the sender with StatusReply.</summary>
        public const string Status = "/status";
        public const string StatusReply = "/status/reply";
        /// <summary>/subscribe, /unsubscribe — beat/bar ticks to the sender.</summary>
        public const string Subscribe = "/subscribe";
        public const string Unsubscribe = "/unsubscribe";
        public const string TickBeat = "/tick/beat";
        public const string TickBar = "/tick/bar";

        public static string Rtpc(string name) { return RtpcPrefix + name; }

        /// <summary>Recognises /tick/beat (beat, bar, beat_in_bar; 0-based) and
        /// /tick/bar (bar). A downbeat sends /tick/bar, then its /tick/beat.</summary>
        public static bool TryParseTick(OscMessage m, out bool isBar, out int bar, out int beatInBar)
        {
            isBar = m.Address == TickBar;
            bar = beatInBar = 0;
            if (isBar) { bar = m.GetInt(0); return true; }
            if (m.Address != TickBeat) return false;
            bar = m.GetInt(1);
            beatInBar = m.GetInt(2);
            return true;
        }
    }

    /// <summary>A parsed /status/reply: i frame, f step p50 (ms), f step p99 (ms),
    /// i underruns, f ring fill (ms of audio buffered), s JSON with everything else (see docs/osc-api.md).
    /// Numbers the engine does not report are -1.</summary>
    public sealed class MrtStatus
    {
        public int Frame = -1;
        public float StepMsP50 = -1f, StepMsP99 = -1f;
        public int Underruns = -1;
        public float RingFill = -1f;  // milliseconds of audio buffered ahead of the output
        /// <summary>The raw JSON text and its parse (null if absent or invalid).</summary>
        public string Json;
        public object Document;

        public static MrtStatus Parse(OscMessage m)
        {
            var s = new MrtStatus
            {
                Frame = m.GetInt(0, -1),
                StepMsP50 = m.GetFloat(1, -1f),
                StepMsP99 = m.GetFloat(2, -1f),
                Underruns = m.GetInt(3, -1),
                RingFill = m.GetFloat(4, -1f),
                Json = m.GetString(5),
            };
            if (s.Json != null)
            {
                try { s.Document = MiniJson.Parse(s.Json); }
                catch (FormatException) { s.Document = null; }
            }
            return s;
        }

        /// <summary>The game state the mapper is in (or fading to), or null.</summary>
        public string GameState { get { return MiniJson.Path(Document, "game", "state") as string; } }

        /// <summary>An RTPC's target (the last value the game sent) or its slewed value.</summary>
        public bool TryGetRtpc(string name, out float target, out float value)
        {
            object t = MiniJson.Path(Document, "game", "rtpc", name, "target");
            object v = MiniJson.Path(Document, "game", "rtpc", name, "value");
            target = t is double ? (float)(double)t : float.NaN;
            value = v is double ? (float)(double)v : float.NaN;
            return t is double;
        }

        public override string ToString()
        {
            var sb = new StringBuilder();
            sb.Append("frame ").Append(Frame)
              .Append(", step p50/p99 ").Append(StepMsP50.ToString("0.0", CultureInfo.InvariantCulture))
              .Append('/').Append(StepMsP99.ToString("0.0", CultureInfo.InvariantCulture)).Append(" ms")
              .Append(", underruns ").Append(Underruns);
            string state = GameState;
            if (state != null) sb.Append(", state ").Append(state);
            return sb.ToString();
        }
    }
}
