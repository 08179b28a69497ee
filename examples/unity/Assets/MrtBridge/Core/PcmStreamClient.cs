// Reads the daemon's PCM stream (`mrt-bridge serve --pcm-port N`, format in
// docs/pcm-stream.md) on a background thread and feeds a JitterBuffer.
// Reconnects with a short back-off when the daemon is not (yet) there.
// Counts packets, frames and gaps in the sequence numbers (packets the daemon
// dropped because this client fell behind).

using System;
using System.IO;
using System.Net.Sockets;
using System.Threading;

namespace MrtBridge.Audio
{
    public sealed class PcmStreamClient : IDisposable
    {
        readonly string _host;
        readonly int _port;
        readonly JitterBuffer _buffer;
        readonly Thread _thread;
        volatile bool _running = true;
        volatile TcpClient _tcp;
        volatile string _lastError = "";

        long _packets, _frames, _gaps, _lostPackets, _connects;
        long _lastSequence = -1;

        public PcmStreamClient(string host, int port, JitterBuffer buffer)
        {
            _host = host;
            _port = port;
            _buffer = buffer;
            _thread = new Thread(Run) { IsBackground = true, Name = "mrt-bridge pcm stream" };
            _thread.Start();
        }

        public bool Connected { get { var t = _tcp; return t != null && t.Connected; } }
        public long Packets { get { return Interlocked.Read(ref _packets); } }
        public long Frames { get { return Interlocked.Read(ref _frames); } }
        /// <summary>Places where the sequence number jumped.</summary>
        public long SequenceGaps { get { return Interlocked.Read(ref _gaps); } }
        /// <summary>Packets missing in those jumps.</summary>
        public long LostPackets { get { return Interlocked.Read(ref _lostPackets); } }
        public long Connects { get { return Interlocked.Read(ref _connects); } }
        public long LastSequence { get { return Interlocked.Read(ref _lastSequence); } }
        public string LastError { get { return _lastError; } }

        /// <summary>Called on the network thread for every packet (header, samples).
        /// For diagnostics and tests; keep it cheap.</summary>
        public Action<PcmHeader> OnPacket;

        void Run()
        {
            int backoffMs = 100;
            while (_running)
            {
                try
                {
                    using (var tcp = new TcpClient())
                    {
                        tcp.NoDelay = true;
                        tcp.Connect(_host, _port);
                        _tcp = tcp;
                        Interlocked.Increment(ref _connects);
                        Interlocked.Exchange(ref _lastSequence, -1);
                        backoffMs = 100;
                        ReadPackets(tcp.GetStream());
                    }
                }
                catch (Exception e)
                {
                    if (!_running) break;
                    if (e is SocketException || e is IOException || e is InvalidDataException || e is ObjectDisposedException)
                        _lastError = e.Message;
                    else
                        throw;
                }
                _tcp = null;
                if (!_running) break;
                Thread.Sleep(backoffMs);
                backoffMs = Math.Min(backoffMs * 2, 2000);
            }
        }

        void ReadPackets(Stream stream)
        {
            var header = new byte[PcmHeader.Size];
            byte[] payload = new byte[0];
            float[] samples = new float[0];
            while (_running)
            {
                ReadExactly(stream, header, PcmHeader.Size);
                PcmHeader h = PcmHeader.Parse(header);
                if (h.ExtraHeaderBytes > 0)
                {
                    // A later header version: skip what this client does not know.
                    if (payload.Length < h.ExtraHeaderBytes) payload = new byte[h.ExtraHeaderBytes];
                    ReadExactly(stream, payload, h.ExtraHeaderBytes);
                }
                int bytes = h.PayloadBytes;
                if (payload.Length < bytes) payload = new byte[bytes];
                ReadExactly(stream, payload, bytes);
                if (samples.Length < h.FrameCount * 2) samples = new float[h.FrameCount * 2];
                h.DecodeStereo(payload, samples);

                long last = Interlocked.Read(ref _lastSequence);
                if (last >= 0)
                {
                    long missing = PcmHeader.Missing(last, h.Sequence);
                    if (missing != 0)
                    {
                        Interlocked.Increment(ref _gaps);
                        Interlocked.Add(ref _lostPackets, missing);
                    }
                }
                Interlocked.Exchange(ref _lastSequence, h.Sequence);
                Interlocked.Increment(ref _packets);
                Interlocked.Add(ref _frames, h.FrameCount);
                _buffer.Write(samples, 0, h.FrameCount);
                var cb = OnPacket;
                if (cb != null) cb(h);
            }
        }

        static void ReadExactly(Stream s, byte[] buf, int count)
        {
            int got = 0;
            while (got < count)
            {
                int n = s.Read(buf, got, count - got);
                if (n <= 0) throw new IOException("stream closed by the daemon");
                got += n;
            }
        }

        public void Dispose()
        {
            _running = false;
            var t = _tcp;
            if (t != null) t.Close();
            _thread.Join(1000);
        }
    }
}
