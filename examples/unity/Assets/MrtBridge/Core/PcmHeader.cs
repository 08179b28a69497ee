// The header of one PCM stream packet, as documented in docs/pcm-stream.md:
// 40 bytes, little-endian, then frame_count x channels float32 LE samples.
//
//   0 magic "MRTA" | 4 u16 version | 6 u16 header_size | 8 u32 sequence
//  12 u32 sample_rate | 16 u16 channels | 18 u16 sample_format (1 = f32 LE)
//  20 u32 frame_count | 24 u64 frame_index | 32 u64 produced_ns (Unix epoch)

using System;
using System.IO;

namespace MrtBridge.Audio
{
    public struct PcmHeader
    {
        /// <summary>Bytes of the version-1 header; read these first.</summary>
        public const int Size = 40;
        public const int FormatFloat32 = 1;
        const int MaxFrames = 48000;  // refuse absurd sizes (a corrupt stream)

        public int Version;
        public int HeaderSize;
        /// <summary>u32, +1 per packet, wraps at 2^32.</summary>
        public long Sequence;
        public int SampleRate;
        public int Channels;
        public int SampleFormat;
        public int FrameCount;
        public long FrameIndex;
        public long ProducedNs;

        /// <summary>Header bytes beyond the 40 this client knows (skip them).</summary>
        public int ExtraHeaderBytes { get { return HeaderSize - Size; } }
        public int PayloadBytes { get { return FrameCount * Channels * 4; } }

        /// <summary>Parses and checks the first 40 bytes; InvalidDataException if they are not a packet we can play.</summary>
        public static PcmHeader Parse(byte[] b)
        {
            if (b[0] != (byte)'M' || b[1] != (byte)'R' || b[2] != (byte)'T' || b[3] != (byte)'A')
                throw new InvalidDataException("not an mrt-bridge PCM stream (bad magic)");
            var h = new PcmHeader
            {
                Version = U16(b, 4),
                HeaderSize = U16(b, 6),
                Sequence = U32(b, 8),
                SampleRate = (int)U32(b, 12),
                Channels = U16(b, 16),
                SampleFormat = U16(b, 18),
                FrameCount = (int)U32(b, 20),
                FrameIndex = (long)U64(b, 24),
                ProducedNs = (long)U64(b, 32),
            };
            if (h.HeaderSize < Size) throw new InvalidDataException("PCM header_size " + h.HeaderSize + " < 40");
            if (h.SampleFormat != FormatFloat32) throw new InvalidDataException("unsupported PCM sample_format " + h.SampleFormat);
            if (h.Channels < 1 || h.Channels > 8) throw new InvalidDataException("unsupported channel count " + h.Channels);
            if (h.FrameCount < 0 || h.FrameCount > MaxFrames) throw new InvalidDataException("bad frame_count " + h.FrameCount);
            return h;
        }

        /// <summary>Converts the payload to interleaved stereo floats (mono is
        /// duplicated, channels beyond two are dropped).</summary>
        public void DecodeStereo(byte[] payload, float[] stereo)
        {
            var bits = new FloatBitsLE();
            for (int f = 0; f < FrameCount; f++)
            {
                int at = f * Channels * 4;
                bits.I = (int)U32(payload, at);
                float left = bits.F;
                float right = left;
                if (Channels > 1)
                {
                    bits.I = (int)U32(payload, at + 4);
                    right = bits.F;
                }
                stereo[2 * f] = left;
                stereo[2 * f + 1] = right;
            }
        }

        /// <summary>Packets missing between two sequence numbers (0 when consecutive), modulo 2^32.</summary>
        public static long Missing(long previous, long current)
        {
            return (current - previous - 1) & 0xffffffffL;
        }

        static int U16(byte[] b, int at) { return b[at] | (b[at + 1] << 8); }

        static long U32(byte[] b, int at)
        {
            return (uint)(b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24));
        }

        static ulong U64(byte[] b, int at)
        {
            return (ulong)U32(b, at) | ((ulong)U32(b, at + 4) << 32);
        }
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit)]
    struct FloatBitsLE
    {
        [System.Runtime.InteropServices.FieldOffset(0)] public float F;
        [System.Runtime.InteropServices.FieldOffset(0)] public int I;
    }
}
