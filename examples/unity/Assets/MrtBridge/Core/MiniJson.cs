// A small JSON reader (plain C#) for the JSON document at the end of the
// daemon's /status/reply. Objects become Dictionary<string, object>, arrays
// List<object>, numbers double, plus string, bool and null.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace MrtBridge.Osc
{
    public static class MiniJson
    {
        /// <summary>Parses a JSON text; FormatException if it is not valid JSON.</summary>
        public static object Parse(string text)
        {
            int pos = 0;
            object v = Value(text, ref pos);
            Skip(text, ref pos);
            if (pos != text.Length) throw new FormatException("trailing characters at " + pos);
            return v;
        }

        /// <summary>Follows a path of object keys ("game", "rtpc", "danger"); null if absent.</summary>
        public static object Path(object root, params string[] keys)
        {
            object cur = root;
            foreach (string k in keys)
            {
                var d = cur as Dictionary<string, object>;
                if (d == null || !d.TryGetValue(k, out cur)) return null;
            }
            return cur;
        }

        static void Skip(string s, ref int p)
        {
            while (p < s.Length && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r')) p++;
        }

        static object Value(string s, ref int p)
        {
            Skip(s, ref p);
            if (p >= s.Length) throw new FormatException("unexpected end");
            char c = s[p];
            if (c == '{')
            {
                var d = new Dictionary<string, object>();
                p++;
                Skip(s, ref p);
                if (p < s.Length && s[p] == '}') { p++; return d; }
                while (true)
                {
                    Skip(s, ref p);
                    string key = Str(s, ref p);
                    Skip(s, ref p);
                    Expect(s, ref p, ':');
                    d[key] = Value(s, ref p);
                    Skip(s, ref p);
                    if (p < s.Length && s[p] == ',') { p++; continue; }
                    Expect(s, ref p, '}');
                    return d;
                }
            }
            if (c == '[')
            {
                var l = new List<object>();
                p++;
                Skip(s, ref p);
                if (p < s.Length && s[p] == ']') { p++; return l; }
                while (true)
                {
                    l.Add(Value(s, ref p));
                    Skip(s, ref p);
                    if (p < s.Length && s[p] == ',') { p++; continue; }
                    Expect(s, ref p, ']');
                    return l;
                }
            }
            if (c == '"') return Str(s, ref p);
            if (Word(s, ref p, "true")) return true;
            if (Word(s, ref p, "false")) return false;
            if (Word(s, ref p, "null")) return null;
            int start = p;
            while (p < s.Length && "+-0123456789.eE".IndexOf(s[p]) >= 0) p++;
            double num;
            if (p == start || !double.TryParse(s.Substring(start, p - start), NumberStyles.Float,
                                               CultureInfo.InvariantCulture, out num))
                throw new FormatException("bad value at " + start);
            return num;
        }

        static bool Word(string s, ref int p, string w)
        {
            if (string.CompareOrdinal(s, p, w, 0, w.Length) != 0) return false;
            p += w.Length;
            return true;
        }

        static void Expect(string s, ref int p, char c)
        {
            if (p >= s.Length || s[p] != c) throw new FormatException("expected '" + c + "' at " + p);
            p++;
        }

        static string Str(string s, ref int p)
        {
            Expect(s, ref p, '"');
            var sb = new StringBuilder();
            while (true)
            {
                if (p >= s.Length) throw new FormatException("unterminated string");
                char c = s[p++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                if (p >= s.Length) throw new FormatException("bad escape");
                char e = s[p++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (p + 4 > s.Length) throw new FormatException("bad \\u escape");
                        sb.Append((char)int.Parse(s.Substring(p, 4), NumberStyles.HexNumber));
                        p += 4;
                        break;
                    default: throw new FormatException("bad escape \\" + e);
                }
            }
        }
    }
}
