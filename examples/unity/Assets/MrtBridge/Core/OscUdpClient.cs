// UDP transport for OSC in plain C#: one socket that sends to the daemon and
// receives what it sends back (status replies, beat/bar ticks). The daemon
// replies to the address a query came from, so sending and receiving share
// one socket. A background thread only parses and enqueues; the game drains
// the queue on its own thread (Unity: in Update()).

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Threading;

namespace MrtBridge.Osc
{
    public sealed class OscUdpClient : IDisposable
    {
        readonly Socket _socket;
        readonly EndPoint _remote;
        readonly OscWriter _writer = new OscWriter();
        readonly object _sendLock = new object();
        readonly ConcurrentQueue<OscMessage> _inbox = new ConcurrentQueue<OscMessage>();
        readonly Thread _thread;
        volatile bool _running = true;
        long _sent, _received, _malformed, _sendErrors;

        /// <summary>Most messages kept waiting; older ones are dropped first.</summary>
        public int InboxLimit = 1024;

        public long PacketsSent { get { return Interlocked.Read(ref _sent); } }
        public long PacketsReceived { get { return Interlocked.Read(ref _received); } }
        public long MalformedPackets { get { return Interlocked.Read(ref _malformed); } }
        public long SendErrors { get { return Interlocked.Read(ref _sendErrors); } }
        public int LocalPort { get { return ((IPEndPoint)_socket.LocalEndPoint).Port; } }

        /// <param name="host">daemon host, normally "127.0.0.1"</param>
        /// <param name="port">daemon OSC port (`mrt-bridge serve --osc-port`, default 9000)</param>
        /// <param name="localPort">local port to bind (0 = any free port)</param>
        public OscUdpClient(string host, int port, int localPort = 0)
        {
            IPAddress addr;
            if (!IPAddress.TryParse(host, out addr))
                addr = Dns.GetHostAddresses(host)[0];
            _remote = new IPEndPoint(addr, port);
            _socket = new Socket(addr.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            _socket.Bind(new IPEndPoint(addr.AddressFamily == AddressFamily.InterNetworkV6
                                            ? IPAddress.IPv6Any : IPAddress.Any, localPort));
            _socket.ReceiveTimeout = 200;  // lets the thread notice Dispose()
            _thread = new Thread(ReceiveLoop) { IsBackground = true, Name = "mrt-bridge osc receive" };
            _thread.Start();
        }

        /// <summary>Sends one message with int/float/string/byte[] arguments.</summary>
        public void Send(string address, params object[] args)
        {
            lock (_sendLock)
            {
                _writer.Reset();
                _writer.WriteMessage(address, args);
                SendWriter();
            }
        }

        /// <summary>Sends one float without boxing (the common game-state case).</summary>
        public void Send(string address, float value)
        {
            lock (_sendLock)
            {
                _writer.Reset();
                _writer.WriteMessage(address, value);
                SendWriter();
            }
        }

        /// <summary>Sends an already encoded packet (e.g. from OscEncoder.Bundle).</summary>
        public void SendPacket(byte[] packet)
        {
            try
            {
                _socket.SendTo(packet, 0, packet.Length, SocketFlags.None, _remote);
                Interlocked.Increment(ref _sent);
            }
            catch (SocketException)
            {
                // Nothing listening yet (ICMP port unreachable) is normal while the daemon starts.
                Interlocked.Increment(ref _sendErrors);
            }
        }

        void SendWriter()
        {
            try
            {
                _socket.SendTo(_writer.Buffer, 0, _writer.Length, SocketFlags.None, _remote);
                Interlocked.Increment(ref _sent);
            }
            catch (SocketException)
            {
                Interlocked.Increment(ref _sendErrors);
            }
        }

        /// <summary>Takes the next received message, if any. Call from the game thread.</summary>
        public bool TryReceive(out OscMessage message)
        {
            return _inbox.TryDequeue(out message);
        }

        void ReceiveLoop()
        {
            var buf = new byte[65536];
            var parsed = new List<OscMessage>();
            EndPoint from = new IPEndPoint(IPAddress.Any, 0);
            while (_running)
            {
                int n;
                try
                {
                    n = _socket.ReceiveFrom(buf, ref from);
                }
                catch (SocketException)
                {
                    continue;  // timeout, or ICMP unreachable from an earlier send
                }
                catch (ObjectDisposedException)
                {
                    break;
                }
                Interlocked.Increment(ref _received);
                parsed.Clear();
                if (!OscDecoder.TryDecode(buf, n, parsed))
                {
                    Interlocked.Increment(ref _malformed);
                    continue;
                }
                foreach (OscMessage m in parsed)
                {
                    _inbox.Enqueue(m);
                    OscMessage dropped;
                    while (_inbox.Count > InboxLimit && _inbox.TryDequeue(out dropped)) { }
                }
            }
        }

        public void Dispose()
        {
            _running = false;
            _socket.Close();
            _thread.Join(1000);
        }
    }
}
