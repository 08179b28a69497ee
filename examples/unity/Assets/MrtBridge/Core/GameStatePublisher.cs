// Publishes game state to `mrt-bridge serve` in the vocabulary of game audio
// (FMOD/Wwise): RTPCs (continuous parameters), states and triggers. Plain C#,
// no UnityEngine; the Unity layer (MrtBridgeGameState) calls Publish() once a
// frame with the current time.
//
// RTPCs are sent only when they change (by more than Epsilon), at most once
// per MinInterval seconds each (the latest value wins, so a value that moves
// every frame costs at most 1/MinInterval messages a second), and re-sent every
// RefreshInterval seconds so a daemon restarted mid-game catches up. States
// and triggers are queued and sent in order, never dropped or merged.

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;

namespace MrtBridge.Osc
{
    public sealed class GameStatePublisher
    {
        sealed class Rtpc
        {
            public string Address;
            public float Value;
            public float Sent = float.NaN;
            public double SentAt = double.NegativeInfinity;
        }

        struct Pending
        {
            public string Address;
            public string Name;
        }

        readonly Action<string, float> _sendFloat;
        readonly Action<string, string> _sendString;
        readonly Dictionary<string, Rtpc> _rtpcs = new Dictionary<string, Rtpc>();
        readonly List<Rtpc> _order = new List<Rtpc>();
        readonly ConcurrentQueue<Pending> _events = new ConcurrentQueue<Pending>();
        readonly object _lock = new object();

        /// <summary>Shortest time between two sends of one RTPC, in seconds (default 1/30).</summary>
        public double MinInterval = 1.0 / 30.0;
        /// <summary>Smallest change worth sending.</summary>
        public float Epsilon = 1e-4f;
        /// <summary>Re-send unchanged RTPCs this often, in seconds (0 = never).</summary>
        public double RefreshInterval = 2.0;

        public long MessagesSent { get; private set; }

        /// <summary>Sends through an OscUdpClient.</summary>
        public GameStatePublisher(OscUdpClient client)
            : this((a, v) => client.Send(a, v), (a, s) => client.Send(a, s)) { }

        /// <summary>Sends through any transport (tests, other OSC libraries).</summary>
        public GameStatePublisher(Action<string, float> sendFloat, Action<string, string> sendString)
        {
            _sendFloat = sendFloat;
            _sendString = sendString;
        }

        /// <summary>Sets an RTPC such as "danger" (sent to /game/danger). NaN and
        /// infinities are ignored: the daemon would reject them anyway.</summary>
        public void SetRtpc(string name, float value)
        {
            if (float.IsNaN(value) || float.IsInfinity(value)) return;
            lock (_lock)
            {
                Rtpc r;
                if (!_rtpcs.TryGetValue(name, out r))
                {
                    r = new Rtpc { Address = MrtAddresses.Rtpc(name) };
                    _rtpcs.Add(name, r);
                    _order.Add(r);
                }
                r.Value = value;
            }
        }

        /// <summary>Switches the global music state, e.g. "explore" or "combat".</summary>
        public void SetState(string name)
        {
            _events.Enqueue(new Pending { Address = MrtAddresses.State, Name = name });
        }

        /// <summary>Fires a one-shot stinger, e.g. "boss_spotted".</summary>
        public void Trigger(string name)
        {
            _events.Enqueue(new Pending { Address = MrtAddresses.Trigger, Name = name });
        }

        /// <summary>Sends what is due. Call once a frame (Unity: Update) with a
        /// monotonic time in seconds.</summary>
        public int Publish(double now)
        {
            int sent = 0;
            Pending e;
            while (_events.TryDequeue(out e))
            {
                _sendString(e.Address, e.Name);
                sent++;
            }
            lock (_lock)
            {
                foreach (Rtpc r in _order)
                {
                    bool changed = float.IsNaN(r.Sent) || Math.Abs(r.Value - r.Sent) > Epsilon;
                    bool due = now - r.SentAt >= MinInterval;
                    bool stale = RefreshInterval > 0 && now - r.SentAt >= RefreshInterval;
                    if ((changed && due) || stale)
                    {
                        _sendFloat(r.Address, r.Value);
                        r.Sent = r.Value;
                        r.SentAt = now;
                        sent++;
                    }
                }
            }
            MessagesSent += sent;
            return sent;
        }
    }
}
