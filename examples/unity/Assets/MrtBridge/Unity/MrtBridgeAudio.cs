// Plays the daemon's PCM stream (`mrt-bridge serve --pcm-port 9100`) through
// this GameObject's AudioSource, so the music goes through Unity's own mixer:
// volume, AudioMixer groups and snapshots, ducking, spatialisation.
//
// Add it next to an AudioSource. It plays a silent looping clip so Unity keeps
// calling OnAudioFilterRead, and replaces the samples there with the stream.
// The network thread fills a jitter buffer; the audio thread only copies out
// of it (no allocation, locks or waiting), outputting silence and counting an
// underrun when it runs dry.

using MrtBridge.Audio;
using UnityEngine;

namespace MrtBridge
{
    [RequireComponent(typeof(AudioSource))]
    [AddComponentMenu("Magenta RT Bridge/MRT Bridge Audio")]
    public class MrtBridgeAudio : MonoBehaviour
    {
        [Header("Daemon (mrt-bridge serve)")]
        public string host = "127.0.0.1";
        [Tooltip("--pcm-port of mrt-bridge serve")]
        public int pcmPort = 9100;

        [Header("Jitter buffer")]
        [Tooltip("Audio buffered before playback starts (ms). Lower = less latency, more underruns.")]
        [Range(20, 500)] public int targetLatencyMs = 120;
        [Tooltip("Buffered audio above this is skipped to keep latency bounded (ms)")]
        [Range(40, 1000)] public int maxLatencyMs = 300;

        [Header("Live counters (read-only)")]
        public bool connected;
        public float bufferedMs;
        public long underruns;
        public long droppedFrames;
        public long lostPackets;

        JitterBuffer _buffer;
        PcmStreamClient _stream;
        int _outputRate;   // read on the audio thread, set on the main thread

        void OnEnable()
        {
            _outputRate = AudioSettings.outputSampleRate;
            if (_outputRate != JitterBuffer.SourceRate)
                Debug.Log("MrtBridgeAudio: output runs at " + _outputRate +
                          " Hz, resampling the 48000 Hz stream (set Project Settings > Audio > System Sample Rate to 48000 to avoid it)");
            _buffer = new JitterBuffer(targetLatencyMs, Mathf.Max(maxLatencyMs, targetLatencyMs), 1000);
            _stream = new PcmStreamClient(host, pcmPort, _buffer);

            var source = GetComponent<AudioSource>();
            if (source.clip == null)
            {
                // A silent looping clip keeps the filter chain running.
                source.clip = AudioClip.Create("mrt-bridge stream", JitterBuffer.SourceRate, 2,
                                               JitterBuffer.SourceRate, false);
            }
            source.loop = true;
            if (!source.isPlaying) source.Play();
        }

        void OnDisable()
        {
            var stream = _stream;
            _stream = null;
            if (stream != null) stream.Dispose();
        }

        void Update()
        {
            if (_stream == null) return;
            connected = _stream.Connected;
            bufferedMs = (float)_buffer.BufferedMs;
            underruns = _buffer.Underruns;
            droppedFrames = _buffer.DroppedFrames;
            lostPackets = _stream.LostPackets;
        }

        // Audio thread.
        void OnAudioFilterRead(float[] data, int channels)
        {
            JitterBuffer buffer = _buffer;
            if (buffer == null)
            {
                System.Array.Clear(data, 0, data.Length);
                return;
            }
            buffer.Read(data, channels, _outputRate);
        }
    }
}
