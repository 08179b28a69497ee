// Unity layer for game state -> music. Add to any GameObject (one per scene is
// enough), then from your game code:
//
//   var music = FindObjectOfType<MrtBridgeGameState>();
//   music.SetRtpc("danger", enemiesNearby / 10f);   // continuous, 0..1
//   music.SetState("combat");                        // global state
//   music.Trigger("boss_spotted");                   // one-shot stinger
//
// or list variables in the inspector (Rtpcs) and drive them from an Animator,
// a UnityEvent or code through SetRtpc. What each name does musically lives
// in the daemon's mapping config (examples/adaptive_soundtrack.toml), not here.
//
// All networking is in the plain-C# core (MrtBridge.Osc); this component only
// forwards values to it and, in Update(), publishes what is due and drains
// the daemon's replies (status, beat and bar ticks) on the main thread.

using System;
using MrtBridge.Osc;
using UnityEngine;
using UnityEngine.Events;

namespace MrtBridge
{
    [Serializable]
    public class RtpcBinding
    {
        [Tooltip("Name after /game/ in the OSC address, as in the [rtpc.NAME] tables of the daemon's config")]
        public string name = "danger";
        [Range(0f, 1f)] public float value;
    }

    [Serializable] public class BeatEvent : UnityEvent<int, int> { }   // (bar, beat in bar), 0-based
    [Serializable] public class BarEvent : UnityEvent<int> { }         // bar, 0-based
    [Serializable] public class StatusEvent : UnityEvent<string> { }   // human-readable status

    [AddComponentMenu("Magenta RT Bridge/MRT Bridge Game State")]
    public class MrtBridgeGameState : MonoBehaviour
    {
        [Header("Daemon (mrt-bridge serve)")]
        public string host = "127.0.0.1";
        [Tooltip("--osc-port of mrt-bridge serve")]
        public int oscPort = 9000;

        [Header("Publishing")]
        [Tooltip("Most messages per second for one RTPC (latest value wins)")]
        [Range(1f, 120f)] public float maxRatePerRtpc = 30f;
        [Tooltip("Smallest change worth sending")]
        public float epsilon = 0.001f;
        [Tooltip("State sent once on start (empty = none)")]
        public string initialState = "explore";
        [Tooltip("Ask for beat/bar ticks (fires onBeat/onBar) and a status push every second")]
        public bool subscribeToTicks = true;
        [Tooltip("RTPCs edited in the inspector or animated; sent when they change")]
        public RtpcBinding[] rtpcs = new RtpcBinding[0];

        [Header("Events (main thread)")]
        [Tooltip("Every beat of the daemon's tempo: (bar, beat in bar), 0-based")]
        public BeatEvent onBeat = new BeatEvent();
        [Tooltip("Every downbeat (fires just before that beat's onBeat)")]
        public BarEvent onBar = new BarEvent();
        public StatusEvent onStatus = new StatusEvent();

        /// <summary>The last /status reply, parsed; null until one arrives.</summary>
        public MrtStatus LastStatus { get; private set; }

        OscUdpClient _client;
        GameStatePublisher _publisher;
        float _nextSubscribe;

        void OnEnable()
        {
            _client = new OscUdpClient(host, oscPort);
            _publisher = new GameStatePublisher(_client)
            {
                MinInterval = 1.0 / Mathf.Max(1f, maxRatePerRtpc),
                Epsilon = epsilon,
            };
            if (!string.IsNullOrEmpty(initialState)) _publisher.SetState(initialState);
            _nextSubscribe = 0f;
        }

        void OnDisable()
        {
            if (subscribeToTicks && _client != null) _client.Send(MrtAddresses.Unsubscribe);
            if (_client != null) _client.Dispose();
            _client = null;
            _publisher = null;
        }

        public void SetRtpc(string rtpcName, float value)
        {
            if (_publisher != null) _publisher.SetRtpc(rtpcName, value);
        }

        public void SetState(string stateName)
        {
            if (_publisher != null) _publisher.SetState(stateName);
        }

        public void Trigger(string triggerName)
        {
            if (_publisher != null) _publisher.Trigger(triggerName);
        }

        /// <summary>Asks the daemon for its status; the reply fires onStatus.</summary>
        public void RequestStatus()
        {
            if (_client != null) _client.Send(MrtAddresses.Status);
        }

        void Update()
        {
            if (_client == null) return;
            float now = Time.unscaledTime;
            if (subscribeToTicks && now >= _nextSubscribe)
            {
                // Re-subscribing is idempotent and survives a daemon restart.
                _client.Send(MrtAddresses.Subscribe);
                _nextSubscribe = now + 5f;
            }
            foreach (RtpcBinding b in rtpcs)
                if (b != null && !string.IsNullOrEmpty(b.name)) _publisher.SetRtpc(b.name, b.value);
            _publisher.Publish(now);

            // Drain what the receive thread queued, on the main thread.
            OscMessage m;
            while (_client.TryReceive(out m))
            {
                bool isBar;
                int bar, beatInBar;
                if (MrtAddresses.TryParseTick(m, out isBar, out bar, out beatInBar))
                {
                    if (isBar) onBar.Invoke(bar);
                    else onBeat.Invoke(bar, beatInBar);
                }
                else if (m.Address == MrtAddresses.StatusReply)
                {
                    LastStatus = MrtStatus.Parse(m);
                    onStatus.Invoke(LastStatus.ToString());
                }
            }
        }
    }
}
