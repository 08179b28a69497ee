// OSC 1.0 encoding and decoding in plain C# (no UnityEngine), for talking to
// `mrt-bridge serve`. Supported argument types:
//   int    -> 'i' (int32, big-endian)
//   float  -> 'f' (float32, big-endian)
//   string -> 's' (UTF-8, NUL-terminated, padded to 4 bytes)
//   byte[] -> 'b' (int32 size + bytes, padded to 4 bytes)
// and bundles ("#bundle", 64-bit timetag, size-prefixed elements).
// The decoder also accepts T/F/N/I (no payload), 'd' (float64) and 'h' (int64),
// which some servers send; everything else makes the packet invalid.
//
// The daemon never relies on bundles or timetags (one scalar per message,
// latest value wins), so bundles are here for completeness and for clients
// that want to group several values into one UDP packet.

using System;
using System.Collections.Generic;
using System.Text;

namespace MrtBridge.Osc
{
    /// <summary>A decoded OSC message: an address and its arguments
    /// (int, float, string, byte[], bool, double, long or null).</summary>
    public sealed class OscMessage
    {
        public readonly string Address;
        public readonly object[] Args;

        public OscMessage(string address, params object[] args)
        {
            Address = address;
            Args = args ?? new object[0];
        }

        public int Count { get { return Args.Length; } }

        /// <summary>Argument i as a float if it is numeric, else the fallback.</summary>
        public float GetFloat(int i, float fallback = 0f)
        {
            if (i < 0 || i >= Args.Length) return fallback;
            object a = Args[i];
            if (a is float) return (float)a;
            if (a is int) return (int)a;
            if (a is double) return (float)(double)a;
            if (a is long) return (long)a;
            return fallback;
        }

        /// <summary>Argument i as an int if it is numeric, else the fallback.</summary>
        public int GetInt(int i, int fallback = 0)
        {
            if (i < 0 || i >= Args.Length) return fallback;
            object a = Args[i];
            if (a is int) return (int)a;
            if (a is long) return (int)(long)a;
            if (a is float) return (int)(float)a;
            if (a is double) return (int)(double)a;
            return fallback;
        }

        /// <summary>Argument i as a string if it is one, else the fallback.</summary>
        public string GetString(int i, string fallback = null)
        {
            if (i < 0 || i >= Args.Length) return fallback;
            return Args[i] as string ?? fallback;
        }

        public override string ToString()
        {
            var sb = new StringBuilder(Address);
            foreach (object a in Args)
            {
                sb.Append(' ');
                if (a is byte[]) sb.Append("<blob ").Append(((byte[])a).Length).Append('>');
                else if (a is float) sb.Append(((float)a).ToString("R", System.Globalization.CultureInfo.InvariantCulture));
                else sb.Append(a == null ? "nil" : a.ToString());
            }
            return sb.ToString();
        }
    }

    /// <summary>Writes OSC packets into a reusable buffer (no allocation once
    /// the buffer has grown to the largest packet sent).</summary>
    public sealed class OscWriter
    {
        byte[] _buf = new byte[256];
        int _len;

        public byte[] Buffer { get { return _buf; } }
        public int Length { get { return _len; } }

        public void Reset() { _len = 0; }

        /// <summary>A copy of the bytes written so far.</summary>
        public byte[] ToArray()
        {
            var copy = new byte[_len];
            System.Buffer.BlockCopy(_buf, 0, copy, 0, _len);
            return copy;
        }

        /// <summary>Appends one complete message. Throws ArgumentException for
        /// an address that does not start with '/' or an unsupported argument.</summary>
        public void WriteMessage(string address, object[] args)
        {
            if (string.IsNullOrEmpty(address) || address[0] != '/')
                throw new ArgumentException("OSC address must start with '/': " + address);
            args = args ?? new object[0];
            WritePaddedString(address);
            // Type tag string: ',' followed by one tag per argument.
            int tagStart = _len;
            Ensure(args.Length + 2);
            _buf[_len++] = (byte)',';
            foreach (object a in args) _buf[_len++] = (byte)TagOf(a);
            _buf[_len++] = 0;
            Pad(_len - tagStart);
            foreach (object a in args) WriteArg(a);
        }

        /// <summary>Single-float message without boxing (the common case).</summary>
        public void WriteMessage(string address, float value)
        {
            if (string.IsNullOrEmpty(address) || address[0] != '/')
                throw new ArgumentException("OSC address must start with '/': " + address);
            WritePaddedString(address);
            WritePaddedString(",f");
            WriteFloat(value);
        }

        /// <summary>Appends a bundle header; follow with BeginElement/EndElement
        /// pairs around each message (or nested bundle).</summary>
        public void WriteBundleHeader(ulong timetag)
        {
            WritePaddedString("#bundle");
            WriteUInt64(timetag);
        }

        /// <summary>Reserves the int32 size of a bundle element; returns the
        /// position to pass to EndElement.</summary>
        public int BeginElement()
        {
            int at = _len;
            WriteInt(0);
            return at;
        }

        public void EndElement(int sizeAt)
        {
            int size = _len - sizeAt - 4;
            PutInt(sizeAt, size);
        }

        static char TagOf(object a)
        {
            if (a is int) return 'i';
            if (a is float) return 'f';
            if (a is string) return 's';
            if (a is byte[]) return 'b';
            throw new ArgumentException("unsupported OSC argument type: " + (a == null ? "null" : a.GetType().Name)
                                        + " (use int, float, string or byte[])");
        }

        void WriteArg(object a)
        {
            if (a is int) WriteInt((int)a);
            else if (a is float) WriteFloat((float)a);
            else if (a is string) WritePaddedString((string)a);
            else
            {
                var blob = (byte[])a;
                WriteInt(blob.Length);
                Ensure(blob.Length + 3);
                System.Buffer.BlockCopy(blob, 0, _buf, _len, blob.Length);
                _len += blob.Length;
                Pad(blob.Length);
            }
        }

        void WritePaddedString(string s)
        {
            int n = Encoding.UTF8.GetByteCount(s);
            Ensure(n + 4);
            Encoding.UTF8.GetBytes(s, 0, s.Length, _buf, _len);
            _len += n;
            _buf[_len++] = 0;
            Pad(n + 1);
        }

        void Pad(int written)
        {
            int pad = (4 - (written & 3)) & 3;
            Ensure(pad);
            for (int i = 0; i < pad; i++) _buf[_len++] = 0;
        }

        public void WriteInt(int v)
        {
            Ensure(4);
            PutInt(_len, v);
            _len += 4;
        }

        void PutInt(int at, int v)
        {
            _buf[at] = (byte)(v >> 24);
            _buf[at + 1] = (byte)(v >> 16);
            _buf[at + 2] = (byte)(v >> 8);
            _buf[at + 3] = (byte)v;
        }

        void WriteFloat(float f)
        {
            // Reinterpret the IEEE-754 bits without unsafe code or allocation.
            WriteInt(new FloatBits { F = f }.I);
        }

        void WriteUInt64(ulong v)
        {
            WriteInt((int)(v >> 32));
            WriteInt((int)(v & 0xffffffffUL));
        }

        void Ensure(int extra)
        {
            if (_len + extra <= _buf.Length) return;
            int size = _buf.Length * 2;
            while (size < _len + extra) size *= 2;
            Array.Resize(ref _buf, size);
        }
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit)]
    struct FloatBits
    {
        [System.Runtime.InteropServices.FieldOffset(0)] public float F;
        [System.Runtime.InteropServices.FieldOffset(0)] public int I;
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit)]
    struct DoubleBits
    {
        [System.Runtime.InteropServices.FieldOffset(0)] public double D;
        [System.Runtime.InteropServices.FieldOffset(0)] public long L;
    }

    /// <summary>Convenience encoders returning fresh arrays.</summary>
    public static class OscEncoder
    {
        /// <summary>Timetag meaning "immediately" (OSC 1.0).</summary>
        public const ulong Immediately = 1UL;

        public static byte[] Message(string address, params object[] args)
        {
            var w = new OscWriter();
            w.WriteMessage(address, args);
            return w.ToArray();
        }

        public static byte[] Bundle(ulong timetag, params OscMessage[] messages)
        {
            var w = new OscWriter();
            w.WriteBundleHeader(timetag);
            foreach (OscMessage m in messages)
            {
                int at = w.BeginElement();
                w.WriteMessage(m.Address, m.Args);
                w.EndElement(at);
            }
            return w.ToArray();
        }
    }

    /// <summary>Parses OSC packets (messages and nested bundles).</summary>
    public static class OscDecoder
    {
        /// <summary>Appends every message in the packet to output (bundles are
        /// flattened). Returns false, leaving output as it was, if the packet is malformed.</summary>
        public static bool TryDecode(byte[] data, int length, List<OscMessage> output)
        {
            int before = output.Count;
            try
            {
                if (length > data.Length) return false;
                Decode(data, 0, length, output, 0);
                return true;
            }
            catch (FormatException)
            {
                output.RemoveRange(before, output.Count - before);
                return false;
            }
        }

        static void Decode(byte[] d, int start, int end, List<OscMessage> output, int depth)
        {
            if (depth > 8) throw new FormatException("bundles nested too deeply");
            if (end - start < 4 || ((end - start) & 3) != 0) throw new FormatException("bad packet size");
            int pos = start;
            if (d[start] == (byte)'#')
            {
                string tag = ReadString(d, ref pos, end);
                if (tag != "#bundle") throw new FormatException("bad bundle tag");
                if (end - pos < 8) throw new FormatException("truncated timetag");
                pos += 8;
                while (pos < end)
                {
                    int size = ReadInt(d, ref pos, end);
                    if (size < 0 || size > end - pos) throw new FormatException("bad element size");
                    Decode(d, pos, pos + size, output, depth + 1);
                    pos += size;
                }
                return;
            }
            string address = ReadString(d, ref pos, end);
            if (address.Length == 0 || address[0] != '/') throw new FormatException("bad address");
            if (pos >= end)
            {
                // OSC 1.0 allows a missing type tag string: no arguments.
                output.Add(new OscMessage(address));
                return;
            }
            string tags = ReadString(d, ref pos, end);
            if (tags.Length == 0 || tags[0] != ',') throw new FormatException("bad type tags");
            var args = new List<object>(tags.Length - 1);
            for (int i = 1; i < tags.Length; i++)
            {
                switch (tags[i])
                {
                    case 'i': args.Add(ReadInt(d, ref pos, end)); break;
                    case 'f': args.Add(new FloatBits { I = ReadInt(d, ref pos, end) }.F); break;
                    case 's': case 'S': args.Add(ReadString(d, ref pos, end)); break;
                    case 'b':
                    {
                        int n = ReadInt(d, ref pos, end);
                        if (n < 0 || n > end - pos) throw new FormatException("bad blob size");
                        var blob = new byte[n];
                        System.Buffer.BlockCopy(d, pos, blob, 0, n);
                        pos += (n + 3) & ~3;
                        args.Add(blob);
                        break;
                    }
                    case 'h': args.Add(ReadLong(d, ref pos, end)); break;
                    case 'd': args.Add(new DoubleBits { L = ReadLong(d, ref pos, end) }.D); break;
                    case 'T': args.Add(true); break;
                    case 'F': args.Add(false); break;
                    case 'N': case 'I': args.Add(null); break;
                    default: throw new FormatException("unsupported type tag " + tags[i]);
                }
            }
            if (pos > end) throw new FormatException("truncated arguments");
            output.Add(new OscMessage(address, args.ToArray()));
        }

        static int ReadInt(byte[] d, ref int pos, int end)
        {
            if (end - pos < 4) throw new FormatException("truncated int");
            int v = (d[pos] << 24) | (d[pos + 1] << 16) | (d[pos + 2] << 8) | d[pos + 3];
            pos += 4;
            return v;
        }

        static long ReadLong(byte[] d, ref int pos, int end)
        {
            long hi = (uint)ReadInt(d, ref pos, end);
            long lo = (uint)ReadInt(d, ref pos, end);
            return (hi << 32) | lo;
        }

        static string ReadString(byte[] d, ref int pos, int end)
        {
            int z = pos;
            while (z < end && d[z] != 0) z++;
            if (z >= end) throw new FormatException("unterminated string");
            string s = Encoding.UTF8.GetString(d, pos, z - pos);
            pos += ((z - pos) + 4) & ~3;
            if (pos > end) throw new FormatException("truncated string padding");
            return s;
        }
    }
}
