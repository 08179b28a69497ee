// Single-producer/single-consumer ring of interleaved stereo float samples
// between the network thread (producer) and the audio thread (consumer,
// Unity's OnAudioFilterRead). The audio side never allocates, locks or waits.
//
//   network thread --Write()--> [ ring ] --Read()--> audio thread
//
// Latency is kept bounded: playback starts (and restarts after an underrun)
// only once TargetFrames are buffered, and when more than MaxFrames pile up
// (the game hitched, or the daemon ran ahead) the oldest audio is skipped
// back down to TargetFrames. Read() resamples linearly from 48 kHz when the
// output runs at another rate.

using System;
using System.Threading;

namespace MrtBridge.Audio
{
    public sealed class JitterBuffer
    {
        public const int SourceRate = 48000;

        readonly float[] _ring;       // interleaved L R L R ...
        readonly int _capacityFrames;
        long _written;                // frames written, only the producer advances it
        long _read;                   // frames read, only the consumer advances it

        readonly int _targetFrames;
        readonly int _maxFrames;
        bool _playing;                // consumer-side only
        double _frac = 1.0;           // resampler phase, consumer-side only
        float _prevL, _prevR, _curL, _curR;

        long _underruns, _droppedFrames, _overflowFrames, _silentFrames;

        /// <param name="targetMs">buffered audio to (re)start playback with</param>
        /// <param name="maxMs">more than this is trimmed back to targetMs</param>
        /// <param name="capacityMs">ring size</param>
        public JitterBuffer(int targetMs = 120, int maxMs = 300, int capacityMs = 1000)
        {
            if (targetMs <= 0 || maxMs < targetMs || capacityMs < maxMs)
                throw new ArgumentException("need 0 < targetMs <= maxMs <= capacityMs");
            _capacityFrames = SourceRate * capacityMs / 1000;
            _ring = new float[_capacityFrames * 2];
            _targetFrames = SourceRate * targetMs / 1000;
            _maxFrames = SourceRate * maxMs / 1000;
        }

        /// <summary>Times playback ran dry (each followed by re-buffering).</summary>
        public long Underruns { get { return Interlocked.Read(ref _underruns); } }
        /// <summary>Frames skipped to keep latency under MaxFrames.</summary>
        public long DroppedFrames { get { return Interlocked.Read(ref _droppedFrames); } }
        /// <summary>Frames the producer could not store because the ring was full.</summary>
        public long OverflowFrames { get { return Interlocked.Read(ref _overflowFrames); } }
        /// <summary>Output frames filled with silence (start-up, underruns).</summary>
        public long SilentFrames { get { return Interlocked.Read(ref _silentFrames); } }
        /// <summary>Frames buffered right now (48 kHz frames).</summary>
        public int BufferedFrames { get { return (int)(Volatile.Read(ref _written) - Volatile.Read(ref _read)); } }
        public double BufferedMs { get { return BufferedFrames * 1000.0 / SourceRate; } }
        public int TargetFrames { get { return _targetFrames; } }

        /// <summary>Producer: appends interleaved stereo samples (frames = samples.Length/2
        /// from offset). Returns the frames stored; the rest counts as overflow.</summary>
        public int Write(float[] interleaved, int offsetFrames, int frames)
        {
            long w = _written;
            long r = Volatile.Read(ref _read);
            int free = _capacityFrames - (int)(w - r);
            int n = Math.Min(frames, free);
            for (int i = 0; i < n; i++)
            {
                int slot = (int)((w + i) % _capacityFrames) * 2;
                _ring[slot] = interleaved[(offsetFrames + i) * 2];
                _ring[slot + 1] = interleaved[(offsetFrames + i) * 2 + 1];
            }
            Volatile.Write(ref _written, w + n);
            if (n < frames) Interlocked.Add(ref _overflowFrames, frames - n);
            return n;
        }

        /// <summary>Consumer (audio thread): fills `frames` output frames of
        /// `channels` interleaved channels at `outputRate` Hz. Stereo goes to
        /// channels 0 and 1, mono gets the average, extra channels get silence.
        /// Never blocks or allocates.</summary>
        public void Read(float[] output, int channels, int outputRate)
        {
            int frames = output.Length / channels;
            long r = _read;
            long available = Volatile.Read(ref _written) - r;

            if (!_playing)
            {
                if (available < _targetFrames)
                {
                    Array.Clear(output, 0, output.Length);
                    Interlocked.Add(ref _silentFrames, frames);
                    return;
                }
                _playing = true;
            }
            if (available > _maxFrames)
            {
                long skip = available - _targetFrames;
                r += skip;
                available -= skip;
                Interlocked.Add(ref _droppedFrames, skip);
            }

            double step = (double)SourceRate / outputRate;
            for (int f = 0; f < frames; f++)
            {
                while (_frac >= 1.0)
                {
                    if (available <= 0)
                    {
                        // Ran dry: silence for the rest of this block, re-buffer.
                        Array.Clear(output, f * channels, (frames - f) * channels);
                        Interlocked.Add(ref _silentFrames, frames - f);
                        Interlocked.Increment(ref _underruns);
                        _playing = false;
                        Volatile.Write(ref _read, r);
                        return;
                    }
                    int slot = (int)(r % _capacityFrames) * 2;
                    _prevL = _curL; _prevR = _curR;
                    _curL = _ring[slot]; _curR = _ring[slot + 1];
                    r++;
                    available--;
                    _frac -= 1.0;
                }
                float t = (float)_frac;
                float left = _prevL + (_curL - _prevL) * t;
                float right = _prevR + (_curR - _prevR) * t;
                int o = f * channels;
                if (channels == 1)
                {
                    output[o] = 0.5f * (left + right);
                }
                else
                {
                    output[o] = left;
                    output[o + 1] = right;
                    for (int c = 2; c < channels; c++) output[o + c] = 0f;
                }
                _frac += step;
            }
            Volatile.Write(ref _read, r);
        }
    }
}
